"""Prompts from Points layers, masks into Labels layers, and the stack-axis rules (no Qt)."""

from __future__ import annotations

import numpy as np
import pytest
from napari.components import ViewerModel
from napari.layers import Image, Labels, Points

from napari_sam2.axes import describe_plane, plane_index, read_plane, stack_axis
from napari_sam2.layers import (
    NEGATIVE_COLOR,
    OBJECT_ID,
    POLARITY,
    POSITIVE_COLOR,
    LabelsWriter,
    new_labels_layer,
    new_points_layer,
    prepare_points_layer,
    set_point_defaults,
    toggle_polarity,
)
from napari_sam2.segment.layer_prompts import point_planes, read_prompts


def points_to_prompts(
    points: Points, plane: tuple[int, ...], image: Image, object_id: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) x, y and (N,) labels of the points on ``plane``, as the plugin reads them."""
    prompt = read_prompts(image, points).frame_prompt(plane, object_id)
    return prompt.xy, prompt.labels


def _stack(shape: tuple[int, ...] = (4, 20, 30), **kwargs: object) -> Image:
    return Image(np.zeros(shape, np.uint16), name="stack", **kwargs)


def _rgba(hex_color: str) -> np.ndarray:
    return np.array([int(hex_color[i : i + 2], 16) / 255 for i in (1, 3, 5)] + [1.0])


# ---------------------------------------------------------------------- points → prompts
def test_points_to_prompts_swaps_yx_to_xy() -> None:
    """A napari point (y=5, x=7) becomes the SAM 2 prompt (x=7, y=5), labelled positive."""
    image = Image(np.zeros((20, 30)), name="2d")
    points = new_points_layer(image)
    points.add([5, 7])
    coords, labels = points_to_prompts(points, (), image)
    np.testing.assert_array_equal(coords, [[7, 5]])
    np.testing.assert_array_equal(labels, [1])
    assert coords.dtype == np.float32 and labels.dtype == np.int32


def test_points_to_prompts_keeps_only_the_plane_of_a_3d_stack() -> None:
    """On a TYX stack only points whose t rounds to the plane are prompts, in (x, y) order."""
    image = _stack(axis_labels=("t", "y", "x"))
    points = new_points_layer(image)
    points.add([[1, 5, 7], [2, 9, 9], [1.2, 6, 8], [0.6, 3, 4]])
    coords, labels = points_to_prompts(points, (1,), image)
    np.testing.assert_array_equal(coords, [[7, 5], [8, 6], [4, 3]])
    np.testing.assert_array_equal(labels, [1, 1, 1])
    assert points_to_prompts(points, (3,), image)[0].shape == (0, 2)


def test_points_to_prompts_goes_through_world_coordinates() -> None:
    """A prompt layer at scale 1 on an image at scale 2 lands on the image's own pixels."""
    image = Image(np.zeros((20, 30)), scale=(2, 2), name="scaled")
    points = Points([[10, 20]], name="unscaled")
    coords, _ = points_to_prompts(points, (), image)
    np.testing.assert_array_equal(coords, [[10, 5]])


def test_2d_prompt_layer_applies_to_every_plane() -> None:
    """A (y, x) prompt layer on a TYX image prompts whichever plane is shown."""
    image = _stack()
    points = Points([[3, 4]], name="flat")
    for t in range(4):
        np.testing.assert_array_equal(points_to_prompts(points, (t,), image)[0], [[4, 3]])


def test_polarity_and_object_columns_select_prompts() -> None:
    """Negative points get label 0; only the requested object's points are returned."""
    image = _stack()
    points = new_points_layer(image)
    points.add([1, 5, 5])
    set_point_defaults(points, positive=False)
    points.add([1, 6, 6])
    set_point_defaults(points, positive=True, object_id=2)
    points.add([1, 7, 7])
    _, labels = points_to_prompts(points, (1,), image, object_id=1)
    np.testing.assert_array_equal(labels, [1, 0])
    coords, labels = points_to_prompts(points, (1,), image, object_id=2)
    np.testing.assert_array_equal(coords, [[7, 7]])
    np.testing.assert_array_equal(points.features[OBJECT_ID], [1, 1, 2])


