"""The tracking loop: seed objects, follow them frame by frame, and keep the lineage.

:class:`CellTracker` streams one frame at a time: :meth:`CellTracker.run` asks the
:class:`~napari_sam2.tracking.sources.MaskSource` it is given for every object's next mask,
applies the division / entry / exit rules of :mod:`.events`, writes the frame's labels into a
caller-provided array (numpy, memmap, zarr) if there is one and hands out a
:class:`~napari_sam2.tracking.results.FrameUpdate`. The source is an argument of ``run``, not of
the constructor, so a tracker can be built and checked before a model loads (a napari worker
opens the source, then iterates; it may quit between frames). :func:`track_cells` runs the
loop for headless use. Whatever happens, finished frames and the lineage up to them are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_sam2.tracking import events as rules
from napari_sam2.tracking.inputs import check_fits, check_inputs, output_array, stack_shape
from napari_sam2.tracking.lineage import (
    DivisionRule,
    Lineage,
    LineageEvent,
    TrackDivided,
    TrackEnded,
    TracksSeen,
    TrackStarted,
    TrackTrimmed,
)
from napari_sam2.tracking.params import TrackingParams
from napari_sam2.tracking.results import FrameUpdate, TrackEvent, TrackingError, TrackingResult
from napari_sam2.tracking.seeds import seed_frame_labels
from napari_sam2.tracking.sources import MaskSource, PromptSeed

__all__ = ["CellTracker", "track_cells"]


@dataclass
class _Followed:
    """What the rules remember of a followed object between frames."""

    areas: list[int]  # the last few present areas, newest last
    pieces: int = 1
    absent: int = 0
    centre: tuple[float, float] | None = None  # (y, x) where it was last seen

    @property
    def area(self) -> float:
        """Recent area (mean of the last 3 frames), steadier than one noisy mask."""
        return float(np.mean(self.areas[-3:])) if self.areas else 0.0

    def seen(self, mask: np.ndarray, area: int) -> None:
        self.areas = [*self.areas[-2:], area]
        self.centre = rules.centre(mask)


class CellTracker:
    """Frame-by-frame tracking of every object of a seed labels image (plus prompt seeds).

    Args:
        shape: the stack's (T, Y, X) shape (or the stack itself: only its shape is read).
        seed_labels: a (Y, X) labels image of the seed frame, or a (T, Y, X) labels stack of
            which frame ``seed_frame`` is used; each label becomes a track with that id.
        seed_frame: where tracking starts; it runs forward to the last frame.
        params: thresholds of the division / entry / exit rules.
        out: (T, Y, X) integer array to write labels into (frames before the seed are left
            alone); None only yields the frames (a napari worker hands them to a layer), and
            the result's ``labels`` is then None.
        prompts: clicks or boxes that seed more objects on the seed frame.
    """

    def __init__(
        self,
        shape: Any,
        seed_labels: Any,
        seed_frame: int,
        params: TrackingParams | None = None,
        *,
        out: Any | None = None,
        prompts: Sequence[PromptSeed] = (),
    ) -> None:
        self.shape, self.seed = check_inputs(shape, seed_labels, seed_frame, bool(prompts))
        self.seed_frame = int(seed_frame)
        self.params = params or TrackingParams()
        self.out = None if out is None else output_array(out, self.shape)
        self.prompts = list(prompts)
        self.lineage = Lineage()
        self.events: list[TrackEvent] = []
        self._followed: dict[int, _Followed] = {}
        self._last = -1
        self._ran = False
        self._changes: list[LineageEvent] = []  # the frame in progress's lineage events
        self._recent: dict[int, np.ndarray] = {}  # the last few frames' labels

    # ------------------------------------------------------------------ running
    @property
    def total(self) -> int:
        """Frames a full run finishes: the seed frame and every frame after it."""
        return self.shape[0] - self.seed_frame

    def run(self, source: MaskSource) -> Iterator[FrameUpdate]:
        """Seed, then track with ``source``; yields after each frame. Stop any time by not
        iterating on. The caller opened the source and closes it; a tracker runs once."""
        if self._ran:
            raise RuntimeError("a CellTracker runs once; build a new one to track again")
        self._ran = True
        for t in range(self.seed_frame, self.shape[0]):
            try:
                update = self._seed(source) if t == self.seed_frame else self._step(t, source)
            except Exception as exc:
                done = f"frames {self.seed_frame}..{self._last}" if self._last >= 0 else "nothing"
                raise TrackingError(
                    f"tracking failed on frame {t}: {exc} ({done} kept)", self.result()
                ) from exc
            yield update

    def result(self, stopped: bool = False) -> TrackingResult:
        """What is finished so far; the tracks still followed stay marked active."""
        return TrackingResult(
            labels=self.out,
            lineage=self.lineage,
            events=list(self.events),
            first_frame=self.seed_frame,
            last_frame=self._last,
            stopped=stopped,
            params=self.params,
        )

    def finish(self, stopped: bool = False) -> TrackingResult:
        """Close every track (the run is over) and return the result."""
        for track_id in self.lineage.active_ids():  # not a frame's change: nobody replays it
            self.lineage.apply(TrackEnded(self.lineage[track_id].end, track_id))
        return self.result(stopped)

    def _change(self, event: LineageEvent) -> None:
        """Every change to the lineage goes through here, so the frame's update carries it."""
        self.lineage.apply(event)
        self._changes.append(event)

    # ------------------------------------------------------------------ frames
    def _seed(self, source: MaskSource) -> FrameUpdate:
        t = self.seed_frame
        frame = seed_frame_labels(self.seed, self.prompts, source, t, self.params.min_area)
        for label in np.unique(frame)[1:]:
            label = int(label)
            mask = frame == label
            self._change(TrackStarted(t, label))
            source.add(t, label, mask)
            pieces = len(rules.daughter_pieces(mask, self.params)[0])
            self._followed[label] = _Followed(
                areas=[int(mask.sum())], pieces=pieces, centre=rules.centre(mask)
            )
            self.events.append(TrackEvent("seed", t, label))
        self._write(t, frame)
        return self._update(t, frame, list(self.events))

    def _step(self, t: int, source: MaskSource) -> FrameUpdate:
        p = self.params
        masks = source.track(t)
        found: list[TrackEvent] = []
        present: dict[int, np.ndarray] = {}
        splits: list[tuple[int, tuple[np.ndarray, np.ndarray], DivisionRule]] = []
        shrunk: list[int] = []
        seen: list[list[np.ndarray]] = []

        def regions() -> list[np.ndarray]:
            """Every cell-like region of the frame, asked of the source once per frame."""
            if not seen:
                seen.append(source.propose(t, np.zeros(self.shape[1:], dtype=bool)))
            return seen[0]

        for track_id, state in self._followed.items():
            mask = masks.get(track_id)
            area = 0 if mask is None else int(np.count_nonzero(mask))
            if area < p.min_area:
                state.absent += 1
                continue
            state.absent = 0
            mask = np.asarray(mask, dtype=bool)
            pieces, rule = rules.daughter_pieces(mask, p)
            if len(pieces) >= 2 and state.pieces < 2:
                verdict = rules.two_cells(pieces, state.area, p)
                if verdict == "divided" and not rules.whole_cells(pieces, regions(), p):
                    verdict = "grabbed"  # one piece is a bit of another cell, not a daughter
                if verdict == "divided":
                    splits.append((track_id, (pieces[0], pieces[1]), rule))
                    continue
                if verdict == "grabbed":  # SAM 2 spilled onto a neighbour: keep our cell
                    mask = rules.nearest_piece(pieces, state.centre)
                    source.add(t, track_id, mask)
                pieces = [mask]
            state.pieces = len(pieces)
            present[track_id] = mask
            if rules.shrank(area, state.area, p):
                shrunk.append(track_id)
        entry_frame = p.entry_every > 0 and (t - self.seed_frame) % p.entry_every == 0
        missing = [i for i, s in self._followed.items() if s.absent and p.gap_max_distance > 0]
        entries: list[np.ndarray] = []
        if entry_frame or shrunk or missing:
            covered = np.zeros(self.shape[1:], dtype=bool)
            for mask in present.values():
                covered |= mask
            for _, pair, _ in splits:
                covered |= pair[0] | pair[1]
            areas = [int(m.sum()) for m in present.values()]
            candidates = rules.new_object_masks(
                source.propose(t, covered),
                covered,
                p,
                typical_area=float(np.median(areas)) if areas else None,
            )
            for track_id in shrunk:
                k = rules.find_sister(
                    present[track_id], self._followed[track_id].area, candidates, p
                )
                if k is None:
                    continue
                sister = candidates.pop(k)
                if not rules.same_cell(present[track_id], sister, regions(), p):
                    splits.append((track_id, (present.pop(track_id), sister), "area_drop"))
                else:  # one cell that SAM 2 covered only in part: give it all back
                    present[track_id] = present[track_id] | sister
                    source.add(t, track_id, present[track_id])
            for track_id in missing:  # a cell back from a gap keeps its track
                state = self._followed[track_id]
                k = rules.find_return(state.centre, state.area, candidates, p)
                if k is not None:
                    present[track_id] = candidates.pop(k)
                    state.absent = 0
                    source.add(t, track_id, present[track_id])
            if entry_frame:
                entries = candidates
        found += self._exits(source)
        order: list[tuple[int, np.ndarray]] = list(present.items())
        revised: dict[int, np.ndarray] = {}
        for mother, pair, rule in splits:
            daughters = self.lineage.new_ids(2)
            since = self._divide(t, mother, pair, daughters, rule, revised)
            source.remove(mother)
            del self._followed[mother]
            found.append(TrackEvent("division", since, mother, daughters, rule))
            order += list(zip(daughters, pair))
        for mask in entries:
            track_id = self.lineage.next_id()
            self._change(TrackStarted(t, track_id))
            found.append(TrackEvent("entry", t, track_id))
            order.append((track_id, mask))
        frame = self._paint(t, order, source)
        self._write(t, frame)
        self.events += found
        return self._update(t, frame, found, revised)

    def _divide(
        self,
        t: int,
        mother: int,
        pair: tuple[np.ndarray, np.ndarray],
        daughters: tuple[int, ...],
        rule: DivisionRule,
        revised: dict[int, np.ndarray],
    ) -> int:
        """Record a division seen on ``t``, dated back to where it began (the mother keeps
        at least her first frame); the frames in between are relabelled. Returns its frame."""
        first = self.lineage[mother].start + 1
        recent = [(f, self._recent[f]) for f in range(t - 1, first - 1, -1) if f in self._recent]
        earlier = rules.look_back(recent, mother, pair, self.params)
        since = earlier[-1][0] if earlier else t
        if earlier:
            self._change(TrackTrimmed(since - 1, mother))
        self._change(TrackDivided(since, mother, daughters, rule))
        for f, parts in reversed(earlier):
            labels = revised.get(f, self._recent[f]).copy()
            for daughter, part in zip(daughters, parts):
                labels[part] = daughter
            self._change(TracksSeen(f, tuple(daughters)))
            self._recent[f] = revised[f] = labels
            if self.out is not None:
                self.out[f] = labels.astype(self.out.dtype, copy=False)
        return since

    def _exits(self, source: MaskSource) -> list[TrackEvent]:
        """End the tracks of objects absent for ``exit_after`` frames."""
        gone = [i for i, s in self._followed.items() if s.absent >= self.params.exit_after]
        out = []
        for track_id in gone:
            self._change(TrackEnded(self.lineage[track_id].end, track_id))
            source.remove(track_id)
            del self._followed[track_id]
            out.append(TrackEvent("exit", self.lineage[track_id].end, track_id))
        return out

    def _paint(self, t: int, order: list[tuple[int, np.ndarray]], source: MaskSource) -> np.ndarray:
        """The frame's labels; earlier objects keep contested pixels. New objects join the
        source here, and every painted object counts as present on ``t``."""
        frame = np.zeros(self.shape[1:], dtype=np.int64)
        seen: list[int] = []
        for track_id, mask in order:
            free = mask & (frame == 0)
            area = int(np.count_nonzero(free))
            state = self._followed.get(track_id)
            if state is None:  # a daughter or a new cell: follow it from this frame
                source.add(t, track_id, free)
                state = self._followed[track_id] = _Followed(areas=[])
            if area == 0:
                state.absent += 1
                continue
            frame[free] = track_id
            state.seen(free, area)
            seen.append(track_id)
        if seen:
            self._change(TracksSeen(t, tuple(seen)))
        return frame

    def _write(self, t: int, frame: np.ndarray) -> None:
        if self.out is not None:
            check_fits(frame, self.out.dtype)
            self.out[t] = frame.astype(self.out.dtype, copy=False)
        self._last = t
        self._recent[t] = frame  # kept for dating divisions back
        self._recent.pop(t - self.params.division_lookback - 1, None)

    def _update(
        self,
        t: int,
        frame: np.ndarray,
        found: list[TrackEvent],
        revised: dict[int, np.ndarray] | None = None,
    ) -> FrameUpdate:
        changes, self._changes = tuple(self._changes), []
        return FrameUpdate(
            frame=t,
            labels=frame,
            events=found,
            lineage_events=changes,
            revised=revised or {},
            n_active=len(self._followed),
            done=t - self.seed_frame + 1,
            total=self.total,
        )


def track_cells(
    frames: Any,
    seed_labels: Any,
    seed_frame: int,
    mask_source: MaskSource,
    params: TrackingParams | None = None,
    *,
    out: Any | None = None,
    prompts: Sequence[PromptSeed] = (),
    progress: Callable[[FrameUpdate], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrackingResult:
    """Track every seeded cell from ``seed_frame`` to the end of ``frames`` (T, Y, X).

    Labels go into ``out`` (a new zero-filled int32 array when None). ``progress`` gets each
    :class:`FrameUpdate`; ``should_stop`` is asked before every frame and ends the run early
    (``result.stopped``). On an error a :class:`TrackingError` carries the finished part as
    ``.result``.
    """
    if out is None:
        out = np.zeros(stack_shape(frames), dtype=np.int32)
    tracker = CellTracker(frames, seed_labels, seed_frame, params, out=out, prompts=prompts)
    stopped = False
    for update in tracker.run(mask_source):
        if progress is not None:
            progress(update)
        if update.done < update.total and should_stop is not None and should_stop():
            stopped = True
            break
    return tracker.finish(stopped)
