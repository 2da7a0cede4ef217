"""Video (and z-stack) segmentation with SAM 2's streaming memory, with the reference's API.

``init_state`` opens a video lazily and returns a typed :class:`VideoSession`; prompts are added
per frame and object; ``propagate_in_video`` yields one frame at a time. Objects are tracked
independently (batch 1 each) but share each frame's image features.

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

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sam2.modeling.sam2_model import NO_OBJ_SCORE, ImageFeatures, SAM2Model
from sam2.postprocess import apply_non_overlapping_constraints
from sam2.precision import Precision, autocast_context, check_precision
from sam2.prompts import validate_box, validate_points
from sam2.video.memory import FrameOutput
from sam2.video.options import TrackingOptions, resolve_options
from sam2.video.session import ObjectState, PointPrompt, VideoSession
from sam2.video.tracker import encode_output_memory, memory_rules, track_step

FrameResult = tuple[int, list[Hashable], Tensor]  # frame, object ids, (N, 1, H, W) logits


class SAM2VideoPredictor:
    """Interactive video object segmentation (``model`` is a built :class:`SAM2Model`)."""

    def __init__(
        self,
        model: SAM2Model,
        options: TrackingOptions | None = None,
        *,
        precision: Precision = "fp32",
        **reference_keywords: Any,
    ) -> None:
        """``options`` or the reference's keywords (``fill_hole_area=8``, ...), not both.

        Without ``options``, masks from clicks are binarised for memory as the model's config
        says (``binarize_mask_from_pts_for_mem_enc``, set by the video builder).
        """
        self.model = model
        self.precision: Precision = check_precision(precision, model.device)
        binarize = model.config.binarize_mask_from_pts_for_mem_enc
        self.options: TrackingOptions = resolve_options(
            options, reference_keywords, binarize_mask_from_pts=binarize
        )
        self.rules = memory_rules(model)

    @classmethod
    def from_pretrained(cls, model_id: str, **kwargs: Any) -> SAM2VideoPredictor:
        """Video predictor for an official model id, e.g. ``"facebook/sam2.1-hiera-tiny"``."""
        from sam2.build_sam import build_sam2_video_predictor_hf

        return build_sam2_video_predictor_hf(model_id, **kwargs)

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
            self._features(session, 0)
        return session

    def reset_state(self, inference_state: VideoSession) -> None:
        """Forget all objects, prompts and results (frames stay open)."""
        inference_state.objects.clear()

    def _autocast(self) -> contextlib.AbstractContextManager[None]:
        """Around model calls only: autocast must not leak into a caller between yields."""
        return autocast_context(self.precision, self.device)

    def _features(self, session: VideoSession, frame_idx: int) -> ImageFeatures:
        """A frame's image features, from the session's cache or encoded (and cached) now."""
        features = session.features.get(frame_idx)
        if features is None:
            image = session.frames.get(frame_idx).to(self.device, self.model.dtype)[None]
            with self._autocast():
                features = self.model.encode_image(image)  # from (1, 3, S, S)
            session.features.put(frame_idx, features, keep=session.prompted_frames())
        return features

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
        """Click points (N, 2) (x, y) with labels (N,) 1/0, and/or a box [x0, y0, x1, y1]."""
        session = inference_state
        frame_idx = session.check_frame(frame_idx)
        if (points is None) != (labels is None):
            raise ValueError("points and labels must be provided together")
        if points is None and box is None:
            raise ValueError("give points with labels, a box, or both")
        if box is not None and not clear_old_points:
            raise ValueError(
                "a box must come before any click: use clear_old_points=True with a box"
            )
        hw = (session.video_height, session.video_width)
        coords = np.zeros((0, 2), np.float32)
        labs = np.zeros((0,), np.int32)
        if points is not None:
            coords, labs = validate_points(
                _as_numpy(points), _as_numpy(labels), hw, normalize_coords
            )
            coords, labs = coords.reshape(-1, 2), labs.reshape(-1)
        if box is not None:
            corners = validate_box(_as_numpy(box), hw, normalize_coords).reshape(2, 2)
            coords = np.concatenate([corners, coords])
            labs = np.concatenate([np.array([2, 3], np.int32), labs])
        xy = torch.from_numpy(coords)[None]
        if normalize_coords:
            xy = xy / torch.tensor([session.video_width, session.video_height])
        prompt = PointPrompt(
            coords=(xy * self.image_size).to(self.device),
            labels=torch.from_numpy(labs)[None].to(self.device),
        )
        obj = session.object(obj_id, create=True)
        old = obj.points.get(frame_idx) if not clear_old_points else None
        if old is not None:
            prompt = PointPrompt(
                torch.cat([old.coords, prompt.coords], 1), torch.cat([old.labels, prompt.labels], 1)
            )
        obj.points[frame_idx] = prompt
        obj.masks.pop(frame_idx, None)
        return self._run_prompt(session, obj, frame_idx, prompt=prompt)

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
        array = _as_numpy(mask)
        if array.ndim != 2:
            raise ValueError(f"mask must be a 2D (H, W) array, got shape {array.shape}")
        if array.shape != (session.video_height, session.video_width):
            raise ValueError(
                f"mask of shape {array.shape} does not match the video's frames "
                f"({session.video_height}, {session.video_width})"
            )
        m = torch.from_numpy(array.astype(bool)).float()[None, None].to(self.device)
        size = self.image_size
        if m.shape[-2:] != (size, size):
            m = F.interpolate(
                m, size=(size, size), mode="bilinear", align_corners=False, antialias=True
            )
            m = (m >= 0.5).float()
        obj = session.object(obj_id, create=True)
        obj.masks[frame_idx] = m
        obj.points.pop(frame_idx, None)
        return self._run_prompt(session, obj, frame_idx, mask=m)

    def _run_prompt(
        self,
        session: VideoSession,
        obj: ObjectState,
        frame_idx: int,
        prompt: PointPrompt | None = None,
        mask: Tensor | None = None,
    ) -> FrameResult:
        """Decode the object on a prompted frame (memory is encoded later, in preflight)."""
        is_init = frame_idx not in obj.tracked
        ctx = None
        if not is_init:
            try:
                ctx = obj.bank.select(
                    frame_idx, obj.tracked[frame_idx], session.num_frames, self.rules
                )
            except RuntimeError:  # its prompted frames were cleared: start afresh here
                ctx, is_init = None, True
        is_cond = is_init or self.options.add_all_frames_to_correct_as_cond
        prev_logits = None
        if prompt is not None:
            prev = obj.output_on(frame_idx, prefer_cond=is_cond)
            if prev is not None and prev.pred_masks is not None:
                prev_logits = torch.clamp(prev.pred_masks.to(self.device), -32.0, 32.0)
        feats = self._features(session, frame_idx)
        with self._autocast():
            step = track_step(
                self.model,
                feats,
                ctx,
                session.maskmem_pos_enc,
                point_coords=prompt.coords if prompt else None,
                point_labels=prompt.labels if prompt else None,
                mask_inputs=mask,
                prev_mask_logits=prev_logits,
                run_mem_encoder=False,
                fill_hole_area=self.options.fill_hole_area,
                binarize_mask_from_pts=self.options.binarize_mask_from_pts,
            )
        obj.pending[frame_idx] = (step.output, is_cond)
        return frame_idx, session.obj_ids, self._frame_masks(session, frame_idx, is_cond)

    # ------------------------------------------------------------------ outputs
    def _frame_masks(self, session: VideoSession, frame_idx: int, is_cond: bool | None) -> Tensor:
        """(N, 1, H, W) logits of every object on a frame; objects absent there get -1024."""
        h, w = session.video_height, session.video_width
        out = torch.full((len(session.objects), 1, h, w), NO_OBJ_SCORE, device=self.device)
        for i, obj in enumerate(session.objects.values()):
            result = obj.output_on(frame_idx, prefer_cond=is_cond)
            if result is not None and result.pred_masks is not None:
                out[i : i + 1] = F.interpolate(
                    result.pred_masks.to(self.device).float(),
                    size=(h, w),
                    mode="bilinear",
                    align_corners=False,
                )
        return apply_non_overlapping_constraints(out) if self.options.non_overlap_masks else out

    def _to_video_res(self, session: VideoSession, masks: Tensor) -> Tensor:
        h, w = session.video_height, session.video_width
        masks = masks.float()
        if masks.shape[-2:] != (h, w):
            masks = F.interpolate(masks, size=(h, w), mode="bilinear", align_corners=False)
        return apply_non_overlapping_constraints(masks) if self.options.non_overlap_masks else masks

    # ------------------------------------------------------------------ propagation
    @torch.inference_mode()
    def propagate_in_video_preflight(self, inference_state: VideoSession) -> None:
        """Encode the memories of prompted frames and make them available to tracking."""
        session = inference_state
        if not session.objects:
            raise RuntimeError("no object has prompts yet: add points, a box or a mask first")
        for obj in session.objects.values():
            for want_cond in (False, True):
                for frame_idx, (out, is_cond) in list(obj.pending.items()):
                    if is_cond != want_cond:
                        continue
                    if out.maskmem_features is None:
                        feats = self._features(session, frame_idx)
                        with self._autocast():
                            out.maskmem_features, pos = encode_output_memory(
                                self.model, feats, out, binarize=self.options.binarize_mask_from_pts
                            )
                        if session.maskmem_pos_enc is None:
                            session.maskmem_pos_enc = pos[0:1].clone()
                    obj.bank.add(frame_idx, out, conditioning=is_cond)
                    if self.options.clear_non_cond_mem_around_input:
                        obj.bank.drop_around(frame_idx, self.rules)
            obj.pending.clear()
            if not obj.bank.conditioning_frames:
                raise RuntimeError(
                    f"object {obj.obj_id!r} has no prompted frame; add points, a box or a mask "
                    "for it on some frame (or remove it) before propagating"
                )

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
        """
        session = inference_state
        self.propagate_in_video_preflight(session)
        n = session.num_frames
        if start_frame_idx is None:
            start_frame_idx = min(
                t for obj in session.objects.values() for t in obj.bank.conditioning_frames
            )
        start = session.check_frame(start_frame_idx)
        span = n if max_frame_num_to_track is None else int(max_frame_num_to_track)
        if span < 0:
            raise ValueError(f"max_frame_num_to_track must be ≥ 0, got {span}")
        if reverse:
            order = range(start, max(start - span, 0) - 1, -1) if start > 0 else range(0)
        else:
            order = range(start, min(start + span, n - 1) + 1)
        for frame_idx in order:
            masks = [
                self._track_object(session, obj, frame_idx, reverse)
                for obj in session.objects.values()
            ]
            yield frame_idx, session.obj_ids, self._to_video_res(session, torch.cat(masks, dim=0))

    def _track_object(
        self, session: VideoSession, obj: ObjectState, frame_idx: int, reverse: bool
    ) -> Tensor:
        cond = obj.bank.conditioning_output(frame_idx)
        if cond is not None and cond.pred_masks is not None:
            masks = cond.pred_masks.to(self.device)
            if self.options.clear_non_cond_mem_around_input:
                obj.bank.drop_around(frame_idx, self.rules)
        else:
            ctx = obj.bank.select(frame_idx, reverse, session.num_frames, self.rules)
            feats = self._features(session, frame_idx)
            with self._autocast():
                step = track_step(
                    self.model,
                    feats,
                    ctx,
                    session.maskmem_pos_enc,
                    run_mem_encoder=True,
                    fill_hole_area=self.options.fill_hole_area,
                    binarize_mask_from_pts=self.options.binarize_mask_from_pts,
                )
            if session.maskmem_pos_enc is None and step.maskmem_pos_enc is not None:
                session.maskmem_pos_enc = step.maskmem_pos_enc[0:1].clone()
            obj.bank.add(frame_idx, step.output, conditioning=False)
            masks = step.masks
        obj.tracked[frame_idx] = reverse
        if not session.keep_history:
            obj.bank.evict(frame_idx, reverse, self.rules)
        return masks

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
        obj = session.object(obj_id)
        obj.points.pop(frame_idx, None)
        obj.masks.pop(frame_idx, None)
        obj.pending.pop(frame_idx, None)
        if obj.bank.demote(frame_idx):
            obj.tracked.pop(frame_idx, None)
        if not need_output:
            return None
        is_cond = _pending_is_cond(session, frame_idx)
        return frame_idx, session.obj_ids, self._frame_masks(session, frame_idx, is_cond)

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
        if obj_id not in session.objects:
            if strict:
                raise RuntimeError(
                    f"cannot remove object id {obj_id!r}: known ids are {session.obj_ids}"
                )
            return session.obj_ids, []
        if len(session.objects) == 1:
            self.reset_state(session)
            return session.obj_ids, []
        obj = session.objects[obj_id]
        frames = sorted(set(obj.points) | set(obj.masks))
        del session.objects[obj_id]
        updated = []
        if need_output:
            for frame_idx in frames:
                is_cond = _pending_is_cond(session, frame_idx)
                updated.append((frame_idx, self._frame_masks(session, frame_idx, is_cond)))
        return session.obj_ids, updated


def _pending_is_cond(session: VideoSession, frame_idx: int) -> bool:
    """Whether some object's not-yet-encoded prompt on ``frame_idx`` is a conditioning one."""
    return any(
        is_cond
        for obj in session.objects.values()
        for t, (_, is_cond) in obj.pending.items()
        if t == frame_idx
    )


def _as_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


__all__ = ["FrameOutput", "SAM2VideoPredictor", "TrackingOptions", "VideoSession"]
