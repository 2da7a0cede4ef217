"""Video predictor behaviour that needs no oracle: memory retention, arrays, cancel, bad input."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from sam2.sam2_video_predictor import FrameResult, SAM2VideoPredictor
from sam2.synthetic import make_timelapse


@pytest.fixture(scope="module")
def predictor(video_predictor_256: SAM2VideoPredictor) -> SAM2VideoPredictor:
    return video_predictor_256


@pytest.fixture(scope="module")
def stack() -> np.ndarray:
    """A 40-frame 16-bit time-lapse (T, Y, X)."""
    return make_timelapse(n_frames=40, shape=(64, 80), n_cells=3, division_frames=(), seed=1).image


@pytest.fixture
def encoder_calls(predictor: SAM2VideoPredictor) -> Iterator[list[int]]:
    """One entry (the batch size) per run of the shared model's image encoder."""
    encoder = predictor.model.image_encoder
    original = encoder.forward
    calls: list[int] = []

    def counting(images: torch.Tensor) -> object:
        calls.append(int(images.shape[0]))
        return original(images)

    encoder.forward = counting  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        del encoder.forward  # back to the class's method


def _click(predictor: SAM2VideoPredictor, state: object, obj_id: int = 1, frame: int = 0) -> None:
    predictor.add_new_points_or_box(state, frame, obj_id, points=[[40, 30]], labels=[1])  # type: ignore[arg-type]


def test_streaming_memory_stays_bounded(predictor: SAM2VideoPredictor, stack: np.ndarray) -> None:
    """After 40 tracked frames an object keeps ≤ 15 tracked outputs, ≤ 7 memories, 1 mask."""
    state = predictor.init_state(stack)
    _click(predictor, state)
    _click(predictor, state, obj_id=2, frame=0)
    frames = [f for f, _, _ in predictor.propagate_in_video(state)]
    assert frames == list(range(40))
    for obj in state.objects.values():
        tracked = [obj.bank.get(t) for t in obj.bank.tracked_frames]
        assert len(tracked) <= 15
        assert sum(o.maskmem_features is not None for o in tracked) <= 7  # type: ignore[union-attr]
        assert sum(o.pred_masks is not None for o in tracked) == 1  # type: ignore[union-attr]
        assert obj.bank.conditioning_frames == [0]


def test_keep_history_keeps_everything(predictor: SAM2VideoPredictor, stack: np.ndarray) -> None:
    """keep_history=True keeps every frame's output, as the reference does."""
    state = predictor.init_state(stack, keep_history=True)
    _click(predictor, state)
    list(predictor.propagate_in_video(state, max_frame_num_to_track=20))
    assert len(state.objects[1].bank.tracked_frames) == 20


def test_streaming_equals_keep_history_in_one_pass(
    predictor: SAM2VideoPredictor, stack: np.ndarray
) -> None:
    """Eviction only drops what can no longer be selected: a single pass gives identical masks."""
    results = []
    for keep in (False, True):
        state = predictor.init_state(stack, keep_history=keep)
        _click(predictor, state)
        results.append([m.clone() for _, _, m in predictor.propagate_in_video(state)])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_cancel_and_resume(predictor: SAM2VideoPredictor, stack: np.ndarray) -> None:
    """Stopping the iteration keeps the frames done; resuming gives the uninterrupted result."""
    state = predictor.init_state(stack)
    _click(predictor, state)
    full = {
        f: m.clone() for f, _, m in predictor.propagate_in_video(state, max_frame_num_to_track=15)
    }
    state = predictor.init_state(stack)
    _click(predictor, state)
    partial = {}
    for f, _, m in predictor.propagate_in_video(state, max_frame_num_to_track=15):
        partial[f] = m.clone()
        if f == 6:
            break  # the user pressed stop
    assert sorted(partial) == list(range(7)) and 6 in state.objects[1].tracked
    for f, _, m in predictor.propagate_in_video(state, start_frame_idx=7, max_frame_num_to_track=8):
        partial[f] = m.clone()
    assert sorted(partial) == sorted(full)
    for f in full:
        torch.testing.assert_close(partial[f], full[f], atol=0, rtol=0)


