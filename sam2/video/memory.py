"""Per-object streaming memory: what SAM 2 remembers of earlier frames, and for how long.

A :class:`MemoryBank` holds one object's outputs on conditioning frames (prompted) and on
tracked frames. :meth:`MemoryBank.select` picks what memory attention sees for a new frame, by
the same rule as the released model; :meth:`MemoryBank.evict` drops what no later step of the
current pass can select, so a long stack costs the same memory as a short one. Corrections go
through :meth:`MemoryBank.demote` (a prompted frame's prompts were cleared) and
:meth:`MemoryBank.drop_around` (forget memories near a new prompt); nothing outside the bank
touches its dicts.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class FrameOutput:
    """One object's result on one frame (h×w = S/4, h'×w' = S/16)."""

    pred_masks: Tensor | None  # (1, 1, h, w) float32 logits after hole filling
    obj_ptr: Tensor  # (1, C)
    object_score_logits: Tensor  # (1, 1)
    maskmem_features: Tensor | None = None  # (1, 64, h', w') bfloat16; None until encoded
    is_mask_from_pts: bool = True

    def take(self, i: int) -> FrameOutput:
        """Object ``i`` of a batched output, as its own tensors (a view would keep the whole
        batch alive for as long as any one object's memory is kept)."""

        def one(x: Tensor | None) -> Tensor | None:
            return None if x is None else x[i : i + 1].clone()

        return FrameOutput(
            pred_masks=one(self.pred_masks),
            obj_ptr=self.obj_ptr[i : i + 1].clone(),
            object_score_logits=self.object_score_logits[i : i + 1].clone(),
            maskmem_features=one(self.maskmem_features),
            is_mask_from_pts=self.is_mask_from_pts,
        )


@dataclass(frozen=True)
class MemoryRules:
    """The model flags that decide which memories a frame attends to."""

    num_maskmem: int = 7
    max_cond_frames_in_attn: int = -1
    memory_temporal_stride: int = 1
    max_obj_ptrs_in_encoder: int = 16
    only_obj_ptrs_in_the_past: bool = True
    use_signed_tpos_enc_to_obj_ptrs: bool = True


@dataclass
class MemoryContext:
    """What memory attention sees for one frame: spatial memories and object pointers."""

    spatial: list[tuple[int, Tensor]] = field(default_factory=list)  # (t_pos, (B, 64, h', w'))
    pointers: list[tuple[int, Tensor]] = field(default_factory=list)  # (distance, (B, C))
    max_ptr_distance: int = 1  # normaliser of the pointers' temporal encoding

    def layout(self) -> Hashable:
        """What must agree for contexts to be batched: which memories, at which distances."""
        return (
            tuple(t for t, _ in self.spatial),
            tuple(d for d, _ in self.pointers),
            self.max_ptr_distance,
        )


def stack_contexts(contexts: Sequence[MemoryContext]) -> MemoryContext:
    """One context for B objects of the same :meth:`~MemoryContext.layout`: every memory
    becomes (B, 64, h', w') and every pointer (B, C), object i at batch index i."""
    first = contexts[0]
    if any(c.layout() != first.layout() for c in contexts[1:]):
        raise ValueError("only contexts with the same memory layout can be stacked")
    return MemoryContext(
        spatial=[
            (t, torch.cat([c.spatial[k][1] for c in contexts]))
            for k, (t, _) in enumerate(first.spatial)
        ],
        pointers=[
            (d, torch.cat([c.pointers[k][1] for c in contexts]))
            for k, (d, _) in enumerate(first.pointers)
        ],
        max_ptr_distance=first.max_ptr_distance,
    )


def select_closest_cond_frames(
    frame_idx: int, cond: dict[int, FrameOutput], max_frames: int
) -> tuple[dict[int, FrameOutput], dict[int, FrameOutput]]:
    """Split conditioning frames into those attended to and the rest (``max_frames`` -1: all).

    With a limit: the nearest before, the nearest at-or-after, then the nearest others.
    """
    if max_frames == -1 or len(cond) <= max_frames:
        return cond, {}
    if max_frames < 2:
        raise ValueError("max_cond_frames_in_attn must be -1 or at least 2")
    chosen: dict[int, FrameOutput] = {}
    before = max((t for t in cond if t < frame_idx), default=None)
    after = min((t for t in cond if t >= frame_idx), default=None)
    for t in (before, after):
        if t is not None:
            chosen[t] = cond[t]
    others = sorted((t for t in cond if t not in chosen), key=lambda t: abs(t - frame_idx))
    for t in others[: max_frames - len(chosen)]:
        chosen[t] = cond[t]
    return chosen, {t: v for t, v in cond.items() if t not in chosen}


