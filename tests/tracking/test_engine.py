"""The tracking loop's bookkeeping on synthetic ground truth: divisions, entries, exits, stops."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pytest

from napari_sam2.tracking import (
    CellTracker,
    Lineage,
    PromptSeed,
    TrackingError,
    TrackingParams,
    track_cells,
)
from sam2.synthetic import SyntheticTimelapse
from sam2.synthetic_tracking import make_tracking_timelapse
from tests.tracking.ground_truth import GroundTruthMaskSource, best_match

EVERY_FRAME = TrackingParams(entry_every=1, min_new_area=20)


@pytest.fixture(scope="module", params=[0, 1])
def data(request: pytest.FixtureRequest) -> SyntheticTimelapse:
    """30 frames, 8 cells, 3 divisions, 2 cells entering and 2 leaving."""
    return make_tracking_timelapse(seed=request.param)


def gt_rows(data: SyntheticTimelapse) -> dict[int, tuple[int, int, int]]:
    return {label: (start, end, parent) for label, start, end, parent in data.lineage}


@pytest.mark.parametrize("division", ["union", "first_daughter"])
def test_divisions_found_on_their_frame_with_their_mother(
    data: SyntheticTimelapse, division: Literal["union", "first_daughter"]
) -> None:
    """Each GT division becomes a division of the matching track, on the daughters' first
    frame, into tracks that follow the two GT daughters (split rule and area-drop rule)."""
    result = track_cells(
        data.image, data.labels[0], 0, GroundTruthMaskSource(data, division), EVERY_FRAME
    )
    rows = gt_rows(data)
    mothers = sorted({p for _, _, p in rows.values() if p})
    assert len(mothers) == 3
    expected_rule = "split" if division == "union" else "area_drop"
    for mother in mothers:
        daughters = [k for k, (_, _, p) in rows.items() if p == mother]
        born = rows[daughters[0]][0]
        ours = best_match(result.labels[born - 1], data.labels[born - 1], mother)
        found = result.lineage.divisions.get(ours)
        assert found is not None, f"GT division of {mother} on frame {born} was missed"
        assert found.frame == born and found.rule == expected_rule and not found.confirmed
        matched = {best_match(result.labels[born], data.labels[born], d) for d in daughters}
        assert matched == set(found.daughters)
        for d in found.daughters:
            assert result.lineage[d].parent == ours and result.lineage[d].start == born
        assert result.lineage[ours].end == born - 1
    assert len(result.lineage.divisions) == len(mothers)


def test_entering_cells_become_new_tracks(data: SyntheticTimelapse) -> None:
    """Cells that enter the field get their own parentless track from their first frame."""
    result = track_cells(data.image, data.labels[0], 0, GroundTruthMaskSource(data), EVERY_FRAME)
    entering = [k for k, (s, _, p) in gt_rows(data).items() if s > 0 and not p]
    assert len(entering) == 2
    entries = {e.track_id: e.frame for e in result.events if e.kind == "entry"}
    for cell in entering:
        start = gt_rows(data)[cell][0]
        ours = best_match(result.labels[start], data.labels[start], cell)
        assert entries.get(ours) == start
        assert result.lineage[ours].parent == 0 and result.lineage[ours].start == start


def test_entry_checks_run_every_k_frames(data: SyntheticTimelapse) -> None:
    """With ``entry_every=5`` a new cell is picked up on the next check, at most 4 frames late;
    with 0 it is never picked up."""
    late = track_cells(
        data.image, data.labels[0], 0, GroundTruthMaskSource(data), TrackingParams(entry_every=5)
    )
    frames = sorted(e.frame for e in late.events if e.kind == "entry")
    assert frames and all(f % 5 == 0 for f in frames)
    for cell, (start, _, parent) in gt_rows(data).items():
        if start > 0 and not parent:
            first = next(t for t in range(start, 30) if t % 5 == 0)
            assert best_match(late.labels[first], data.labels[first], cell) > 0
    never = track_cells(
        data.image, data.labels[0], 0, GroundTruthMaskSource(data), TrackingParams(entry_every=0)
    )
    assert not [e for e in never.events if e.kind == "entry"]


def test_leaving_cells_end_their_tracks(data: SyntheticTimelapse) -> None:
    """A cell that leaves ends its track on its last visible frame and is no longer followed."""
    source = GroundTruthMaskSource(data)
    result = track_cells(data.image, data.labels[0], 0, source, EVERY_FRAME)
    rows = gt_rows(data)
    parents = {p for _, _, p in rows.values()}
    leaving = [k for k, (_, e, _) in rows.items() if e < 29 and k not in parents]
    assert len(leaving) == 2
    exits = {e.track_id: e.frame for e in result.events if e.kind == "exit"}
    for cell in leaving:
        end = rows[cell][1]
        ours = best_match(result.labels[end], data.labels[end], cell)
        assert result.lineage[ours].end == end and exits[ours] == end
        assert ours not in source.follow and not result.lineage.children(ours)
        assert not (result.labels[end + 1 :] == ours).any()


def test_labels_agree_with_lineage(data: SyntheticTimelapse) -> None:
    """Every track is present exactly on its frames start..end, with one id per cell."""
    result = track_cells(
        data.image, data.labels[0], 0, GroundTruthMaskSource(data, "first_daughter"), EVERY_FRAME
    )
    for track in result.lineage:
        present = np.flatnonzero((result.labels == track.track_id).any(axis=(1, 2)))
        assert present.tolist() == list(range(track.start, track.end + 1))
        assert not track.active
    np.testing.assert_array_equal(result.labels > 0, data.labels > 0)


class ScriptedSource:
    """A source that hands out fixed disks, absent on some frames, and can fail on one."""

    def __init__(self, shape: tuple[int, int], absent: set[int], fail_on: int = -1) -> None:
        yy, xx = np.ogrid[: shape[0], : shape[1]]
        self.disk = (yy - 20) ** 2 + (xx - 20) ** 2 <= 64
        self.absent, self.fail_on = absent, fail_on
        self.ids: set[int] = set()

    def add(self, frame_idx: int, obj_id: int, mask: np.ndarray) -> None:
        self.ids.add(obj_id)

    def remove(self, obj_id: int) -> None:
        self.ids.discard(obj_id)

    def track(self, frame_idx: int) -> dict[int, np.ndarray]:
        if frame_idx == self.fail_on:
            raise RuntimeError("out of memory")
        empty = np.zeros_like(self.disk)
        return {i: empty if frame_idx in self.absent else self.disk for i in self.ids}

    def propose(self, frame_idx: int, covered: np.ndarray) -> list[np.ndarray]:
        return []

    def segment(self, frame_idx: int, prompt: PromptSeed) -> np.ndarray:
        return self.disk


def _seed(shape: tuple[int, int] = (48, 48), label: int = 5) -> np.ndarray:
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return np.where((yy - 20) ** 2 + (xx - 20) ** 2 <= 64, label, 0)


@pytest.mark.parametrize(("exit_after", "end", "gap"), [(1, 2, False), (2, 7, True)])
def test_exit_after_n_absent_frames(exit_after: int, end: int, gap: bool) -> None:
    """A one-frame absence ends the track with exit_after=1; with 2 the track goes on (and
    keeps its id across the gap)."""
    source = ScriptedSource((48, 48), absent={3})
    params = TrackingParams(exit_after=exit_after, entry_every=0)
    result = track_cells((8, 48, 48), _seed(), 0, source, params)
    track = result.lineage[5]
    assert track.end == end and len(result.lineage) == 1
    present = (result.labels == 5).any(axis=(1, 2))
    assert present[3] == False and present[4] == gap  # noqa: E712


def test_progress_and_stop_keep_finished_frames() -> None:
    """Progress sees every frame; a stop after frame 3 leaves frames 0–3 written and the rest
    untouched in the caller's array."""
    out = np.full((8, 48, 48), -1, dtype=np.int32)
    seen: list[tuple[int, int, int]] = []
    result = track_cells(
        (8, 48, 48),
        _seed(),
        0,
        ScriptedSource((48, 48), set()),
        out=out,
        progress=lambda u: seen.append((u.frame, u.done, u.total)),
        should_stop=lambda: len(seen) >= 4,
    )
    assert seen == [(0, 1, 8), (1, 2, 8), (2, 3, 8), (3, 4, 8)]
    assert result.stopped and result.last_frame == 3 and result.labels is out
    assert (out[:4] == _seed()).all() and (out[4:] == -1).all()
    assert result.lineage[5].end == 3


