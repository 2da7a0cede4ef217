"""Where per-frame masks come from: the :class:`MaskSource` protocol and its SAM 2 backend.

The engine only ever asks a source four things: start following an object from its mask on
a frame, stop following one, give every followed object's mask on the next frame, and propose
candidate regions for new cells. SAM 2 answers with its streaming video memory; a test answers
from ground truth. Object ids are the engine's track ids.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from napari_sam2.tracking.proposals import EntryDetector, Proposer, make_proposer

if TYPE_CHECKING:
    from sam2.sam2_video_predictor import SAM2VideoPredictor

__all__ = [
    "MaskSource",
    "PromptSeed",
    "SAM2MaskSource",
    "close_source",
    "exclusive_masks",
    "sam2_mask_source",
]

_PROMPT_ID = "__napari_sam2_prompt__"  # temporary object while a click becomes a mask


@dataclass(frozen=True)
class PromptSeed:
    """Clicks and/or a box that seed one more object, in napari's (y, x) order.

    ``points`` (P, 2) with ``labels`` (P,) 1 = inside, 0 = outside; ``box`` (y0, x0, y1, x1).
    ``track_id`` None gives the object the next free id.
    """

    points: np.ndarray | None = None
    labels: np.ndarray | None = None
    box: tuple[float, float, float, float] | None = None
    track_id: int | None = None

    def __post_init__(self) -> None:
        if self.points is None and self.box is None:
            raise ValueError("a prompt seed needs points (with labels), a box, or both")
        if self.points is not None:
            points = np.asarray(self.points, dtype=np.float64)
            if points.ndim != 2 or points.shape[1] != 2:
                raise ValueError(f"prompt points must be (P, 2) (y, x), got shape {points.shape}")
            labels = np.ones(len(points)) if self.labels is None else np.asarray(self.labels)
            if labels.shape != (len(points),):
                raise ValueError(
                    f"{len(points)} prompt points need {len(points)} labels, got shape "
                    f"{labels.shape}"
                )


@runtime_checkable
class MaskSource(Protocol):
    """Per-object masks frame after frame, for :func:`~napari_sam2.tracking.engine.track_cells`.

    The engine calls ``track(t)`` for t = seed + 1, seed + 2, ... in order; ``add`` and
    ``remove`` happen between those calls, on the frame just tracked (or the seed frame).
    """

    def add(self, frame_idx: int, obj_id: int, mask: np.ndarray) -> None:
        """Start following an object from its (Y, X) bool mask on ``frame_idx``."""
        ...

    def remove(self, obj_id: int) -> None:
        """Stop following an object (it left, died or divided)."""
        ...

    def track(self, frame_idx: int) -> dict[int, np.ndarray]:
        """Each followed object's (Y, X) bool mask on ``frame_idx``; empty when absent."""
        ...

    def propose(self, frame_idx: int, covered: np.ndarray) -> list[np.ndarray]:
        """Candidate cell masks on ``frame_idx``; ``covered`` marks tracked pixels."""
        ...

    def segment(self, frame_idx: int, prompt: PromptSeed) -> np.ndarray:
        """The (Y, X) bool mask that a click/box prompt selects on ``frame_idx``."""
        ...


@runtime_checkable
class _Closable(Protocol):
    def close(self) -> None: ...


def close_source(source: MaskSource) -> None:
    """Release what a source holds now (SAM 2's frame prefetch thread); sources without a
    ``close`` (test doubles) need nothing."""
    if isinstance(source, _Closable):
        source.close()


def exclusive_masks(logits: Any, obj_ids: list[Hashable]) -> dict[Hashable, np.ndarray]:
    """(N, 1, H, W) or (N, H, W) logits → one bool mask per id, each pixel to its best object.

    SAM 2 tracks objects independently, so their masks may overlap; a labels image needs one
    owner per pixel, the object with the highest positive logit.
    """
    import torch

    scores = logits if isinstance(logits, torch.Tensor) else torch.as_tensor(np.asarray(logits))
    if scores.ndim == 4:
        scores = scores[:, 0]
    if scores.shape[0] != len(obj_ids):
        raise ValueError(f"{scores.shape[0]} masks for {len(obj_ids)} object ids")
    if not len(obj_ids):
        return {}
    winner = scores.argmax(dim=0)
    positive = scores.max(dim=0).values > 0
    owner = torch.where(positive, winner, torch.full_like(winner, -1)).cpu().numpy()
    return {obj_id: owner == i for i, obj_id in enumerate(obj_ids)}


