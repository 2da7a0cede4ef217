"""Bad arguments to the video predictor: a clear error, raised before the session changes.

npe2's mutator pattern: each bad call below is a small function whose docstring is (a fragment
of) the message it must raise. Every case starts from a session where object 1 was clicked on
frame 0, checks the refused call left that session exactly as it was, and then clicks a second
object and propagates, to show the session is still usable.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from sam2.sam2_video_predictor import SAM2VideoPredictor
from sam2.video.session import VideoSession

N_FRAMES, H, W = 6, 32, 40
Call = Callable[[SAM2VideoPredictor, VideoSession], object]
CASES: list[tuple[Call, type[Exception]]] = []


def bad(error: type[Exception]) -> Callable[[Call], Call]:
    """Register a mutator that must raise ``error`` with its docstring in the message."""

    def register(call: Call) -> Call:
        CASES.append((call, error))
        return call

    return register


def click(p: SAM2VideoPredictor, s: VideoSession, frame: Any = 0, obj: Any = 2, **kw: Any) -> Any:
    """A valid click on object ``obj`` unless ``kw`` overrides part of it."""
    prompt: dict[str, Any] = {"points": [[20.0, 15.0]], "labels": [1]} | kw
    return p.add_new_points_or_box(s, frame, obj, **prompt)


def mask() -> np.ndarray:
    """A valid float 0/1 mask of the video's size."""
    m = np.zeros((H, W), np.float32)
    m[10:20, 10:25] = 1.0
    return m


# ---------------------------------------------------------------- frame indices (issue #16.1)
@bad(TypeError)
def frame_idx_float(p: SAM2VideoPredictor, s: VideoSession) -> object:
    """frame_idx must be an integer, got 1.7 (float); it is not rounded for you"""
    return click(p, s, frame=1.7)


@bad(TypeError)
def frame_idx_integral_float(p: SAM2VideoPredictor, s: VideoSession) -> object:
    """frame_idx must be an integer, got 2.0 (float)"""
    return click(p, s, frame=2.0)


@bad(TypeError)
def frame_idx_string(p: SAM2VideoPredictor, s: VideoSession) -> object:
    """frame_idx must be an integer, got '2' (str)"""
    return click(p, s, frame="2")


@bad(TypeError)
def frame_idx_bool(p: SAM2VideoPredictor, s: VideoSession) -> object:
    """frame_idx must be an integer, got the boolean True"""
    return click(p, s, frame=True)


@bad(ValueError)
def frame_idx_negative(p: SAM2VideoPredictor, s: VideoSession) -> object:
    """frame index -1 is out of range for a video of 6 frames: frame_idx must be 0 to 5"""
    return click(p, s, frame=-1)


@bad(ValueError)
def frame_idx_past_the_end(p: SAM2VideoPredictor, s: VideoSession) -> object:
    """frame index 6 is out of range for a video of 6 frames: frame_idx must be 0 to 5"""
    return click(p, s, frame=6)


@bad(ValueError)
def mask_on_frame_out_of_range(p: SAM2VideoPredictor, s: VideoSession) -> object:
    """frame index 9 is out of range for a video of 6 frames: frame_idx must be 0 to 5"""
    return p.add_new_mask(s, 9, 2, mask())


@bad(TypeError)
def clear_prompts_on_float_frame(p: SAM2VideoPredictor, s: VideoSession) -> object:
    """frame_idx must be an integer, got 0.0 (float)"""
    return p.clear_all_prompts_in_frame(s, 0.0, 1)  # type: ignore[arg-type]


# ---------------------------------------------------------------- object ids (issue #16.2)
@bad(TypeError)
def obj_id_true(p: SAM2VideoPredictor, s: VideoSession) -> object:
    """obj_id must be an int or a string, got the boolean True, which would be merged"""
    return click(p, s, obj=True)


@bad(TypeError)
def remove_object_true(p: SAM2VideoPredictor, s: VideoSession) -> object:
    """obj_id must be an int or a string, got the boolean True"""
    return p.remove_object(s, True, strict=True)


