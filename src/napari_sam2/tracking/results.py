"""What a tracking run hands out: per-frame updates while it runs, a result when it ends.

:class:`FrameUpdate` is the unit a napari worker yields and a progress callback gets;
:class:`TrackEvent` records each decision of the rules (and why); :class:`TrackingResult` is
what is finished, whether the run completed, was stopped or failed (:class:`TrackingError`
carries it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from napari_sam2.tracking.lineage import Lineage, LineageEvent
from napari_sam2.tracking.params import TrackingParams

__all__ = ["EventKind", "FrameUpdate", "TrackEvent", "TrackingError", "TrackingResult"]

EventKind = Literal["seed", "division", "entry", "exit"]


@dataclass(frozen=True)
class TrackEvent:
    """Something that happened to a track on a frame (``related``: a division's daughters)."""

    kind: EventKind
    frame: int
    track_id: int
    related: tuple[int, ...] = ()
    rule: str = ""


@dataclass(frozen=True)
class FrameUpdate:
    """One finished frame, as handed to a progress callback or a napari worker's ``yielded``.

    ``events`` say what the rules decided (and why); ``lineage_events`` are the same changes
    as a copy of the lineage replays them (:meth:`~.lineage.Lineage.apply`).
    """

    frame: int
    labels: np.ndarray  # (Y, X) the frame's labels, as written to the output
    events: list[TrackEvent]
    lineage_events: tuple[LineageEvent, ...]  # how this frame changed the lineage, in order
    n_active: int  # objects followed after this frame
    done: int  # frames finished so far (the seed frame counts)
    total: int  # frames this run will finish
    #: earlier frames this step rewrote (a division dated back): frame -> its (Y, X) labels
    revised: dict[int, np.ndarray] = field(default_factory=dict)


@dataclass
class TrackingResult:
    """Labels written from ``first_frame`` to ``last_frame``, with their lineage."""

    labels: Any  # (T, Y, X), the array passed as ``out``; None when the run only yielded frames
    lineage: Lineage
    events: list[TrackEvent]
    first_frame: int
    last_frame: int  # -1 when nothing was written
    stopped: bool = False
    params: TrackingParams = field(default_factory=TrackingParams)

    @property
    def divisions(self) -> list[TrackEvent]:
        return [e for e in self.events if e.kind == "division"]


class TrackingError(RuntimeError):
    """Tracking failed part-way; ``result`` holds everything finished before the failure."""

    def __init__(self, message: str, result: TrackingResult) -> None:
        super().__init__(message)
        self.result = result
