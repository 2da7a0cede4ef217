"""The tracking engine behind :class:`~sam2.sam2_video_predictor.SAM2VideoPredictor`.

The predictor is the reference's API (``inference_state``, ``obj_id``, ``normalize_coords``,
numpy or tensor inputs); this module does the work: it encodes frames through the session's
:class:`~sam2.video.features.FeatureCache`, decodes prompts, encodes their memories before a
pass (:meth:`VideoEngine.preflight`), tracks the objects frame by frame (batched where their
memories line up) and applies corrections. Its inputs are already validated and in model
units (prompt points in model-input pixels, masks as tensors), so it never second-guesses a
caller.

Shape: a class, ``VideoEngine(model, options, precision)``, over :class:`VideoSession`
values. What stays fixed for a predictor (the model, its memory rules, the tracking options,
the precision) is bound once; what belongs to one video (frames, objects, banks, features)
stays in the session it is handed. Free functions over the session would need those four
passed to every call, and methods on ``VideoSession`` would make a plain data value carry the
model. Memory is kept or dropped only through :class:`~sam2.video.memory.MemoryBank`'s methods.

Shapes: N objects, H×W the video's frames, S the model input size, h×w = S/4.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Hashable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from sam2.modeling.sam2_model import NO_OBJ_SCORE, ImageFeatures, SAM2Model
from sam2.postprocess import apply_non_overlapping_constraints
from sam2.precision import Precision, PrecisionChoice, autocast_context, check_precision
from sam2.video.memory import MemoryContext, stack_contexts
from sam2.video.options import TrackingOptions
from sam2.video.session import ObjectState, PointPrompt, VideoSession
from sam2.video.tracker import StepResult, encode_output_memory, memory_rules, track_step
from sam2.video.window import Window, background_memory, mask_box, window_after, windowed_step

__all__ = ["BATCH_TOKENS", "FrameResult", "VideoEngine"]

#: Objects share a batch only while the batch holds at most this many query tokens: batching
#: pays where per-object work is small (256 input, 16×16 tokens: 10 demo-model cells 0.23 →
#: 0.16 s/frame), not where it is FLOP-bound (1024 input, 64×64 tokens: 20 objects 62 vs
#: 64 s/frame for the reference, for 1.5 GB more memory), so full frames at 1024 go one by one
#: and fast tracking's small windows batch freely.
BATCH_TOKENS = 4096


class FrameResult(NamedTuple):
    """Every object's masks on one frame.

    A named tuple, so ``frame_idx, obj_ids, masks = result`` works as with the reference's
    plain tuple, while our code can read ``result.logits``.
    """

    frame_idx: int
    obj_ids: list[Hashable]  # in the order of ``logits``' first axis
    logits: Tensor  # (N, 1, H, W) float32 mask logits; -1024 where an object is absent


class VideoEngine:
    """Prompts, memory and tracking of video sessions with one model and one set of options."""

    def __init__(
        self, model: SAM2Model, options: TrackingOptions, precision: PrecisionChoice = "fp32"
    ) -> None:
        self.model = model
        self.options = options
        self.precision: Precision = check_precision(precision, model.device)
        self.rules = memory_rules(model)
        self.grid = model.image_size // 16  # tokens per side of the frame's features

    @property
    def device(self) -> torch.device:
        return self.model.device

    def _autocast(self) -> contextlib.AbstractContextManager[None]:
        """Around model calls only: autocast must not leak into a caller between yields."""
        return autocast_context(self.precision, self.device)

    def features(self, session: VideoSession, frame_idx: int) -> ImageFeatures:
        """A frame's image features, from the session's cache or encoded (and cached) now."""
        features = session.features.get(frame_idx)
        if features is None:
            image = session.frames.get(frame_idx).to(self.device, self.model.dtype)[None]
            with self._autocast():
                features = self.model.encode_image(image)  # from (1, 3, S, S)
            session.features.put(frame_idx, features, keep=session.prompted_frames())
        return features

    # ------------------------------------------------------------------ prompts
    def add_points(
        self,
        session: VideoSession,
        frame_idx: int,
        obj_id: Hashable,
        prompt: PointPrompt,
        clear_old_points: bool = True,
    ) -> FrameResult:
        """Clicks (and box corners) on a frame, appended to the frame's earlier clicks unless
        ``clear_old_points``; a mask prompt there is replaced."""
        obj = session.object(obj_id, create=True)
        old = None if clear_old_points else obj.points.get(frame_idx)
        if old is not None:
            prompt = PointPrompt(
                torch.cat([old.coords, prompt.coords], 1), torch.cat([old.labels, prompt.labels], 1)
            )
        obj.points[frame_idx] = prompt
        obj.masks.pop(frame_idx, None)
        return self._run_prompt(session, obj, frame_idx, prompt=prompt)

    def add_mask(
        self, session: VideoSession, frame_idx: int, obj_id: Hashable, mask: Tensor
    ) -> FrameResult:
        """A (H, W) boolean mask of the object on a frame; it replaces the frame's clicks."""
        m = mask.float()[None, None].to(self.device)  # (1, 1, H, W)
        size = self.model.image_size
        if m.shape[-2:] != (size, size):
            m = F.interpolate(
                m, size=(size, size), mode="bilinear", align_corners=False, antialias=True
            )
            m = (m >= 0.5).float()  # (1, 1, S, S), binary again after antialiasing
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
        """Decode the object on a prompted frame (memory is encoded later, in preflight).

        On a frame already tracked the prompt is a correction: the decoder sees the memories
        that frame was tracked with, and refines the earlier mask with the new clicks.
        """
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
        step = self._step(
            session,
            frame_idx,
            ctx,
            run_mem_encoder=False,
            point_coords=prompt.coords if prompt else None,
            point_labels=prompt.labels if prompt else None,
            mask_inputs=mask,
            prev_mask_logits=prev_logits,
        )
        obj.pending[frame_idx] = (step.output, is_cond)
        return FrameResult(
            frame_idx, session.obj_ids, self._frame_masks(session, frame_idx, is_cond)
        )

    def _step(
        self,
        session: VideoSession,
        frame_idx: int,
        ctx: MemoryContext | None,
        *,
        run_mem_encoder: bool,
        point_coords: Tensor | None = None,
        point_labels: Tensor | None = None,
        mask_inputs: Tensor | None = None,
        prev_mask_logits: Tensor | None = None,
    ) -> StepResult:
        """One decoder step on a frame with this engine's options: a prompt decodes without
        encoding memory (preflight does that), a tracked frame encodes its memory at once."""
        feats = self.features(session, frame_idx)
        with self._autocast():
            return track_step(
                self.model,
                feats,
                ctx,
                session.maskmem_pos_enc,
                point_coords=point_coords,
                point_labels=point_labels,
                mask_inputs=mask_inputs,
                prev_mask_logits=prev_mask_logits,
                run_mem_encoder=run_mem_encoder,
                fill_hole_area=self.options.fill_hole_area,
                binarize_mask_from_pts=self.options.binarize_mask_from_pts,
            )

    # ------------------------------------------------------------------ outputs
    def frame_result(self, session: VideoSession, frame_idx: int) -> FrameResult:
        """Every object's current masks on a frame (after a prompt was cleared or removed)."""
        is_cond = session.pending_is_cond(frame_idx)
        return FrameResult(
            frame_idx, session.obj_ids, self._frame_masks(session, frame_idx, is_cond)
        )

    def _frame_masks(self, session: VideoSession, frame_idx: int, is_cond: bool | None) -> Tensor:
        """(N, 1, H, W) logits of every object on a frame; objects absent there get -1024."""
        h, w = session.video_height, session.video_width
        out = torch.full((len(session.objects), 1, h, w), NO_OBJ_SCORE, device=self.device)
        for i, obj in enumerate(session.objects.values()):
            result = obj.output_on(frame_idx, prefer_cond=is_cond)
            if result is not None and result.pred_masks is not None:
                out[i : i + 1] = F.interpolate(
                    result.pred_masks.to(self.device).float(),  # (1, 1, h, w)
                    size=(h, w),
                    mode="bilinear",
                    align_corners=False,
                )
        return apply_non_overlapping_constraints(out) if self.options.non_overlap_masks else out

    def _to_video_res(self, session: VideoSession, masks: Tensor) -> Tensor:
        """(N, 1, h, w) tracked logits to (N, 1, H, W), objects kept apart if asked."""
        h, w = session.video_height, session.video_width
        masks = masks.float()
        if masks.shape[-2:] != (h, w):
            masks = F.interpolate(masks, size=(h, w), mode="bilinear", align_corners=False)
        return apply_non_overlapping_constraints(masks) if self.options.non_overlap_masks else masks

    # ------------------------------------------------------------------ propagation
    def preflight(self, session: VideoSession) -> None:
        """Encode the memories of prompted frames and hand them to each object's bank.

        Ordinary (correction) outputs go in before conditioning ones, so a frame prompted both
        ways ends up a conditioning frame, as in the reference.
        """
        if not session.objects:
            raise RuntimeError("no object has prompts yet: add points, a box or a mask first")
        for obj in session.objects.values():
            for want_cond in (False, True):
                for frame_idx, (out, is_cond) in list(obj.pending.items()):
                    if is_cond != want_cond:
                        continue
                    if out.maskmem_features is None:
                        feats = self.features(session, frame_idx)
                        with self._autocast():
                            out.maskmem_features, pos = encode_output_memory(
                                self.model, feats, out, binarize=self.options.binarize_mask_from_pts
                            )
                        session.remember_pos_enc(pos)
                    obj.bank.add(frame_idx, out, conditioning=is_cond)
                    if self.options.clear_non_cond_mem_around_input:
                        obj.bank.drop_around(frame_idx, self.rules)
            obj.pending.clear()
            if not obj.bank.conditioning_frames:
                raise RuntimeError(
                    f"object {obj.obj_id!r} has no prompted frame; add points, a box or a mask "
                    "for it on some frame (or remove it) before propagating"
                )

    def propagate(
        self,
        session: VideoSession,
        start: int | None = None,
        span: int | None = None,
        reverse: bool = False,
    ) -> Generator[FrameResult, None, None]:
        """Preflight, then track every object over ``span + 1`` frames from ``start``.

        ``start`` None: the earliest prompted frame; ``span`` None: to the end (or frame 0 in
        reverse). A generator: nothing runs until the first frame is asked for, and stopping
        early leaves the session valid (finished frames are kept, tracking can resume).
        """
        self.preflight(session)
        n = session.num_frames
        if start is None:
            start = min(t for obj in session.objects.values() for t in obj.bank.conditioning_frames)
        start = session.check_frame(start)
        span = n if span is None else int(span)
        if span < 0:
            raise ValueError(f"max_frame_num_to_track must be ≥ 0, got {span}")
        if reverse:
            order = range(start, max(start - span, 0) - 1, -1) if start > 0 else range(0)
        else:
            order = range(start, min(start + span, n - 1) + 1)
        for frame_idx in order:
            masks = self._track_frame(session, frame_idx, reverse)  # (N, 1, h, w)
            yield FrameResult(frame_idx, session.obj_ids, self._to_video_res(session, masks))

    def _track_frame(self, session: VideoSession, frame_idx: int, reverse: bool) -> Tensor:
        """(N, 1, h, w) logits of every object on one frame, their memories banked for the next.

        A prompted frame hands back the object's decoded mask; the other objects are tracked
        from memory, those whose memories line up (same frames, same pointer distances) in
        batches of ``options.object_batch_size``; with ``options.window`` (fast tracking)
        each in a window around its previous mask where it fits one.
        """
        objects = list(session.objects.values())
        masks: list[Tensor | None] = [None] * len(objects)
        # (memory layout, window side or None) -> (object index, its memories, its window)
        waiting: dict[tuple[Hashable, int | None], list[tuple[int, MemoryContext, Window | None]]]
        waiting = {}
        for i, obj in enumerate(objects):
            cond = obj.bank.conditioning_output(frame_idx)
            if cond is not None and cond.pred_masks is not None:
                masks[i] = cond.pred_masks.to(self.device)
                if self.options.clear_non_cond_mem_around_input:
                    obj.bank.drop_around(frame_idx, self.rules)
            else:
                ctx = obj.bank.select(frame_idx, reverse, session.num_frames, self.rules)
                window = None
                if self.options.window is not None:
                    previous = obj.bank.get(frame_idx + 1 if reverse else frame_idx - 1)
                    window = window_after(previous, obj.motion, self.grid, self.options.window)
                key = (ctx.layout(), None if window is None else window.side)
                waiting.setdefault(key, []).append((i, ctx, window))
        background: tuple[Tensor, Tensor] | None = None  # fast tracking: the frame's empty memory
        for (_, side), members in waiting.items():
            tokens = (side or self.grid) ** 2  # query tokens per object
            size = max(1, min(self.options.object_batch_size, BATCH_TOKENS // tokens))
            for start in range(0, len(members), size):
                batch = members[start : start + size]
                ctx = batch[0][1] if len(batch) == 1 else stack_contexts([c for _, c, _ in batch])
                redo: list[int] = []
                if side is None:
                    step = self._step(session, frame_idx, ctx, run_mem_encoder=True)
                else:
                    windows = [w for _, _, w in batch if w is not None]
                    step, touched, background = self._windowed_step(
                        session, frame_idx, ctx, windows, background
                    )
                    redo = [j for j, t in enumerate(touched) if t]
                if step.maskmem_pos_enc is not None:
                    session.remember_pos_enc(step.maskmem_pos_enc)
                for j, (i, _, _) in enumerate(batch):
                    if j in redo:  # it outgrew its window: the full frame, as exact SAM 2
                        full = self._step(session, frame_idx, batch[j][1], run_mem_encoder=True)
                        output, mask = full.output, full.masks
                    else:
                        output = step.output if len(batch) == 1 else step.output.take(j)
                        mask = step.masks[j : j + 1]
                    objects[i].bank.add(frame_idx, output, conditioning=False)
                    masks[i] = mask
        for obj, found in zip(objects, masks, strict=True):
            obj.tracked[frame_idx] = reverse
            if self.options.window is not None and found is not None:
                obj.motion.update(mask_box(found))
            if not session.keep_history:
                obj.bank.evict(frame_idx, reverse, self.rules)
        return torch.cat([m for m in masks if m is not None], dim=0)

    def _windowed_step(
        self,
        session: VideoSession,
        frame_idx: int,
        ctx: MemoryContext,
        windows: list[Window],
        background: tuple[Tensor, Tensor] | None,
    ) -> tuple[StepResult, list[bool], tuple[Tensor, Tensor]]:
        """Fast tracking of a batch in windows of one side; the frame's empty memory is
        computed for its first batch and handed back for the others."""
        window = self.options.window
        assert window is not None and session.maskmem_pos_enc is not None
        feats = self.features(session, frame_idx)
        with self._autocast():
            if background is None:
                background = background_memory(self.model, feats)
            step, touched = windowed_step(
                self.model, feats, ctx, session.maskmem_pos_enc, windows, background,
                halo=window.halo, fill_hole_area=self.options.fill_hole_area,
            )  # fmt: skip
        return step, touched, background

    # ------------------------------------------------------------------ editing
    def clear_prompts(self, session: VideoSession, frame_idx: int, obj_id: Hashable) -> None:
        """Remove one object's prompts on a frame; a prompted frame becomes an ordinary one
        (its output stays in memory as a tracked one, no longer marked tracked)."""
        obj = session.object(obj_id)
        obj.points.pop(frame_idx, None)
        obj.masks.pop(frame_idx, None)
        obj.pending.pop(frame_idx, None)
        if obj.bank.demote(frame_idx):
            obj.tracked.pop(frame_idx, None)

    def remove_object(
        self, session: VideoSession, obj_id: Hashable, need_output: bool = True
    ) -> list[tuple[int, Tensor]]:
        """Drop a known object; returns the frames it was prompted on with every remaining
        object's (N, 1, H, W) logits there (nothing when it was the last object)."""
        if len(session.objects) == 1:
            session.objects.clear()
            return []
        obj = session.objects.pop(obj_id)
        frames = sorted(obj.prompted_frames)
        if not need_output:
            return []
        return [(t, self.frame_result(session, t).logits) for t in frames]
