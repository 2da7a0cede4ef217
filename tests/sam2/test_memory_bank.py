"""MemoryBank alone, without a model: what is stored, what a frame attends to, what is kept.

Every output is tagged with its frame index (its pointer and memory are filled with it), so a
selection can be read back as the frames it came from.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from sam2.video.memory import (
    FrameOutput,
    MemoryBank,
    MemoryContext,
    MemoryRules,
    previous_frame,
    select_closest_cond_frames,
)

RULES = MemoryRules()  # the released models': 7 memories, stride 1, 16 pointers, past only


def out(t: int) -> FrameOutput:
    """An output whose (1, 4) pointer and (1, 2, 1, 1) memory hold the value ``t``."""
    return FrameOutput(
        pred_masks=torch.zeros(1, 1, 2, 2),
        obj_ptr=torch.full((1, 4), float(t)),
        object_score_logits=torch.ones(1, 1),
        maskmem_features=torch.full((1, 2, 1, 1), float(t)),
    )


def tag(x: torch.Tensor) -> int:
    return int(x.flatten()[0])


def spatial(ctx: MemoryContext) -> list[tuple[int, int]]:
    """(t_pos, source frame) of each spatial memory."""
    return [(t_pos, tag(m)) for t_pos, m in ctx.spatial]


def pointers(ctx: MemoryContext) -> list[tuple[int, int]]:
    """(temporal distance, source frame) of each object pointer."""
    return [(d, tag(p)) for d, p in ctx.pointers]


def bank_with(cond: list[int], tracked: list[int]) -> MemoryBank:
    bank = MemoryBank()
    for t in cond:
        bank.add(t, out(t), conditioning=True)
    for t in tracked:
        bank.add(t, out(t), conditioning=False)
    return bank


# ---------------------------------------------------------------------------- storing
def test_add_conditioning_replaces_tracked_output() -> None:
    """A prompt on a tracked frame makes it conditioning; its tracked output is dropped."""
    bank = bank_with([], [3, 4])
    bank.add(3, out(30), conditioning=True)
    assert bank.conditioning_frames == [3]
    assert bank.tracked_frames == [4]
    assert tag(bank.get(3).obj_ptr) == 30  # type: ignore[union-attr]


def test_add_tracked_leaves_conditioning_in_front() -> None:
    """A tracked output on a prompted frame does not hide the prompted one."""
    bank = bank_with([5], [])
    bank.add(5, out(50), conditioning=False)
    assert bank.conditioning_frames == [5] and bank.tracked_frames == [5]
    assert tag(bank.get(5).obj_ptr) == 5  # type: ignore[union-attr]
    assert tag(bank.conditioning_output(5).obj_ptr) == 5  # type: ignore[union-attr]
    assert bank.conditioning_output(6) is None and bank.get(6) is None


def test_demote_turns_a_prompted_frame_into_a_tracked_one() -> None:
    """Clearing a frame's prompts keeps its output as an ordinary memory there."""
    bank = bank_with([0, 8], [7])
    assert bank.demote(8) is True
    assert bank.conditioning_frames == [0] and bank.tracked_frames == [7, 8]
    assert tag(bank.get(8).obj_ptr) == 8  # type: ignore[union-attr]
    assert bank.demote(7) is False  # not a prompted frame: nothing moves
    assert bank.conditioning_frames == [0] and bank.tracked_frames == [7, 8]
    ctx = bank.select(9, False, 30, RULES)
    assert (6, 8) in spatial(ctx)  # the demoted frame is now the most recent memory


def test_drop_around_forgets_tracked_memories_within_reach() -> None:
    """Tracked outputs within num_maskmem × stride of a frame go; prompts and the rest stay."""
    bank = bank_with([10], list(range(0, 30)))
    bank.drop_around(10, RULES)  # reach 7: frames 3..17
    assert bank.tracked_frames == [0, 1, 2, *range(18, 30)]
    assert bank.conditioning_frames == [10]
    strided = dataclasses.replace(RULES, memory_temporal_stride=2)
    bank.drop_around(10, strided)  # reach 14: frames -4..24
    assert bank.tracked_frames == list(range(25, 30))