@pytest.mark.parametrize(
    ("yx", "message"),
    [
        ((25.0, 3.0), "point 0 of 'stack prompts' at (y=25.0, x=3.0) lies outside the image"),
        ((3.0, -0.6), "at (y=3.0, x=-0.6) lies outside the image (20×30 pixels, H×W)"),
    ],
)
def test_points_outside_the_image_are_refused(yx: tuple[float, float], message: str) -> None:
    """A point off the image raises a ValueError that names the point and its position."""
    image = _stack()
    points = new_points_layer(image)
    points.add([0, *yx])
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        points_to_prompts(points, (0,), image)


def test_point_planes_name_the_plane_of_each_point() -> None:
    """Each point's plane is its rounded leading coordinate; a (y, x) layer has none."""
    image = _stack(scale=(2, 1, 1))
    points = Points([[0.0, 1, 1], [5.8, 2, 2]], scale=(2, 1, 1))
    assert point_planes(points, [0, 1], image) == [(0,), (6,)]
    assert point_planes(Points([[1, 1]]), [0], image) == [None]


def test_points_on_pixel_edges_are_clipped_inside() -> None:
    """Pixel centres are integers, so x=-0.4 is still pixel 0 and is sent as x=0."""
    image = _stack()
    points = new_points_layer(image)
    points.add([0, 19.4, -0.4])
    np.testing.assert_allclose(points_to_prompts(points, (0,), image)[0], [[0, 19]])


def test_one_dimensional_points_layer_is_refused() -> None:
    """A 1D Points layer cannot hold (y, x) prompts and is refused with a clear message."""
    points = Points(np.zeros((1, 1)), ndim=1, name="line")
    with pytest.raises(ValueError, match="'line' has 1 dimension"):
        points_to_prompts(points, (), Image(np.zeros((5, 5))))


def test_polarity_colours_and_toggle() -> None:
    """Positive points are green, negative red; T flips the selected points, else the next one."""
    image = _stack()
    points = new_points_layer(image)
    points.add([0, 1, 1])
    np.testing.assert_allclose(points.face_color[0], _rgba(POSITIVE_COLOR))
    assert toggle_polarity(points) == (False, [1])  # napari selects a point it just added
    np.testing.assert_allclose(points.face_color[0], _rgba(NEGATIVE_COLOR))
    points.selected_data = set()
    assert toggle_polarity(points) == (True, [])
    points.add([0, 2, 2])
    assert points.features[POLARITY].tolist() == [False, True]
    np.testing.assert_allclose(points.face_color[1], _rgba(POSITIVE_COLOR))
    points.selected_data = set()
    assert toggle_polarity(points) == (False, [])
    points.add([0, 3, 3])
    np.testing.assert_allclose(points.face_color[2], _rgba(NEGATIVE_COLOR))


def test_prepare_points_layer_keeps_user_points() -> None:
    """A user's Points layer gains the columns; its points become positive prompts, unmoved."""
    points = Points([[1, 2], [3, 4]], name="mine")
    prepare_points_layer(points, object_id=3)
    np.testing.assert_array_equal(points.data, [[1, 2], [3, 4]])
    assert points.features[POLARITY].tolist() == [True, True]
    assert points.features[OBJECT_ID].tolist() == [3, 3]