class SAM2MaskSource:
    """A :class:`MaskSource` on :class:`sam2.sam2_video_predictor.SAM2VideoPredictor`.

    All objects share one video session, so each frame's image features are computed once for
    every cell. New objects (daughters, entering cells) are added as mask prompts on the frame
    where they were found, and tracking resumes on the next frame. ``frames`` is the raw
    (T, Y, X) stack (numpy, memmap, zarr, dask); ``frame_options`` go to ``init_state`` (e.g.
    ``contrast_limits``). ``proposer`` finds candidates for new cells (None: no entries).
    """

    def __init__(
        self,
        predictor: SAM2VideoPredictor,
        frames: Any,
        *,
        proposer: Proposer | None = None,
        **frame_options: Any,
    ) -> None:
        shape = tuple(getattr(frames, "shape", ()))
        if len(shape) != 3:
            raise ValueError(
                f"SAM2MaskSource needs a (T, Y, X) stack of single-channel frames, got shape "
                f"{shape or type(frames).__name__}"
            )
        self.predictor = predictor
        self.frames = frames
        self.proposer = proposer
        self.state = predictor.init_state(frames, **frame_options)

    def close(self) -> None:
        """Stop the session's frame prefetch thread now (a run that ends early calls this)."""
        close = getattr(self.state.frames, "close", None)
        if close is not None:
            close()

    def add(self, frame_idx: int, obj_id: int, mask: np.ndarray) -> None:
        self.predictor.add_new_mask(self.state, frame_idx, obj_id, np.asarray(mask, dtype=bool))

    def remove(self, obj_id: int) -> None:
        self.predictor.remove_object(self.state, obj_id, need_output=False)

    def track(self, frame_idx: int) -> dict[int, np.ndarray]:
        if not self.state.objects:
            return {}
        results = self.predictor.propagate_in_video(
            self.state, start_frame_idx=frame_idx, max_frame_num_to_track=0
        )
        for result in results:
            if result.frame_idx == frame_idx:
                masks = exclusive_masks(result.logits, result.obj_ids)
                return {int(k): v for k, v in masks.items()}  # type: ignore[call-overload]
        raise RuntimeError(f"SAM 2 returned no result for frame {frame_idx}")

    def propose(self, frame_idx: int, covered: np.ndarray) -> list[np.ndarray]:
        if self.proposer is None:
            return []
        return self.proposer(np.asarray(self.frames[frame_idx]), covered)

    def segment(self, frame_idx: int, prompt: PromptSeed) -> np.ndarray:
        points = labels = box = None
        if prompt.points is not None:
            points = np.asarray(prompt.points, dtype=np.float32)[:, ::-1].copy()  # (y, x) → (x, y)
            labels = (
                np.ones(len(points), np.int32)
                if prompt.labels is None
                else np.asarray(prompt.labels, dtype=np.int32)
            )
        if prompt.box is not None:
            y0, x0, y1, x1 = prompt.box
            box = np.array([x0, y0, x1, y1], dtype=np.float32)
        result = self.predictor.add_new_points_or_box(
            self.state, frame_idx, _PROMPT_ID, points=points, labels=labels, box=box
        )
        mask = (result.logits[result.obj_ids.index(_PROMPT_ID), 0] > 0).cpu().numpy()
        self.predictor.remove_object(self.state, _PROMPT_ID, need_output=False)
        return mask


def sam2_mask_source(
    predictor: SAM2VideoPredictor,
    frames: Any,
    *,
    entries: EntryDetector = "threshold",
    contrast_limits: tuple[float, float] | None = None,
) -> SAM2MaskSource:
    """The SAM 2 mask source that the command line and the napari widget track with.

    ``predictor`` carries the model, its precision and the tracking options (both callers
    hand :data:`~napari_sam2.models.TRACKING_OPTIONS`); ``entries`` names the entry detector
    (:func:`~napari_sam2.tracking.proposals.make_proposer`).
    """
    from sam2.sam2_video_predictor import SAM2VideoPredictor

    if not isinstance(predictor, SAM2VideoPredictor):
        raise TypeError(
            f"cells are tracked with a SAM2VideoPredictor, got {type(predictor).__name__}; "
            "build one with LoadedModel.video_predictor(TRACKING_OPTIONS)"
        )
    proposer = make_proposer(entries, predictor.model)
    options = {"contrast_limits": contrast_limits} if contrast_limits is not None else {}
    return SAM2MaskSource(predictor, frames, proposer=proposer, **options)