def test_clear_forgets_everything() -> None:
    bank = bank_with([0], [1, 2])
    bank.clear()
    assert bank.conditioning_frames == [] and bank.tracked_frames == [] and bank.get(0) is None


# ---------------------------------------------------------------------------- selecting
def test_select_needs_a_prompted_frame() -> None:
    """Tracking from tracked memories alone is refused, with the reason."""
    with pytest.raises(RuntimeError, match="no prompted"):
        bank_with([], [0, 1]).select(2, False, 10, RULES)


def test_select_forward_takes_the_six_previous_frames_and_fifteen_pointers() -> None:
    """Forward at t=20: the prompt at t_pos 0, frames 14..19 oldest first, pointers 1..15 back."""
    bank = bank_with([0], list(range(1, 20)))
    ctx = bank.select(20, False, 40, RULES)
    assert spatial(ctx) == [(0, 0), (1, 14), (2, 15), (3, 16), (4, 17), (5, 18), (6, 19)]
    assert pointers(ctx) == [(20, 0)] + [(d, 20 - d) for d in range(1, 16)]
    assert ctx.max_ptr_distance == 15


def test_select_reverse_mirrors_forward() -> None:
    """Reverse at t=10 from a prompt at 25: memories from frames 11..16, distances positive."""
    bank = bank_with([25], list(range(11, 25)))
    ctx = bank.select(10, True, 40, RULES)
    assert spatial(ctx) == [(0, 25), (1, 16), (2, 15), (3, 14), (4, 13), (5, 12), (6, 11)]
    assert pointers(ctx) == [(15, 25)] + [(d, 10 + d) for d in range(1, 15)]


def test_prompts_ahead_give_memory_but_no_pointer() -> None:
    """A prompt later in tracking order is attended to spatially, its pointer is not used."""
    bank = bank_with([0, 30], list(range(1, 10)))
    ctx = bank.select(10, False, 40, RULES)
    assert [f for t_pos, f in spatial(ctx) if t_pos == 0] == [0, 30]
    assert 30 not in [f for _, f in pointers(ctx)]
    everywhere = dataclasses.replace(RULES, only_obj_ptrs_in_the_past=False)
    assert (-20, 30) in pointers(bank.select(10, False, 40, everywhere))
    unsigned = dataclasses.replace(everywhere, use_signed_tpos_enc_to_obj_ptrs=False)
    assert (20, 30) in pointers(bank.select(10, False, 40, unsigned))


def test_temporal_stride_spaces_memories_but_not_the_last_one() -> None:
    """With stride 2 the previous frame is kept, the other five are every second frame."""
    rules = dataclasses.replace(RULES, memory_temporal_stride=2)
    bank = bank_with([0], list(range(1, 20)))
    ctx = bank.select(20, False, 40, rules)
    assert spatial(ctx) == [(0, 0), (1, 10), (2, 12), (3, 14), (4, 16), (5, 18), (6, 19)]
    assert [previous_frame(20, r, 2, False) for r in range(1, 7)] == [19, 18, 16, 14, 12, 10]
    assert [previous_frame(5, r, 2, True) for r in range(1, 7)] == [6, 8, 10, 12, 14, 16]


def test_short_videos_cap_pointers_at_their_length() -> None:
    """A 5-frame video uses at most 4 pointers back and normalises distances by 4."""
    bank = bank_with([0], [1, 2, 3])
    ctx = bank.select(4, False, 5, RULES)
    assert pointers(ctx) == [(4, 0), (1, 3), (2, 2), (3, 1)]
    assert ctx.max_ptr_distance == 4
    one = bank_with([0], []).select(0, False, 1, RULES)
    assert one.max_ptr_distance == 1  # never 0 (the reference divides by it)