@bad(TypeError)
def obj_id_tensor(p: SAM2VideoPredictor, s: VideoSession) -> object:
    """obj_id must be an int or a string, got a Tensor tensor(1); pass int(obj_id)"""
    return click(p, s, obj=torch.tensor(1))


@bad(TypeError)
def obj_id_list(p: SAM2VideoPredictor, s: VideoSession) -> object:
    """obj_id must be hashable (an int or a string), got [2] (list)"""
    return click(p, s, obj=[2])


# ---------------------------------------------------------------- masks (issue #16.3)
@bad(ValueError)
def mask_all_nan(p: SAM2VideoPredictor, s: VideoSession) -> object:
    """mask contains NaN or infinite values (1280 of 1280 pixels, the first nan at (y=0, x=0))"""
    return p.add_new_mask(s, 0, 2, np.full((H, W), np.nan))


@bad(ValueError)
def mask_one_inf(p: SAM2VideoPredictor, s: VideoSession) -> object:
    """mask contains NaN or infinite values (1 of 1280 pixels, the first inf at (y=3, x=5))"""
    m = mask()
    m[3, 5] = np.inf
    return p.add_new_mask(s, 0, 2, m)


@bad(ValueError)
def mask_wrong_shape(p: SAM2VideoPredictor, s: VideoSession) -> object:
    """mask of shape (40, 32) does not match the video's frames (32, 40) (H, W)"""
    return p.add_new_mask(s, 0, 2, mask().T)


@bad(TypeError)
def mask_of_strings(p: SAM2VideoPredictor, s: VideoSession) -> object:
    """mask must hold booleans or numbers (True/1 on the object), got dtype <U1"""
    return p.add_new_mask(s, 0, 2, np.full((H, W), "a"))


@bad(TypeError)
def mask_none(p: SAM2VideoPredictor, s: VideoSession) -> object:
    """mask must be a (32, 40) array of the object's pixels, got None"""
    return p.add_new_mask(s, 0, 2, None)


# ---------------------------------------------------------------- points and boxes (issue #16.4)
@bad(ValueError)
def points_nan(p: SAM2VideoPredictor, s: VideoSession) -> object:
    """points contains NaN or infinite values (nan at index [0, 1])"""
    return click(p, s, points=[[5.0, np.nan]])


@bad(ValueError)
def points_inf(p: SAM2VideoPredictor, s: VideoSession) -> object:
    """points contains NaN or infinite values (inf at index [1, 0])"""
    return click(p, s, points=[[5.0, 5.0], [np.inf, 5.0]], labels=[1, 1])


@bad(ValueError)
def box_nan(p: SAM2VideoPredictor, s: VideoSession) -> object:
    """box contains NaN or infinite values (nan at index [2])"""
    return p.add_new_points_or_box(s, 0, 2, box=[1.0, 1.0, np.nan, 5.0])


@bad(ValueError)
def box_of_three_numbers(p: SAM2VideoPredictor, s: VideoSession) -> object:
    """box must have shape (4,) or (B, 4) as [x0, y0, x1, y1], got (3,)"""
    return p.add_new_points_or_box(s, 0, 2, box=[1, 1, 5])


@bad(ValueError)
def two_boxes_for_one_object(p: SAM2VideoPredictor, s: VideoSession) -> object:
    """box must be one [x0, y0, x1, y1] for one object, got shape (2, 4)"""
    return p.add_new_points_or_box(s, 0, 2, box=[[1, 1, 5, 5], [2, 2, 9, 9]])


@bad(ValueError)
def one_point_not_nested(p: SAM2VideoPredictor, s: VideoSession) -> object:
    """points must have shape (N, 2) or (B, N, 2), got (2,); one click is [[x, y]], not [x, y]"""
    return click(p, s, points=[20.0, 15.0])


@bad(ValueError)
def fewer_labels_than_points(p: SAM2VideoPredictor, s: VideoSession) -> object:
    """labels must have shape (2,) to match points (2, 2), got (1,): one label per point"""
    return click(p, s, points=[[20.0, 15.0], [5.0, 5.0]], labels=[1])