def test_each_frame_is_encoded_once_from_click_to_propagation(
    predictor: SAM2VideoPredictor, stack: np.ndarray, encoder_calls: list[int]
) -> None:
    """init_state encodes nothing; two objects clicked on frame 5 and tracked over 10 frames
    cost 10 encoder runs in all, the click's features serving the start of propagation."""
    state = predictor.init_state(stack)
    assert encoder_calls == []
    _click(predictor, state, obj_id=1, frame=5)
    predictor.add_new_points_or_box(state, 5, 2, box=[10, 10, 50, 40])
    assert encoder_calls == [1]
    frames = [f for f, _, _ in predictor.propagate_in_video(state, max_frame_num_to_track=9)]
    assert frames == list(range(5, 15))
    assert len(encoder_calls) == len(frames) == 10


def test_prompts_on_several_frames_are_encoded_once(
    predictor: SAM2VideoPredictor, stack: np.ndarray, encoder_calls: list[int]
) -> None:
    """Clicks on frames 3 and 9, a mask on 6, then 11 frames forward: 11 encoder runs, though
    every prompted frame is met again, by preflight and by the other object's tracking."""
    state = predictor.init_state(stack)
    _click(predictor, state, obj_id=1, frame=3)
    _click(predictor, state, obj_id=1, frame=9)
    disk = np.zeros((64, 80), bool)
    disk[20:30, 30:45] = True
    predictor.add_new_mask(state, 6, 2, disk)
    assert len(encoder_calls) == 3
    frames = [f for f, _, _ in predictor.propagate_in_video(state, 3, 10)]
    assert frames == list(range(3, 14))
    assert len(encoder_calls) == len(frames)


def test_forward_and_reverse_passes_share_their_start(
    predictor: SAM2VideoPredictor, stack: np.ndarray, encoder_calls: list[int]
) -> None:
    """Both directions from frame 10, where only one object is prompted: frames 5..15 once."""
    state = predictor.init_state(stack)
    _click(predictor, state, obj_id=1, frame=10)
    _click(predictor, state, obj_id=2, frame=12)
    seen = [f for f, _, _ in predictor.propagate_in_video(state, 10, 5)]
    seen += [f for f, _, _ in predictor.propagate_in_video(state, 10, 5, reverse=True)]
    assert sorted(set(seen)) == list(range(5, 16)) and len(seen) == 12
    assert len(encoder_calls) == 11


def test_warm_up_encodes_frame_zero_as_the_reference(
    predictor: SAM2VideoPredictor, stack: np.ndarray, encoder_calls: list[int]
) -> None:
    """warm_up=True encodes frame 0 in init_state, and a click there reuses it."""
    state = predictor.init_state(stack, warm_up=True)
    assert encoder_calls == [1]
    _click(predictor, state, frame=0)
    assert encoder_calls == [1]


def test_array_sources_any_dtype(predictor: SAM2VideoPredictor) -> None:
    """uint8, uint16 and float stacks, grayscale or RGB, give (N, 1, H, W) logits per frame."""
    rng = np.random.default_rng(0)
    for video in (
        (rng.random((5, 30, 40)) * 255).astype(np.uint8),
        (rng.random((5, 30, 40)) * 4000).astype(np.uint16),
        rng.random((5, 30, 40, 3)).astype(np.float32),
    ):
        state = predictor.init_state(video)
        predictor.add_new_points_or_box(state, 2, "cell", points=[[20, 15]], labels=[1])
        out = list(predictor.propagate_in_video(state))
        assert [f for f, _, _ in out] == [2, 3, 4]
        assert out[0][1] == ["cell"] and out[0][2].shape == (1, 1, 30, 40)


BAD_CALLS = [
    (
        lambda p, s: p.add_new_points_or_box(s, 99, 1, points=[[1, 1]], labels=[1]),
        IndexError,
        "frame index 99 is out of range",
    ),
    (
        lambda p, s: p.add_new_points_or_box(s, 0, 1, points=[[500, 1]], labels=[1]),
        ValueError,
        "lies outside",
    ),
    (lambda p, s: p.add_new_points_or_box(s, 0, 1, points=[[1, 1]]), ValueError, "together"),
    (lambda p, s: p.add_new_points_or_box(s, 0, 1), ValueError, "give points"),
    (
        lambda p, s: p.add_new_points_or_box(s, 0, 1, box=[1, 1, 5, 5], clear_old_points=False),
        ValueError,
        "box must come before",
    ),
    (
        lambda p, s: p.add_new_mask(s, 0, 1, np.ones((10, 10), bool)),
        ValueError,
        "does not match the video",
    ),
    (lambda p, s: p.add_new_mask(s, 0, 1, np.ones((2, 64, 80), bool)), ValueError, "2D"),
    (lambda p, s: next(p.propagate_in_video(s)), RuntimeError, "no object has prompts"),
    (lambda p, s: p.remove_object(s, 7, strict=True), RuntimeError, "cannot remove object id 7"),
    (lambda p, s: p.clear_all_prompts_in_frame(s, 0, 7), KeyError, "unknown object id 7"),
]