def previous_frame(frame_idx: int, t_rel: int, stride: int, reverse: bool) -> int:
    """The frame ``t_rel`` steps back in tracking order (stride applies beyond the first)."""
    if t_rel == 1:
        return frame_idx + 1 if reverse else frame_idx - 1
    if reverse:
        base = -(-(frame_idx + 2) // stride) * stride  # ceil to a multiple of stride
        return base + (t_rel - 2) * stride
    return ((frame_idx - 2) // stride) * stride - (t_rel - 2) * stride


class MemoryBank:
    """One object's conditioning outputs and tracked outputs, keyed by frame index.

    The two dicts are private: what may be kept, moved or dropped is decided here (``add``,
    ``demote``, ``drop_around``, ``evict``), so the retention policy lives in one place.
    """

    def __init__(self) -> None:
        self._conditioning: dict[int, FrameOutput] = {}  # prompted frames
        self._tracked: dict[int, FrameOutput] = {}  # frames tracked from memory

    def __repr__(self) -> str:
        return f"MemoryBank(conditioning={self.conditioning_frames}, tracked={self.tracked_frames})"

    @property
    def conditioning_frames(self) -> list[int]:
        """Prompted frames with a memorised output, in order."""
        return sorted(self._conditioning)

    @property
    def tracked_frames(self) -> list[int]:
        """Frames with a tracked (non-conditioning) output still kept, in order."""
        return sorted(self._tracked)

    def get(self, frame_idx: int) -> FrameOutput | None:
        """The output on a frame, the conditioning one if both exist."""
        return self._conditioning.get(frame_idx) or self._tracked.get(frame_idx)

    def conditioning_output(self, frame_idx: int) -> FrameOutput | None:
        """The memorised output of a prompted frame (None on an ordinary frame)."""
        return self._conditioning.get(frame_idx)

    def add(self, frame_idx: int, output: FrameOutput, conditioning: bool) -> None:
        """Store an output; a conditioning frame replaces any tracked output there."""
        if conditioning:
            self._conditioning[frame_idx] = output
            self._tracked.pop(frame_idx, None)
        else:
            self._tracked[frame_idx] = output

    def demote(self, frame_idx: int) -> bool:
        """Make a prompted frame an ordinary tracked one (its prompts were cleared).

        Its output stays, as a tracked output that nearby frames may still attend to. Returns
        whether the frame was a conditioning frame.
        """
        output = self._conditioning.pop(frame_idx, None)
        if output is None:
            return False
        self._tracked[frame_idx] = output
        return True

    def drop_around(self, frame_idx: int, rules: MemoryRules) -> None:
        """Forget tracked outputs within memory reach (``num_maskmem`` strides) of a frame.

        After a correction, memories tracked before it would otherwise pull the next pass back
        towards the old mask (``clear_non_cond_mem_around_input``).
        """
        reach = rules.memory_temporal_stride * rules.num_maskmem
        for t in range(frame_idx - reach, frame_idx + reach + 1):
            self._tracked.pop(t, None)

    def clear(self) -> None:
        self._conditioning.clear()
        self._tracked.clear()

    def select(
        self, frame_idx: int, reverse: bool, num_frames: int, rules: MemoryRules
    ) -> MemoryContext:
        """Memories for tracking ``frame_idx`` (needs at least one conditioning frame)."""
        if not self._conditioning:
            raise RuntimeError("the object has no prompted (conditioning) frame to track from")
        chosen, unchosen = select_closest_cond_frames(
            frame_idx, self._conditioning, rules.max_cond_frames_in_attn
        )
        ctx = MemoryContext()
        ctx.spatial = [
            (0, out.maskmem_features) for out in chosen.values() if out.maskmem_features is not None
        ]
        for t_pos in range(1, rules.num_maskmem):
            t = previous_frame(
                frame_idx, rules.num_maskmem - t_pos, rules.memory_temporal_stride, reverse
            )
            out = self._tracked.get(t) or unchosen.get(t)
            if out is not None and out.maskmem_features is not None:
                ctx.spatial.append((t_pos, out.maskmem_features))

        max_ptrs = min(num_frames, rules.max_obj_ptrs_in_encoder)
        ctx.max_ptr_distance = max(max_ptrs - 1, 1)  # the reference divides by zero for 1 frame
        sign = -1 if reverse else 1
        for t, out in chosen.items():
            if rules.only_obj_ptrs_in_the_past and (t < frame_idx if reverse else t > frame_idx):
                continue
            distance = (
                (frame_idx - t) * sign
                if rules.use_signed_tpos_enc_to_obj_ptrs
                else abs(frame_idx - t)
            )
            ctx.pointers.append((distance, out.obj_ptr))
        for step in range(1, max_ptrs):
            t = frame_idx + step if reverse else frame_idx - step
            if t < 0 or t >= num_frames:
                break
            out = self._tracked.get(t) or unchosen.get(t)
            if out is not None:
                ctx.pointers.append((step, out.obj_ptr))
        return ctx

    def evict(
        self, frame_idx: int, reverse: bool, rules: MemoryRules, keep_masks: bool = False
    ) -> None:
        """After tracking ``frame_idx``, forget tracked frames the next frames cannot select.

        Spatial memories are kept for the last ``num_maskmem - 1`` strided steps and object
        pointers for the last ``max_obj_ptrs_in_encoder - 1`` frames; low-res masks of tracked
        frames are dropped unless ``keep_masks`` (the caller already has them).
        """
        reach_mem = rules.num_maskmem * rules.memory_temporal_stride  # next frame: ≤ 5 strides back
        reach_ptr = rules.max_obj_ptrs_in_encoder - 1  # next frame: pointers 1..15 frames back
        for t in list(self._tracked):
            behind = (t - frame_idx) if reverse else (frame_idx - t)
            out = self._tracked[t]
            if behind < 0:
                continue  # ahead of us: outputs of an earlier pass, kept for now
            if behind >= max(reach_mem, reach_ptr):
                del self._tracked[t]
                continue
            if behind >= reach_mem:
                out.maskmem_features = None
            if not keep_masks and t != frame_idx:
                out.pred_masks = None