@bad(ValueError)
def points_for_two_objects(p: SAM2VideoPredictor, s: VideoSession) -> object:
    """points must have shape (N, 2) for one object, got (2, 1, 2)"""
    return click(p, s, points=[[[20.0, 15.0]], [[5.0, 5.0]]], labels=[[1], [1]])


@bad(ValueError)
def no_points_and_no_box(p: SAM2VideoPredictor, s: VideoSession) -> object:
    """points is empty (shape (0, 2)) and no box was given"""
    return click(p, s, points=np.zeros((0, 2)), labels=np.zeros(0, np.int32))


@bad(ValueError)
def pixels_without_normalising(p: SAM2VideoPredictor, s: VideoSession) -> object:
    """lies outside [0, 1]²; with normalize_coords=False points are (x, y) in [0, 1]"""
    return click(p, s, normalize_coords=False)


@bad(TypeError)
def clear_old_points_string(p: SAM2VideoPredictor, s: VideoSession) -> object:
    """clear_old_points must be True or False, got 'no' (str)"""
    return click(p, s, clear_old_points="no")


# ---------------------------------------------------------------- propagation arguments
@bad(TypeError)
def start_frame_float(p: SAM2VideoPredictor, s: VideoSession) -> object:
    """start_frame_idx must be an integer, got 1.5 (float)"""
    return next(p.propagate_in_video(s, start_frame_idx=1.5))  # type: ignore[arg-type]


@bad(ValueError)
def start_frame_past_the_end(p: SAM2VideoPredictor, s: VideoSession) -> object:
    """frame index 6 is out of range for a video of 6 frames: start_frame_idx must be 0 to 5"""
    return next(p.propagate_in_video(s, start_frame_idx=6))


@bad(TypeError)
def span_float(p: SAM2VideoPredictor, s: VideoSession) -> object:
    """max_frame_num_to_track must be an integer, got 1.7 (float)"""
    return next(p.propagate_in_video(s, max_frame_num_to_track=1.7))  # type: ignore[arg-type]


@bad(TypeError)
def reverse_string(p: SAM2VideoPredictor, s: VideoSession) -> object:
    """reverse must be True or False, got 'False' (str)"""
    return next(p.propagate_in_video(s, reverse="False"))  # type: ignore[arg-type]


# ---------------------------------------------------------------- fixtures and the corpus test
@pytest.fixture(scope="module")
def predictor(video_predictor_256: SAM2VideoPredictor) -> SAM2VideoPredictor:
    return video_predictor_256


@pytest.fixture(scope="module")
def video() -> np.ndarray:
    """Six 32×40 uint8 frames of noise: enough for shapes and indices, cheap to encode."""
    return (np.random.default_rng(0).random((N_FRAMES, H, W)) * 255).astype(np.uint8)


def _snapshot(state: VideoSession) -> dict[Any, tuple[object, ...]]:
    """Everything a prompt call may change, as plain values."""
    return {
        obj_id: (
            {t: prompt.coords.tolist() for t, prompt in obj.points.items()},
            sorted(obj.masks),
            sorted(obj.pending),
            obj.bank.conditioning_frames,
        )
        for obj_id, obj in state.objects.items()
    }


def _still_usable(predictor: SAM2VideoPredictor, state: VideoSession) -> None:
    """A second object can be clicked and both tracked over frames 0 and 1."""
    click(predictor, state, frame=1, obj=2)
    frames = list(predictor.propagate_in_video(state, max_frame_num_to_track=1))
    assert [f for f, _, _ in frames] == [0, 1]
    assert frames[-1].obj_ids == [1, 2] and frames[-1].logits.shape == (2, 1, H, W)


@pytest.mark.parametrize(("call", "error"), CASES, ids=[c.__name__ for c, _ in CASES])
def test_bad_call_is_refused_and_leaves_the_session_usable(
    predictor: SAM2VideoPredictor, video: np.ndarray, call: Call, error: type[Exception]
) -> None:
    """Each bad call raises its error naming the argument, and changes nothing."""
    state = predictor.init_state(video)
    click(predictor, state, obj=1)
    before = _snapshot(state)
    assert call.__doc__ is not None
    with pytest.raises(error, match=re.escape(call.__doc__.strip())):
        call(predictor, state)
    assert _snapshot(state) == before
    _still_usable(predictor, state)


