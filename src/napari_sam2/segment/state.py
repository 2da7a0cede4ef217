"""The observable state of one image's segmentation: status, embedding, propagation."""

from __future__ import annotations

from dataclasses import dataclass

from napari_sam2.run_state import RunState

__all__ = ["SegmentState"]


@dataclass
class SegmentState(RunState):
    """One :class:`~napari_sam2.segment.controller.SegmentController`'s state, for the widget.

    ``running`` is True while a propagation of the image runs (the widget's Stop button is
    enabled while any image's is); ``embedding`` while a model load or slice embedding runs
    in a worker (the Segment button says so). Child objects write into it straight from their
    signals (``cache.busy_changed.connect_setattr(state, "embedding")``), so nothing relays.
    """

    embedding: bool = False
