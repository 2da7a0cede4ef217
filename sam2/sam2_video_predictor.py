"""Video (and z-stack) segmentation with SAM 2's streaming memory, with the reference's API.

``init_state`` opens a video lazily and returns a typed :class:`VideoSession`; prompts are added
per frame and object; ``propagate_in_video`` yields one :class:`FrameResult` per frame (it
unpacks as the reference's ``(frame_idx, obj_ids, masks)``). Objects are tracked
independently (batch 1 each) but share each frame's image features.

This module is the facade: it checks and translates the reference's arguments (numpy or
tensors, ``normalize_coords``, the option keywords) and forwards to
:class:`~sam2.video.engine.VideoEngine`, which does the tracking.

Memory: by default only what the next frames can use is kept (conditioning frames, the last
``num_maskmem - 1`` memories, ≤ 16 object pointers per object), so memory does not grow with
the stack. ``init_state(..., keep_history=True)`` keeps every output as the reference does,
which makes later corrections on any tracked frame behave exactly like it.

``precision="bf16"`` runs every model step under bfloat16 autocast (see :mod:`sam2.precision`);
masks handed out are float32 either way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Hashable, Iterator
from typing import Any

import torch
from torch import Tensor

from sam2.modeling.sam2_model import SAM2Model
from sam2.precision import Precision, PrecisionChoice
from sam2.video.engine import FrameResult, VideoEngine
from sam2.video.inputs import (
    check_flag,
    check_frame_mask,
    check_obj_id,
    check_span,
    check_video_prompt,
)
from sam2.video.memory import FrameOutput
from sam2.video.options import TrackingOptions, resolve_options
from sam2.video.session import PointPrompt, PropagationGuard, VideoSession


class SAM2VideoPredictor:
    """Interactive video object segmentation (``model`` is a built :class:`SAM2Model`)."""

    def __init__(
        self,
        model: SAM2Model,
        options: TrackingOptions | None = None,
        *,
        precision: PrecisionChoice = "fp32",
        **reference_keywords: Any,
    ) -> None:
        """``options`` or the reference's keywords (``fill_hole_area=8``, ...), not both.

        Without ``options``, masks from clicks are binarised for memory as the model's config
        says (``binarize_mask_from_pts_for_mem_enc``, set by the video builder).
        """
        binarize = model.config.binarize_mask_from_pts_for_mem_enc
        options = resolve_options(options, reference_keywords, binarize_mask_from_pts=binarize)
        self.engine = VideoEngine(model, options, precision)

    @classmethod
    def from_pretrained(cls, model_id: str, **kwargs: Any) -> SAM2VideoPredictor:
        """Video predictor for an official model id, e.g. ``"facebook/sam2.1-hiera-tiny"``."""
        from sam2.build_sam import build_sam2_video_predictor_hf

        return build_sam2_video_predictor_hf(model_id, **kwargs)

    # Read-only views of the engine's settings: one place holds them.
    @property
    def model(self) -> SAM2Model:
        return self.engine.model

    @property
    def options(self) -> TrackingOptions:
        return self.engine.options

    @property
    def precision(self) -> Precision:
        return self.engine.precision

    @property
    def image_size(self) -> int:
        return self.model.image_size

    @property
    def device(self) -> torch.device:
        return self.model.device

    # ------------------------------------------------------------------ session
    @torch.inference_mode()
    def init_state(
        self,
        video_path: Any,
        offload_video_to_cpu: bool = False,
        offload_state_to_cpu: bool = False,
        async_loading_frames: bool = False,
        keep_history: bool = False,
        warm_up: bool = False,
        **frame_options: Any,
    ) -> VideoSession:
        """Open a video: a JPEG folder, a tif stack, an array (T first) or a FrameSource.

        Frames are read lazily (the ``offload``/``async`` flags are accepted for
        compatibility; frames never all live in memory). ``frame_options`` go to
        :func:`sam2.frames.open_frames` (e.g. ``contrast_limits``, ``channel``). Nothing is
        encoded unless ``warm_up`` (the reference encodes frame 0 here).
        """
        from sam2.frames import open_frames

        frames = open_frames(video_path, self.image_size, **frame_options)
        if len(frames) == 0:
            raise ValueError("the video has no frames")
        session = VideoSession(frames=frames, device=self.device, keep_history=keep_history)
        if warm_up:
            self.engine.features(session, 0)
        return session

    def reset_state(self, inference_state: VideoSession) -> None:
        """Forget all objects, prompts and results (frames stay open).

        A propagation suspended at a yield raises a clear ``RuntimeError`` if resumed.
        """
        inference_state.reset()

    # ------------------------------------------------------------------ prompts
    @torch.inference_mode()
    def add_new_points_or_box(
        self,
        inference_state: VideoSession,
        frame_idx: int,
        obj_id: Hashable,
        points: Any = None,
        labels: Any = None,
        clear_old_points: bool = True,
        normalize_coords: bool = True,
        box: Any = None,
    ) -> FrameResult:
        """Click points (N, 2) (x, y) with labels (N,) 1/0, and/or a box [x0, y0, x1, y1].

        Every argument is checked before the session changes, so a refused call leaves it
        as it was.
        """
        session = inference_state
        frame_idx = session.check_frame(frame_idx)
        obj_id = check_obj_id(obj_id)
        clear_old_points = check_flag(clear_old_points, "clear_old_points")
        normalize_coords = check_flag(normalize_coords, "normalize_coords")
        hw = (session.video_height, session.video_width)
        coords, labs = check_video_prompt(  # (P, 2) (x, y), (P,); box corners first
            points,
            labels,
            box,
            hw,
            normalize_coords=normalize_coords,
            clear_old_points=clear_old_points,
        )
        xy = torch.from_numpy(coords)[None]  # (1, P, 2), in [0, 1] or video pixels
        if normalize_coords:
            xy = xy / torch.tensor([session.video_width, session.video_height])
        prompt = PointPrompt(
            coords=(xy * self.image_size).to(self.device),
            labels=torch.from_numpy(labs)[None].to(self.device),
        )
        return self.engine.add_points(session, frame_idx, obj_id, prompt, clear_old_points)

    def add_new_points(self, *args: Any, **kwargs: Any) -> FrameResult:
        """Old name of :meth:`add_new_points_or_box`."""
        return self.add_new_points_or_box(*args, **kwargs)

    @torch.inference_mode()
    def add_new_mask(
        self, inference_state: VideoSession, frame_idx: int, obj_id: Hashable, mask: Any
    ) -> FrameResult:
        """A (H, W) binary mask of the object on a frame (H, W = the video's size)."""
        session = inference_state
        frame_idx = session.check_frame(frame_idx)
        obj_id = check_obj_id(obj_id)
        array = check_frame_mask(mask, (session.video_height, session.video_width))
        return self.engine.add_mask(session, frame_idx, obj_id, torch.from_numpy(array))

    # ------------------------------------------------------------------ propagation
    @torch.inference_mode()
    def propagate_in_video_preflight(self, inference_state: VideoSession) -> None:
        """Encode the memories of prompted frames and make them available to tracking."""
        self.engine.preflight(inference_state)

    @torch.inference_mode()
    def propagate_in_video(
        self,
        inference_state: VideoSession,
        start_frame_idx: int | None = None,
        max_frame_num_to_track: int | None = None,
        reverse: bool = False,
    ) -> Iterator[FrameResult]:
        """Track every object frame by frame, yielding ``(frame_idx, obj_ids, masks)``.

        Forward runs from the earliest prompted frame (or ``start_frame_idx``) over up to
        ``max_frame_num_to_track + 1`` frames; reverse runs back towards frame 0. Stopping the
        iteration leaves the session valid: finished frames are kept and tracking can resume.
        Editing the session between frames so that tracking cannot go on (``reset_state``, a
        new object, no objects left) makes the next frame raise a ``RuntimeError`` that says so.
        """
        session = inference_state
        start = start_frame_idx
        if start is not None:
            start = session.check_frame(start, "start_frame_idx")
        span = check_span(max_frame_num_to_track)
        frames = self.engine.propagate(session, start, span, check_flag(reverse, "reverse"))
        guard: PropagationGuard | None = None
        with contextlib.closing(frames):
            for result in frames:
                guard = guard or PropagationGuard(session)  # after preflight, before any edit
                yield result
                guard.check()  # the caller ran between frames: is the pass still valid?

    # ------------------------------------------------------------------ editing
    @torch.inference_mode()
    def clear_all_prompts_in_frame(
        self,
        inference_state: VideoSession,
        frame_idx: int,
        obj_id: Hashable,
        need_output: bool = True,
    ) -> FrameResult | None:
        """Remove one object's prompts on a frame; a prompted frame becomes an ordinary one."""
        session = inference_state
        frame_idx = session.check_frame(frame_idx)
        self.engine.clear_prompts(session, frame_idx, check_obj_id(obj_id))
        return self.engine.frame_result(session, frame_idx) if need_output else None

    @torch.inference_mode()
    def remove_object(
        self,
        inference_state: VideoSession,
        obj_id: Hashable,
        strict: bool = False,
        need_output: bool = True,
    ) -> tuple[list[Hashable], list[tuple[int, Tensor]]]:
        """Drop an object; returns the remaining ids and the frames whose output changed."""
        session = inference_state
        obj_id = check_obj_id(obj_id)
        if obj_id not in session.objects:
            if strict:
                raise RuntimeError(
                    f"cannot remove object id {obj_id!r}: known ids are {session.obj_ids}"
                )
            return session.obj_ids, []
        updated = self.engine.remove_object(session, obj_id, need_output)
        return session.obj_ids, updated


__all__ = ["FrameOutput", "FrameResult", "SAM2VideoPredictor", "TrackingOptions", "VideoSession"]
