"""Propagation planning as pure functions of a PromptSet: no viewer, no layers, no model."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2.prompts import Box, Point, PromptSet
from napari_sam2.segment.propagation import NoPromptsError, plan_propagation, prompted_lines


def _prompts(*points: Point, boxes: tuple[Box, ...] = (), shape=(10, 3, 40, 50)) -> PromptSet:
    return PromptSet("cells", shape, 0, (0.0, 1.0), list(points), list(boxes))


def test_a_plan_holds_each_objects_prompts_on_the_line_in_model_order() -> None:
    """Points of t=2 at z=1 become (x, y) prompts of frame 2; other z and objects stay apart."""
    prompts = _prompts(
        Point((2, 1, 10.0, 20.0), True, 1),
        Point((2, 1, 12.0, 22.0), False, 1),
        Point((5, 1, 30.0, 5.0), True, 2),
        Point((2, 0, 8.0, 8.0), True, 3),  # another z: not on this line
    )
    plan = plan_propagation(prompts, (2, 1), 0, "both", axis_names=["t", "z"])
    assert sorted(plan.prompts) == [1, 2]
    first = plan.prompts[1][2]
    np.testing.assert_array_equal(first.xy, [[20, 10], [22, 12]])
    np.testing.assert_array_equal(first.labels, [1, 0])
    assert list(plan.prompts[2]) == [5]
    assert plan.total == 8 + 3 and plan.plane(7) == (7, 1)


def test_boxes_count_and_the_last_box_wins() -> None:
    """A box alone is an object; of two boxes of an object on one plane the last counts."""
    boxes = (Box((4, 0), (1, 2, 10, 12), 7), Box((4, 0), (5, 5, 60, 9), 7))
    plan = plan_propagation(_prompts(boxes=boxes), (4, 0), 0, "forward")
    np.testing.assert_array_equal(plan.prompts[7][4].box, [5, 5, 49, 9])  # clipped to W
    assert plan.passes == (False,)


def test_mask_prompts_and_accepted_objects() -> None:
    """Objects of the mask array on the frame on screen are mask prompts; accepted ones are
    left out, and nothing left is a NoPromptsError naming the other axes."""
    prompts = _prompts(shape=(6, 20, 20))
    masks = np.zeros((6, 20, 20), np.uint16)
    masks[3, 2:5, 2:5] = 4
    prompts.masks = masks
    plan = plan_propagation(prompts, (3,), 0)
    assert plan.prompts[4][3].mask is not None and plan.prompts[4][3].has_object
    with pytest.raises(NoPromptsError, match=r"\(accepted objects are left as they are\)"):
        plan_propagation(prompts, (3,), 0, skip=frozenset({4}))


@pytest.mark.parametrize(
    ("line", "frame_range", "message"),
    [
        ((4, 0), (8, 9), "the current t=4 is outside the range 8..9"),
        ((4, 0), (3, 12), r"frame range 3..12 is not within t=0..9"),
        ((), None, "'cells' has no stack axis to propagate along"),
    ],
)
def test_bad_requests_say_what_to_do(
    line: tuple[int, ...], frame_range: tuple[int, int] | None, message: str
) -> None:
    """A start outside the range, a range outside the stack, a 2D image: one sentence each."""
    prompts = _prompts(Point((4, 0, 1.0, 1.0), True, 1))
    with pytest.raises(ValueError, match=message):
        plan_propagation(prompts, line, 0, "forward", frame_range, axis_names=["t", "z"])


def test_no_prompts_and_prompts_beyond_the_stack() -> None:
    """No prompt at all, or one past the last frame: the user is told what to fix."""
    with pytest.raises(ValueError, match="there are no prompts yet"):
        plan_propagation(_prompts(), (0, 0), 0)
    beyond = _prompts(Point((12, 0, 1.0, 1.0), True, 5))
    with pytest.raises(ValueError, match=r"object 5 has a prompt at axis 0=12, beyond"):
        plan_propagation(beyond, (0, 0), 0)


def test_points_of_a_yx_layer_prompt_the_frame_on_screen() -> None:
    """A point without leading coordinates prompts the frame the plan starts on."""
    plan = plan_propagation(_prompts(Point((10.0, 20.0), True, 1)), (6, 2), 0)
    assert list(plan.prompts[1]) == [6]


def test_prompted_lines_are_every_position_with_a_prompt() -> None:
    """Each z holding a prompt (point, box or mask) is a line through the current frame."""
    prompts = _prompts(
        Point((2, 2, 1.0, 1.0), True, 1),
        Point((7, 0, 1.0, 1.0), True, 2),
        boxes=(Box((1, 2), (0, 0, 4, 4), 3),),
    )
    assert prompted_lines(prompts, (5, 1), 0) == [(5, 0), (5, 2)]
    assert prompted_lines(_prompts(), (5, 1), 0) == [(5, 1)]
    masks = np.zeros((10, 3, 40, 50), np.uint8)
    masks[5, 1, 3, 3] = 1
    prompts.masks = masks
    assert prompted_lines(prompts, (5, 1), 0) == [(5, 0), (5, 1), (5, 2)]