def test_frame_out_of_range_is_still_an_index_error(
    predictor: SAM2VideoPredictor, video: np.ndarray
) -> None:
    """The out-of-range error is a ValueError and, as before, an IndexError."""
    state = predictor.init_state(video)
    with pytest.raises(IndexError, match="frame_idx must be 0 to 5") as info:
        click(predictor, state, frame=99)
    assert isinstance(info.value, ValueError)


def test_valid_index_and_id_types_still_work(
    predictor: SAM2VideoPredictor, video: np.ndarray
) -> None:
    """numpy and 0-d tensor integers index frames; numpy ints, strings and tuples are ids."""
    state = predictor.init_state(video)
    click(predictor, state, frame=np.int64(2), obj=np.int64(1))
    click(predictor, state, frame=torch.tensor(3), obj="cell")
    result = click(predictor, state, frame=np.uint8(3), obj=("a", 1))
    assert result.frame_idx == 3 and result.obj_ids == [1, "cell", ("a", 1)]
    frames = [f for f, _, _ in predictor.propagate_in_video(state, np.int32(2), np.int64(1))]
    assert frames == [2, 3]


# ---------------------------------------------------------------- editing mid-propagation (#16.5)
def _suspended(predictor: SAM2VideoPredictor, video: np.ndarray, n_objects: int = 1) -> Any:
    """A session and its propagation, suspended after frames 0 and 1."""
    state = predictor.init_state(video)
    for obj in range(1, n_objects + 1):
        click(predictor, state, obj=obj, points=[[10.0 * obj, 15.0]])
    frames = predictor.propagate_in_video(state)
    assert [next(frames).frame_idx, next(frames).frame_idx] == [0, 1]
    return state, frames


EDITS: list[tuple[str, Callable[[SAM2VideoPredictor, VideoSession], object], str]] = [
    ("reset", lambda p, s: p.reset_state(s), "the session was reset (reset_state) while"),
    (
        "reset_and_prompt_again",
        lambda p, s: (p.reset_state(s), click(p, s, frame=3, obj=1)),
        "the session was reset (reset_state) while",
    ),
    ("remove_last_object", lambda p, s: p.remove_object(s, 1), "every object was removed"),
    ("add_object", lambda p, s: click(p, s, obj=2), "object 2 was added while"),
    (
        "clear_last_prompt",
        lambda p, s: p.clear_all_prompts_in_frame(s, 0, 1),
        "object 1 lost its prompts (clear_all_prompts_in_frame) while",
    ),
]


@pytest.mark.parametrize(("name", "edit", "message"), EDITS, ids=[e[0] for e in EDITS])
def test_resuming_after_an_edit_that_breaks_tracking_says_so(
    predictor: SAM2VideoPredictor, video: np.ndarray, name: str, edit: Call, message: str
) -> None:
    """The edit itself succeeds; resuming raises a RuntimeError naming it; a new pass works."""
    state, frames = _suspended(predictor, video)
    edit(predictor, state)
    with pytest.raises(RuntimeError, match=re.escape(message)):
        next(frames)
    assert next(frames, None) is None  # that pass is over
    if name != "clear_last_prompt":
        predictor.reset_state(state)
    click(predictor, state, frame=2, obj=1)
    assert [f for f, _, _ in predictor.propagate_in_video(state)] == [2, 3, 4, 5]


def test_edits_that_keep_tracking_valid_still_resume(
    predictor: SAM2VideoPredictor, video: np.ndarray
) -> None:
    """Removing one of two objects, or clicking a tracked one, mid-pass: the pass goes on."""
    state, frames = _suspended(predictor, video, n_objects=2)
    predictor.remove_object(state, 2)
    click(predictor, state, frame=4, obj=1)
    rest = [(f, ids, m.shape) for f, ids, m in frames]
    assert rest == [(t, [1], (1, 1, H, W)) for t in range(2, N_FRAMES)]