# ---------------------------------------------------------------------- LabelsWriter
def _square(y: int, x: int, size: int = 6, shape: tuple[int, int] = (20, 30)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[y : y + size, x : x + size] = True
    return mask


def test_writer_never_overwrites_other_objects() -> None:
    """Pixels of other ids stay; the blocked part of the mask is reported."""
    labels = Labels(np.zeros((3, 20, 30), np.uint32))
    labels.data[1, 0:5, 0:5] = 7
    result = LabelsWriter(labels).write((1,), 1, _square(2, 2))
    assert labels.data[1, 0:5, 0:5].tolist() == np.full((5, 5), 7).tolist()
    assert result.blocked == 9 and result.pixels == 36 - 9
    assert int((labels.data[1] == 1).sum()) == 27


def test_writer_replaces_the_object_on_its_plane_only() -> None:
    """A new mask clears the object's old pixels on that plane; other planes keep theirs."""
    labels = Labels(np.zeros((3, 20, 30), np.uint32))
    writer = LabelsWriter(labels)
    writer.write((0,), 1, _square(0, 0))
    writer.write((1,), 1, _square(0, 0))
    writer.write((1,), 1, _square(10, 10))
    np.testing.assert_array_equal(labels.data[1] == 1, _square(10, 10))
    np.testing.assert_array_equal(labels.data[0] == 1, _square(0, 0))
    assert not labels.data[2].any()


def test_each_write_is_one_undo_step() -> None:
    """layer.undo() takes back one write exactly, then the one before it."""
    labels = Labels(np.zeros((3, 20, 30), np.uint32))
    writer = LabelsWriter(labels)
    writer.write((2,), 4, _square(1, 1))
    first = labels.data.copy()
    writer.write((2,), 4, _square(8, 12))
    labels.undo()
    np.testing.assert_array_equal(labels.data, first)
    labels.undo()
    assert not labels.data.any()
    labels.redo()
    np.testing.assert_array_equal(labels.data, first)


def test_clear_removes_only_that_object() -> None:
    """clear() empties one object on one plane and is undoable."""
    labels = Labels(np.zeros((2, 20, 30), np.uint32))
    labels.data[0, :2, :2] = 9
    writer = LabelsWriter(labels)
    writer.write((0,), 3, _square(5, 5))
    assert writer.clear((0,), 3) == 36
    assert set(np.unique(labels.data)) == {0, 9}
    labels.undo()
    assert int((labels.data[0] == 3).sum()) == 36


def test_an_id_of_someone_elses_pixels_is_refused() -> None:
    """Per-frame Cellpose ids: writing id 1 on frame 1 would clear frame 1's own cell 1, so
    it raises (naming a free id) and no pixel changes; clearing it is refused too."""
    labels = Labels(np.zeros((2, 20, 30), np.uint32), name="cellpose")
    labels.data[0, 0:4, 0:4] = 1
    labels.data[1, 10:14, 20:24] = 1
    labels.data[1, 0:2, 0:2] = 2
    before = labels.data.copy()
    writer = LabelsWriter(labels)
    message = r"'cellpose' already holds object id\(s\) 1 for pixels napari-sam2 did not write"
    with pytest.raises(ValueError, match=message + r".*free id \(3\)"):
        writer.write((1,), 1, _square(5, 5))
    with pytest.raises(ValueError, match=message):
        writer.clear((0,), 1)
    with pytest.raises(ValueError, match=r"id\(s\) 1, 2 for"):
        writer.claim([1, 2, 3])
    np.testing.assert_array_equal(labels.data, before)


def test_ids_we_wrote_stay_ours_for_every_writer() -> None:
    """An id napari-sam2 wrote (or loaded from its session) may be rewritten by any writer of
    that layer, e.g. the propagation after the click."""
    labels = Labels(np.zeros((2, 20, 30), np.uint32))
    LabelsWriter(labels).write((0,), 4, _square(0, 0))
    LabelsWriter(labels).write((1,), 4, _square(5, 5))
    assert int((labels.data == 4).sum()) == 72
    labels.data[1, 15:18, 0:3] = 8  # as a saved session's labels hold it
    writer = LabelsWriter(labels)
    writer.own([8])
    writer.write((0,), 8, _square(10, 10))
    assert int((labels.data[0] == 8).sum()) == 36 and int((labels.data[1] == 8).sum()) == 9


@pytest.mark.parametrize(
    ("data", "object_id", "message"),
    [
        (np.zeros((20, 30), np.uint8), 256, "object id 256 does not fit in Labels layer"),
        (np.zeros((20, 30), np.uint8), 0, "object id must be 1 or more"),
        (np.zeros((2, 20, 30), np.uint8), 1, "has 3 dimensions, but the image plane needs 2"),
    ],
)
def test_writer_refuses_bad_ids_and_shapes(data: np.ndarray, object_id: int, message: str) -> None:
    """Ids that do not fit, id 0 and a wrong-dimension layer raise, leaving data untouched."""
    labels = Labels(data)
    with pytest.raises(ValueError, match=message):
        LabelsWriter(labels).write((), object_id, np.ones((20, 30), bool))
    assert not labels.data.any()


def test_new_labels_layer_matches_image() -> None:
    """The output layer is uint32 (no 255 ceiling) with the image's shape, scale and labels."""
    image = _stack(scale=(1, 0.5, 0.5), axis_labels=("t", "y", "x"))
    labels = new_labels_layer(image)
    assert labels.data.dtype == np.uint32 and labels.data.shape == (4, 20, 30)
    np.testing.assert_array_equal(labels.scale, image.scale)
    rgb = Image(np.zeros((20, 30, 3), np.uint8), rgb=True)
    assert new_labels_layer(rgb).data.shape == (20, 30)


# ---------------------------------------------------------------------- axes
@pytest.mark.parametrize(
    ("shape", "axis_labels", "expected"),
    [
        ((20, 30), None, None),
        ((4, 20, 30), None, 0),
        ((4, 20, 30), ("z", "y", "x"), 0),
        ((3, 4, 20, 30), ("t", "z", "y", "x"), 0),
        ((3, 4, 20, 30), ("z", "T", "y", "x"), 1),
        ((3, 4, 20, 30), ("c", "depth", "y", "x"), 1),
    ],
)
def test_stack_axis_prefers_time_then_z(
    shape: tuple[int, ...], axis_labels: tuple[str, ...] | None, expected: int | None
) -> None:
    """T beats Z; unlabelled stacks use the first leading axis; 2D has none."""
    image = Image(np.zeros(shape), axis_labels=axis_labels)
    assert stack_axis(image) == expected


def test_plane_index_follows_the_viewer_slider() -> None:
    """The current t of the viewer is the plane; 2D images have the empty plane ()."""
    viewer = ViewerModel()
    image = viewer.add_image(np.zeros((4, 20, 30)), axis_labels=("t", "y", "x"))
    viewer.dims.set_current_step(0, 3)
    assert plane_index(image, viewer.dims) == (3,)
    assert describe_plane(image, (3,)) == "t=3"
    flat = viewer.add_image(np.zeros((20, 30)))
    assert plane_index(flat, viewer.dims) == ()


@pytest.mark.parametrize("change", ["3d", "transpose"])
def test_plane_index_refuses_views_without_the_yx_plane(change: str) -> None:
    """A 3D view or a stack axis on screen is refused instead of segmenting the wrong plane."""
    viewer = ViewerModel()
    image = viewer.add_image(np.zeros((4, 20, 30)))
    if change == "3d":
        viewer.dims.ndisplay = 3
        match = "switch the viewer to 2D"
    else:
        viewer.dims.order = (1, 0, 2)
        match = "not the Y/X plane"
    with pytest.raises(ValueError, match=match):
        plane_index(image, viewer.dims)


def test_read_plane_drops_alpha() -> None:
    """RGBA planes reach SAM 2 as RGB."""
    data = np.zeros((2, 5, 6, 4), np.uint8)
    assert read_plane(data, (1,), rgb=True).shape == (5, 6, 3)
    assert read_plane(data[..., 0], (1,), rgb=False).shape == (5, 6)