def test_error_keeps_finished_frames() -> None:
    """A failure on frame 4 raises TrackingError naming the frame; frames 0–3 and their
    lineage are kept on the error."""
    out = np.zeros((8, 48, 48), dtype=np.uint16)
    with pytest.raises(TrackingError, match="frame 4: out of memory") as info:
        track_cells((8, 48, 48), _seed(), 0, ScriptedSource((48, 48), set(), 4), out=out)
    result = info.value.result
    assert result.last_frame == 3 and result.lineage[5].end == 3
    assert (out[:4] == _seed()).all() and not out[4:].any()


def test_writes_into_a_zarr_array(data: SyntheticTimelapse) -> None:
    """Labels stream into a caller's zarr array, equal to a numpy run."""
    import zarr

    store = zarr.zeros(shape=data.labels.shape, dtype="int32", chunks=(1, 64, 64))
    ours = track_cells(
        data.image, data.labels, 0, GroundTruthMaskSource(data), EVERY_FRAME, out=store
    )
    plain = track_cells(data.image, data.labels, 0, GroundTruthMaskSource(data), EVERY_FRAME)
    np.testing.assert_array_equal(store[:], plain.labels)
    assert ours.lineage.rows() == plain.lineage.rows()


def test_seed_frame_in_the_middle(data: SyntheticTimelapse) -> None:
    """Tracking from frame 10 leaves earlier frames empty; tracks start at 10, ids are kept."""
    result = track_cells(data.image, data.labels, 10, GroundTruthMaskSource(data), EVERY_FRAME)
    assert not result.labels[:10].any()
    np.testing.assert_array_equal(result.labels[10], data.labels[10])
    assert min(t.start for t in result.lineage) == 10 and result.first_frame == 10


