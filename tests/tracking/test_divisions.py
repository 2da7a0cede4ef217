"""Divisions as SAM 2 shows them: touching and unequal daughters, divisions against the image
border, cells missing for a frame or two, and a division while the mother is missing.

Each geometry is a synthetic time-lapse (:class:`sam2.synthetic_tracking.HardCases`) tracked
from frame 0's ground truth through a mask source that behaves like SAM 2: ``union`` follows
both daughters as one mask, ``first_daughter`` keeps one and loses the other, and
:class:`ForgetfulMaskSource` loses a cell that went missing for good (until it is prompted
again). A division counts when the tracker finds it on the daughters' first frame, from the
track that followed the mother, into the tracks that follow the two daughters.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Literal

import numpy as np
import pytest

from napari_sam2.tracking import TrackingParams, TrackingResult, track_cells, write_ctc
from napari_sam2.tracking.ctc import read_ctc
from sam2.synthetic import SyntheticTimelapse
from sam2.synthetic_tracking import HardCases, make_tracking_timelapse
from tests.tracking.ground_truth import (
    GroundTruthMaskSource,
    best_match,
    evaluate,
    write_gt_folder,
)

Source = Literal["union", "first_daughter"]


class ForgetfulMaskSource(GroundTruthMaskSource):
    """Ground truth that, like SAM 2 after a long occlusion, does not find a cell again by
    itself once it has lost it: its masks stay empty until the tracker adds it again."""

    def __init__(self, data: SyntheticTimelapse) -> None:
        super().__init__(data)
        self.lost: set[int] = set()

    def add(self, frame_idx: int, obj_id: int, mask: np.ndarray) -> None:
        super().add(frame_idx, obj_id, mask)
        self.lost.discard(obj_id)

    def track(self, frame_idx: int) -> dict[int, np.ndarray]:
        masks = super().track(frame_idx)
        for obj_id, mask in masks.items():
            if obj_id in self.lost or not mask.any():
                self.lost.add(obj_id)
                masks[obj_id] = np.zeros_like(mask)
        return masks


def timelapse(hard: HardCases, seed: int = 0) -> SyntheticTimelapse:
    """A crowded field: 12 cells, 5 divisions, 2 entering, 2 leaving, 30 frames."""
    return make_tracking_timelapse(n_cells=12, n_divisions=5, seed=seed, hard=hard)


def gt_divisions(data: SyntheticTimelapse) -> dict[int, tuple[int, list[int]]]:
    """GT mother -> (daughters' first frame, daughters); a gap's single "child" is no division."""
    children: dict[int, list[int]] = {}
    starts = {label: start for label, start, _, _ in data.lineage}
    for label, _, _, parent in data.lineage:
        if parent:
            children.setdefault(parent, []).append(label)
    return {m: (starts[k[0]], k) for m, k in children.items() if len(k) == 2}


def late_or_missed(data: SyntheticTimelapse, result: TrackingResult, slack: int = 0) -> list[str]:
    """The GT divisions the tracker did not find within ``slack`` frames, as messages."""
    assert result.labels is not None
    ends = {label: end for label, _, end, _ in data.lineage}
    problems = []
    for mother, (born, daughters) in gt_divisions(data).items():
        ours = best_match(result.labels[ends[mother]], data.labels[ends[mother]], mother)
        found = result.lineage.divisions.get(ours)
        if found is None:
            problems.append(f"division of GT {mother} on frame {born} missed")
            continue
        if not 0 <= found.frame - born <= slack:
            problems.append(f"GT {mother} divides on {born}, found on {found.frame}")
            continue
        matched = {
            best_match(result.labels[found.frame], data.labels[found.frame], d) for d in daughters
        }
        if matched != set(found.daughters):
            problems.append(f"GT {mother}'s daughters {daughters} are not tracks {found.daughters}")
    return problems


def orphan_daughters(data: SyntheticTimelapse, result: TrackingResult) -> list[int]:
    """Tracks that start after frame 0 without a parent on a GT cell that has one."""
    assert result.labels is not None
    gt_parent = {label: parent for label, _, _, parent in data.lineage}
    out = []
    for track in result.lineage:
        if track.parent or track.start == 0:
            continue
        under = data.labels[track.start][result.labels[track.start] == track.track_id]
        under = under[under > 0]
        if len(under) and gt_parent.get(int(np.bincount(under).argmax()), 0):
            out.append(track.track_id)
    return out


def run(data: SyntheticTimelapse, source: GroundTruthMaskSource) -> TrackingResult:
    return track_cells(data.image, data.labels[0], 0, source, TrackingParams())


@pytest.mark.parametrize("seed", [0, 1])
def test_touching_daughters_divide_on_their_first_frame(seed: int) -> None:
    """SAM 2 follows touching daughters as one two-lobed mask: the waist dates the division."""
    data = timelapse(HardCases(touching_daughters=True), seed)
    result = run(data, GroundTruthMaskSource(data, "union"))
    assert late_or_missed(data, result) == []
    assert {d.rule for d in result.lineage.divisions.values()} == {"waist"}
    assert len(result.lineage.divisions) == len(gt_divisions(data))


@pytest.mark.parametrize("source", ["union", "first_daughter"])
def test_unequal_daughters(source: Source) -> None:
    """A daughter of 0.7 times her sister's radius is still found, with her sister."""
    data = timelapse(HardCases(touching_daughters=True, daughter_size_ratio=0.7))
    result = run(data, GroundTruthMaskSource(data, source))
    assert late_or_missed(data, result) == []
    assert orphan_daughters(data, result) == []


@pytest.mark.parametrize("source", ["union", "first_daughter"])
def test_divisions_against_the_border(source: Source) -> None:
    """A cell dividing with part of it outside the frame is a division with two daughters,
    not a mother going on as one daughter and an orphan (the area-drop rule applies at the
    border; the waist is looked for with the cut-off daughter mirrored back)."""
    data = timelapse(HardCases(touching_daughters=True, border_divisions=2))
    result = run(data, GroundTruthMaskSource(data, source))
    assert orphan_daughters(data, result) == []
    # the union of a daughter cut in half by the border and her sister can look like one
    # round cell on their very first frame; one frame later it never does
    assert late_or_missed(data, result, slack=1 if source == "union" else 0) == []


@pytest.mark.parametrize("max_gap", [1, 2])
def test_a_cell_missing_for_a_gap_keeps_its_lineage(max_gap: int, tmp_path: Path) -> None:
    """A cell missing for 1 or 2 frames and lost by the mask source comes back as the same
    cell: one track with a gap, which CTC writes as a new label whose parent is the old."""
    data = timelapse(HardCases(gaps=3, max_gap=max_gap))
    gap_rows = [r for r in data.lineage if r[3] and r[3] not in gt_divisions(data)]
    assert len(gap_rows) == 3
    result = run(data, ForgetfulMaskSource(data))
    assert orphan_daughters(data, result) == []
    write_ctc(tmp_path / "res", result.labels, result.lineage, allow_empty_frames=True)
    ours = {t.label: t for t in read_ctc(tmp_path / "res").tracks}
    assert result.labels is not None
    for label, start, _, parent in gap_rows:
        back = best_match(result.labels[start], data.labels[start], label)
        before = best_match(
            result.labels[start - 1 - max_gap], data.labels[start - 1 - max_gap], parent
        )
        ctc_back = read_ctc(tmp_path / "res").labels[start][result.labels[start] == back]
        assert ours[int(np.bincount(ctc_back).argmax())].parent == before


@pytest.mark.parametrize("source", ["union", "first_daughter"])
def test_a_division_while_the_mother_is_missing(source: Source) -> None:
    """The mother vanishes for two frames and two touching daughters appear: a division of
    the mother's track on the daughters' first frame, no orphans."""
    data = timelapse(HardCases(touching_daughters=True, max_gap=2, division_in_gap=True))
    mother = max(gt_divisions(data).items(), key=lambda kv: kv[1][0])
    assert mother[1][0] - 1 - next(r[2] for r in data.lineage if r[0] == mother[0]) == 2
    result = run(data, GroundTruthMaskSource(data, source))
    assert late_or_missed(data, result) == []
    assert orphan_daughters(data, result) == []


@pytest.mark.parametrize("source", ["union", "first_daughter"])
def test_scores_on_every_hard_case_at_once(
    source: Source, ctc_metrics: ModuleType, tmp_path: Path
) -> None:
    """py-ctcmetrics on a time-lapse with all the cases: division F1 BC(0), complete tracks
    CT and TRA as the issue asks (BC(0) ≥ 0.9, CT ≥ 0.9, TRA ≥ 0.99)."""
    hard = HardCases(
        touching_daughters=True,
        daughter_size_ratio=0.8,
        border_divisions=1,
        gaps=2,
        division_in_gap=True,
    )
    data = timelapse(hard, seed=2)
    result = run(data, GroundTruthMaskSource(data, source))
    write_ctc(tmp_path / "01_RES", result.labels, result.lineage, allow_empty_frames=True)
    scores = evaluate(ctc_metrics, tmp_path / "01_RES", write_gt_folder(tmp_path, data))
    assert scores["BC(0)"] >= 0.9 and scores["CT"] >= 0.9 and scores["TRA"] >= 0.99, scores
    assert orphan_daughters(data, result) == []