@pytest.mark.parametrize(("call", "error", "message"), BAD_CALLS, ids=[m for *_, m in BAD_CALLS])
def test_bad_input(predictor: SAM2VideoPredictor, stack: np.ndarray, call, error, message) -> None:  # type: ignore[no-untyped-def]
    """Bad frame indices, prompts, masks and ids raise clear errors."""
    state = predictor.init_state(stack)
    with pytest.raises(error, match=message):
        call(predictor, state)


def test_object_without_prompt_is_named(predictor: SAM2VideoPredictor, stack: np.ndarray) -> None:
    """Propagating when one object lost its only prompt names that object."""
    state = predictor.init_state(stack)
    _click(predictor, state, obj_id=1)
    _click(predictor, state, obj_id=2, frame=3)
    predictor.clear_all_prompts_in_frame(state, 3, 2)
    with pytest.raises(RuntimeError, match="object 2 has no prompted frame"):
        next(predictor.propagate_in_video(state))


def test_frame_result_has_named_fields_and_unpacks_as_a_triple(
    predictor: SAM2VideoPredictor, stack: np.ndarray
) -> None:
    """Clicks and propagation hand out FrameResult: named fields, yet the reference's 3-tuple."""
    logits = torch.zeros(2, 1, 4, 5)
    result = FrameResult(3, ["a", "b"], logits)
    frame_idx, obj_ids, masks = result
    assert (frame_idx, obj_ids, masks) == (result.frame_idx, result.obj_ids, result.logits)
    assert (
        len(result) == 3
        and result[2] is logits
        and FrameResult._fields
        == (
            "frame_idx",
            "obj_ids",
            "logits",
        )
    )

    state = predictor.init_state(stack)
    clicked = predictor.add_new_points_or_box(state, 0, 1, points=[[40, 30]], labels=[1])
    assert isinstance(clicked, FrameResult)
    assert clicked.frame_idx == 0 and clicked.obj_ids == [1]
    assert clicked.logits.shape == (1, 1, 64, 80)
    for frame_idx, obj_ids, masks in predictor.propagate_in_video(state, max_frame_num_to_track=0):
        assert (frame_idx, obj_ids, masks.shape) == (0, [1], (1, 1, 64, 80))


def test_empty_and_flat_videos_are_refused(predictor: SAM2VideoPredictor) -> None:
    """An empty stack or a 2D image is not a video."""
    with pytest.raises(ValueError):
        predictor.init_state(np.zeros((0, 10, 10), np.uint8))
    with pytest.raises(ValueError):
        predictor.init_state(np.zeros((10, 10), np.uint8))


def test_bf16_tracking_agrees_with_fp32_and_keeps_autocast_inside(
    predictor: SAM2VideoPredictor, stack: np.ndarray
) -> None:
    """bf16 masks are float32 and overlap the fp32 ones; the caller's code between frames never
    runs under autocast (it would leak into whatever the caller computes)."""
    bf16 = SAM2VideoPredictor(predictor.model, fill_hole_area=8, precision="bf16")
    fp32 = SAM2VideoPredictor(predictor.model, fill_hole_area=8)
    results = []
    for video_predictor in (fp32, bf16):
        state = video_predictor.init_state(stack)
        _click(video_predictor, state)
        logits = []
        for _, _, m in video_predictor.propagate_in_video(state, max_frame_num_to_track=6):
            assert not torch.is_autocast_enabled("cpu")
            assert m.dtype == torch.float32
            logits.append(m[0, 0].clone())
        results.append(logits)
    assert not any(torch.equal(a, b) for a, b in zip(*results))  # bf16 did run
    ious = []
    for a, b in zip(*results):
        union = ((a > 0) | (b > 0)).sum().item()
        ious.append(1.0 if union == 0 else ((a > 0) & (b > 0)).sum().item() / union)
    assert len(ious) == 7
    assert float(np.mean(ious)) >= 0.9, ious


def test_bad_precision_is_explained(predictor: SAM2VideoPredictor) -> None:
    with pytest.raises(ValueError, match="precision must be one of 'auto', 'fp32', 'bf16'"):
        SAM2VideoPredictor(predictor.model, precision="fp16")  # type: ignore[arg-type]