def test_prompt_seeds_add_objects(data: SyntheticTimelapse) -> None:
    """Clicks and boxes seed more objects next to the seed labels, with the next free ids."""
    seeds = np.where(data.labels[0] == 1, 1, 0)
    ys, xs = np.nonzero(data.labels[0] == 2)
    ys3, xs3 = np.nonzero(data.labels[0] == 3)
    prompts = [
        PromptSeed(points=np.array([[ys.mean(), xs.mean()]]), labels=np.array([1])),
        PromptSeed(box=(ys3.min() - 1, xs3.min() - 1, ys3.max() + 2, xs3.max() + 2), track_id=40),
    ]
    tracker = CellTracker(data.image, seeds, 0, EVERY_FRAME, prompts=prompts)
    first = next(tracker.run(GroundTruthMaskSource(data)))
    assert sorted(np.unique(first.labels).tolist()) == [0, 1, 2, 40]
    np.testing.assert_array_equal(first.labels == 40, data.labels[0] == 3)
    np.testing.assert_array_equal(first.labels == 2, data.labels[0] == 2)


def test_one_frame_stack_gives_one_frame_tracks() -> None:
    """A single frame is a complete (if short) result: each seed is a one-frame track."""
    seeds = _seed()
    seeds[38:46, 38:46] = 2
    result = track_cells((1, 48, 48), seeds, 0, ScriptedSource((48, 48), set()))
    assert result.lineage.rows() == [(2, 0, 0, 0), (5, 0, 0, 0)]
    np.testing.assert_array_equal(result.labels[0], seeds)


