"""Objects tracked together in one batch give the masks of tracking them one by one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam2.build_sam import build_sam2_video_predictor
from sam2.modeling.memory_attention import MemoryAttention
from sam2.sam2_video_predictor import SAM2VideoPredictor
from sam2.synthetic import make_timelapse
from sam2.video.memory import FrameOutput, MemoryContext, stack_contexts
from sam2.video.options import TrackingOptions


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_sam2_video_predictor(
        "tiny", device="cpu", hydra_overrides_extra=["++model.image_size=128"]
    ).model


def _track(model: torch.nn.Module, stack: np.ndarray, batch: int, calls: list[int]) -> list:
    """Five objects: four clicked on frame 0, one on frame 3 (its memories line up with no
    other object's for a while, so it is tracked in a batch of its own)."""
    predictor = SAM2VideoPredictor(
        model,  # type: ignore[arg-type]
        TrackingOptions.postprocessed(object_batch_size=batch),
    )
    attention = model.memory_attention  # type: ignore[union-attr]
    original = attention.forward

    def counting(*args: object, **kwargs: object) -> torch.Tensor:
        calls.append(int(kwargs["memory"].shape[1]))  # type: ignore[union-attr]
        return original(*args, **kwargs)

    attention.forward = counting
    try:
        state = predictor.init_state(stack)
        for obj_id, (x, y) in enumerate([(12, 10), (40, 30), (60, 12), (20, 50)], start=1):
            predictor.add_new_points_or_box(state, 0, obj_id, points=[[x, y]], labels=[1])
        predictor.add_new_points_or_box(state, 3, 9, points=[[70, 50]], labels=[1])
        return [(f, ids, m.clone()) for f, ids, m in predictor.propagate_in_video(state)]
    finally:
        del attention.forward


def test_batched_tracking_equals_one_by_one(model: torch.nn.Module) -> None:
    stack = make_timelapse(n_frames=6, shape=(64, 80), n_cells=5, division_frames=(), seed=3).image
    one_calls: list[int] = []
    batched_calls: list[int] = []
    one = _track(model, stack, 1, one_calls)
    batched = _track(model, stack, 3, batched_calls)
    assert set(one_calls) == {1}
    assert max(batched_calls) == 3  # four objects in batches of at most 3 ...
    assert len(batched_calls) < len(one_calls)  # ... so fewer memory-attention runs
    assert [f for f, _, _ in batched] == [f for f, _, _ in one] == list(range(6))
    for (_, ids_a, a), (_, ids_b, b) in zip(one, batched, strict=True):
        assert ids_a == ids_b == [1, 2, 3, 4, 9]
        torch.testing.assert_close(b, a, atol=1e-3, rtol=1e-4)


def test_shared_frame_attention_equals_the_frame_repeated() -> None:
    """curr with batch 1 against B memories: the same as the frame repeated B times."""
    torch.manual_seed(1)
    model = build_sam2_video_predictor(
        "tiny", device="cpu", hydra_overrides_extra=["++model.image_size=128"]
    ).model
    attention: MemoryAttention = model.memory_attention
    hw, b, c, m = 64, 3, 256, 64
    curr, curr_pos = torch.randn(hw, 1, c), torch.randn(hw, 1, c)
    memory, memory_pos = torch.randn(2 * hw + 8, b, m), torch.randn(2 * hw + 8, b, m)
    with torch.no_grad():
        shared = attention(curr, memory, curr_pos, memory_pos, num_obj_ptr_tokens=8)
        repeated = attention(
            curr.expand(-1, b, -1), memory, curr_pos.expand(-1, b, -1), memory_pos, 8
        )
    assert shared.shape == (hw, b, c)
    torch.testing.assert_close(shared, repeated, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="same batch size"):
        attention(curr.expand(-1, 2, -1), memory, curr_pos.expand(-1, 2, -1), memory_pos)


def test_contexts_stack_only_when_their_memories_line_up() -> None:
    a = MemoryContext([(0, torch.zeros(1, 4, 2, 2))], [(1, torch.zeros(1, 8))], 15)
    b = MemoryContext([(0, torch.ones(1, 4, 2, 2))], [(1, torch.ones(1, 8))], 15)
    stacked = stack_contexts([a, b])
    assert stacked.spatial[0][1].shape == (2, 4, 2, 2) and stacked.spatial[0][1][1].eq(1).all()
    assert stacked.pointers[0][1].shape == (2, 8) and stacked.layout() == a.layout()
    later = MemoryContext([(0, torch.zeros(1, 4, 2, 2))], [(2, torch.zeros(1, 8))], 15)
    with pytest.raises(ValueError, match="same memory layout"):
        stack_contexts([a, later])


def test_an_object_taken_from_a_batch_owns_its_tensors() -> None:
    out = FrameOutput(torch.randn(3, 1, 4, 4), torch.randn(3, 8), torch.randn(3, 1))
    second = out.take(1)
    assert second.pred_masks is not None and second.pred_masks.shape == (1, 1, 4, 4)
    torch.testing.assert_close(second.obj_ptr, out.obj_ptr[1:2])
    assert second.obj_ptr.untyped_storage().nbytes() == 8 * 4  # not a view of the batch


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_bad_batch_size_is_explained(bad: object) -> None:
    with pytest.raises((TypeError, ValueError), match="object_batch_size"):
        TrackingOptions(object_batch_size=bad)  # type: ignore[arg-type]


def test_batches_hold_at_most_batch_tokens(
    model: torch.nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Full frames of 8×8 tokens with a budget of 128 tokens: two objects per batch."""
    import sam2.video.engine as engine

    monkeypatch.setattr(engine, "BATCH_TOKENS", 2 * 64)
    stack = make_timelapse(n_frames=5, shape=(64, 80), n_cells=5, division_frames=(), seed=3).image
    calls: list[int] = []
    _track(model, stack, 16, calls)
    assert max(calls) == 2