def test_missing_memories_are_skipped() -> None:
    """Frames never tracked, or whose memory was dropped, contribute nothing."""
    bank = bank_with([0], [17, 19])
    bank.add(18, dataclasses.replace(out(18), maskmem_features=None), conditioning=False)
    ctx = bank.select(20, False, 40, RULES)
    assert spatial(ctx) == [(0, 0), (4, 17), (6, 19)]  # 14..16 never tracked, 18 dropped
    assert pointers(ctx) == [(20, 0), (1, 19), (2, 18), (3, 17)]


def test_max_cond_frames_keeps_the_nearest_prompts() -> None:
    """With at most 2 prompts attended: the nearest before and at-or-after the frame."""
    cond = {t: out(t) for t in (0, 10, 20, 30)}
    chosen, rest = select_closest_cond_frames(12, cond, 2)
    assert sorted(chosen) == [10, 20] and sorted(rest) == [0, 30]
    chosen, rest = select_closest_cond_frames(35, cond, 3)
    assert sorted(chosen) == [10, 20, 30] and sorted(rest) == [0]
    assert select_closest_cond_frames(12, cond, -1) == (cond, {})
    with pytest.raises(ValueError, match="at least 2"):
        select_closest_cond_frames(12, cond, 1)
    rules = dataclasses.replace(RULES, max_cond_frames_in_attn=2)
    ctx = bank_with([0, 10, 20, 30], [11]).select(12, False, 40, rules)
    assert [f for t_pos, f in spatial(ctx) if t_pos == 0] == [10, 20]
    assert [f for _, f in pointers(ctx)] == [10, 11, 0]  # 0 only as the pointer 12 back


# ---------------------------------------------------------------------------- evicting
def _context(ctx: MemoryContext) -> tuple[object, ...]:
    return spatial(ctx), pointers(ctx), ctx.max_ptr_distance


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("stride", [1, 3])
def test_eviction_keeps_exactly_what_the_next_frames_select(reverse: bool, stride: int) -> None:
    """A 60-frame pass with eviction sees the same memories at every frame as one without,
    and never keeps more than 15 tracked outputs, 7 memories or one mask."""
    rules = dataclasses.replace(RULES, memory_temporal_stride=stride)
    n = 60
    start = n - 1 if reverse else 0
    order = range(start - 1, -1, -1) if reverse else range(start + 1, n)
    streaming, full = bank_with([start], []), bank_with([start], [])
    for t in order:
        assert _context(streaming.select(t, reverse, n, rules)) == _context(
            full.select(t, reverse, n, rules)
        ), t
        streaming.add(t, out(t), conditioning=False)
        full.add(t, out(t), conditioning=False)
        streaming.evict(t, reverse, rules)
        kept = [streaming.get(f) for f in streaming.tracked_frames]
        assert len(kept) <= max(15, 7 * stride)
        assert sum(o.maskmem_features is not None for o in kept) <= 7 * stride  # type: ignore[union-attr]
        assert [o.pred_masks is not None for o in kept].count(True) == 1  # type: ignore[union-attr]
    assert len(full.tracked_frames) == n - 1


def test_eviction_keeps_outputs_ahead_and_masks_when_asked() -> None:
    """Frames ahead (from an earlier pass) are not this pass's to drop; keep_masks keeps masks."""
    bank = bank_with([0], [*range(1, 6), 40, 41])
    bank.evict(5, False, RULES, keep_masks=True)
    assert bank.tracked_frames == [1, 2, 3, 4, 5, 40, 41]
    assert all(bank.get(t).pred_masks is not None for t in bank.tracked_frames)  # type: ignore[union-attr]
    bank.add(30, out(30), conditioning=False)
    bank.evict(30, False, RULES)  # frames ≥ 15 behind go, the ones ahead stay
    assert bank.tracked_frames == [30, 40, 41]
    assert bank.get(40).pred_masks is not None  # type: ignore[union-attr]
    assert bank.conditioning_frames == [0]
