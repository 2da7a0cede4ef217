"""Box prompts from Shapes layers: plane matching, last box wins, clipping, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Image, Shapes

from napari_sam2.layers import OBJECT_ID
from napari_sam2.segment.boxes import new_shapes_layer
from napari_sam2.segment.layer_prompts import box_planes, read_prompts


@pytest.fixture
def image() -> Image:
    return Image(np.zeros((6, 40, 50), np.uint16), name="stack", scale=(1.0, 2.0, 2.0))


def shapes_to_box(
    shapes: Shapes, plane: tuple[int, ...], image: Image, object_id: int
) -> np.ndarray | None:
    """The object's box on ``plane``, as the plugin reads it."""
    return read_prompts(image, shapes=shapes).box_on(plane, object_id)


def _corners(y0: float, x0: float, y1: float, x1: float) -> np.ndarray:
    return np.array([[y0, x0], [y0, x1], [y1, x1], [y1, x0]], dtype=float)


def _rect(layer: Shapes, t: int, y0: float, x0: float, y1: float, x1: float, obj: int) -> None:
    layer.feature_defaults = {OBJECT_ID: obj}
    corners = _corners(y0, x0, y1, x1)
    layer.add_rectangles(np.column_stack([np.full(4, t, dtype=float), corners]))


def test_the_last_box_of_the_object_on_the_plane_wins(image: Image) -> None:
    """Boxes are (x0, y0, x1, y1) image pixels; other objects' and other frames' boxes are
    ignored; the box layer shares the image's scale, so world and data pixels agree."""
    layer = new_shapes_layer(image, object_id=1)
    _rect(layer, 2, 5, 6, 20, 30, obj=1)
    _rect(layer, 2, 1, 1, 9, 9, obj=2)
    _rect(layer, 3, 0, 0, 10, 10, obj=1)
    _rect(layer, 2, 8, 10, 12, 40, obj=1)
    np.testing.assert_array_equal(shapes_to_box(layer, (2,), image, 1), [10, 8, 40, 12])
    np.testing.assert_array_equal(shapes_to_box(layer, (2,), image, 2), [1, 1, 9, 9])
    assert shapes_to_box(layer, (4,), image, 1) is None
    assert box_planes(layer, range(4), image) == [(2,), (2,), (3,), (2,)]


def test_boxes_are_clipped_and_off_image_boxes_refused(image: Image) -> None:
    layer = new_shapes_layer(image)
    _rect(layer, 0, -5, -5, 10, 80, obj=1)
    np.testing.assert_array_equal(shapes_to_box(layer, (0,), image, 1), [0, 0, 49, 10])
    _rect(layer, 1, 50, 60, 70, 90, obj=1)
    with pytest.raises(ValueError, match=r"box 1 of 'stack boxes' lies outside the image"):
        shapes_to_box(layer, (1,), image, 1)


def test_a_2d_box_layer_boxes_every_plane(image: Image) -> None:
    """A (y, x) Shapes layer on a stack prompts whichever plane is asked for."""
    layer = Shapes(scale=(2.0, 2.0))
    layer.add_rectangles(_corners(2, 3, 12, 13))
    np.testing.assert_array_equal(shapes_to_box(layer, (5,), image, 1), [3, 2, 13, 12])
    assert box_planes(layer, [0], image) == [None]


def test_too_many_dimensions_are_refused(image: Image) -> None:
    layer = Shapes(ndim=4)
    layer.add_rectangles(np.column_stack([np.zeros((4, 2)), _corners(2, 3, 12, 13)]))
    with pytest.raises(ValueError, match="has 4 dimensions but the image has 3"):
        shapes_to_box(layer, (0,), image, 1)