def _stack(shape: tuple[int, ...] = (6, 48, 48)) -> np.ndarray:
    return np.zeros(shape, dtype=np.uint16)


@pytest.mark.parametrize(
    ("frames", "seeds", "seed_frame", "message"),
    [
        (_stack(), _seed((40, 48)), 0, r"seed labels of shape \(40, 48\) fit neither a frame"),
        (_stack(), _seed()[None].repeat(3, 0), 0, "fit neither a frame"),
        (_stack(), np.zeros((48, 48), int), 0, "contain no objects"),
        (_stack(), _seed(), 6, "seed frame 6 is outside the stack's frames 0..5"),
        (_stack(), _seed().astype(float), 0, "must be integer"),
        (_stack(), -_seed(), 0, "must not be negative"),
        (_stack((6, 48, 48, 3)), _seed(), 0, r"needs a \(T, Y, X\) stack.*one channel"),
        (_stack((0, 48, 48)), _seed(), 0, "has no frames"),
    ],
    ids=["frame-shape", "stack-shape", "empty", "seed-frame", "float", "negative", "4d", "none"],
)
def test_bad_input_is_refused_clearly(
    frames: np.ndarray, seeds: np.ndarray, seed_frame: int, message: str
) -> None:
    """Wrong shapes, empty seeds and impossible frames raise a ValueError that says why."""
    with pytest.raises(ValueError, match=message):
        CellTracker(frames, seeds, seed_frame)


def test_output_array_problems_are_named() -> None:
    """An output of the wrong shape, a float output, or ids too big for its dtype are refused."""
    source = ScriptedSource((48, 48), set())
    with pytest.raises(ValueError, match="output labels have shape"):
        CellTracker(_stack(), _seed(), 0, out=np.zeros((5, 48, 48), np.int32))
    with pytest.raises(ValueError, match="integer array"):
        CellTracker(_stack(), _seed(), 0, out=np.zeros((6, 48, 48), np.float32))
    with pytest.raises(TrackingError, match="track id 300 does not fit"):
        track_cells(_stack(), _seed(label=300), 0, source, out=np.zeros((6, 48, 48), np.uint8))


def test_without_an_output_the_tracker_only_yields_frames() -> None:
    """``out=None``: every frame comes out in its update and the result holds no labels; the
    source is given to ``run``, and a tracker runs only once."""
    tracker = CellTracker((4, 48, 48), _seed(), 0)
    updates = list(tracker.run(ScriptedSource((48, 48), set())))
    assert [u.frame for u in updates] == [0, 1, 2, 3]
    assert all((u.labels == _seed()).all() for u in updates)
    result = tracker.finish()
    assert result.labels is None and result.last_frame == 3 and result.lineage[5].end == 3
    with pytest.raises(RuntimeError, match="runs once"):
        next(tracker.run(ScriptedSource((48, 48), set())))


@pytest.mark.parametrize("division", ["union", "first_daughter"])
def test_replaying_the_lineage_events_gives_the_same_lineage(
    data: SyntheticTimelapse, division: Literal["union", "first_daughter"]
) -> None:
    """A lineage that applies every frame's ``lineage_events`` in order equals the tracker's
    (divisions, entries and exits included): what the widget keeps instead of a copy."""
    tracker = CellTracker(data.image, data.labels[0], 0, EVERY_FRAME)
    replica = Lineage()
    for update in tracker.run(GroundTruthMaskSource(data, division)):
        replica.apply_all(update.lineage_events)
        assert replica.to_dict() == tracker.lineage.to_dict()
        assert replica.active_ids() == tracker.lineage.active_ids()
    assert {e.kind for e in tracker.events} == {"seed", "division", "entry", "exit"}
    assert len(replica.divisions) == len(tracker.lineage.divisions) > 0
