"""The one adapter between napari's prompt layers and a :class:`~napari_sam2.prompts.PromptSet`.

Prompt layers may have their own scale, translation or fewer axes than the image, so every
vertex is mapped through world coordinates into the image's data pixels here, once
(:func:`image_coords`), and nowhere else. What comes out is napari-free: planning, clicks and
the saved session all work on the :class:`PromptSet` that :func:`read_prompts` returns, and
:func:`prompt_layers` turns one back into layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_sam2.axes import PlaneIndex, layer_array, plane_shape
from napari_sam2.layers import OBJECT_ID, POLARITY
from napari_sam2.prompts import Box, Point, PromptSet

if TYPE_CHECKING:
    from napari.layers import Image, Labels, Points, Shapes

__all__ = [
    "box_planes",
    "image_coords",
    "point_planes",
    "point_rows",
    "prompt_layers",
    "read_prompts",
]


def image_coords(layer: Any, coords: np.ndarray, image: Image) -> np.ndarray:
    """(N, image.ndim) image data coordinates of ``layer``'s (N, layer.ndim) data ``coords``."""
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, layer.ndim)
    world = [layer.data_to_world(c) for c in coords]
    mapped = np.array([image.world_to_data(w) for w in world], dtype=np.float64)
    return mapped.reshape(-1, image.ndim)


def _check_dims(layer: Any, image: Image, kind: str, fix: str) -> None:
    if layer.ndim < 2:
        raise ValueError(
            f"{kind} layer {layer.name!r} has {layer.ndim} dimension(s); prompts need at "
            "least (y, x)"
        )
    if layer.ndim > image.ndim:
        raise ValueError(
            f"{kind} layer {layer.name!r} has {layer.ndim} dimensions but the image has "
            f"{image.ndim}; use a {fix}"
        )


def _point_coords(points: Points, image: Image, rows: Sequence[int] | None = None) -> np.ndarray:
    """(N, points.ndim) coordinates of ``rows`` (all) in image data space (… y, x)."""
    _check_dims(points, image, "points", "prompt layer made for this image ('Add points')")
    data = np.asarray(points.data, dtype=np.float64).reshape(-1, points.ndim)
    if rows is not None:
        data = data[np.asarray(rows, dtype=np.intp)]
    return image_coords(points, data, image)[:, image.ndim - points.ndim :]


def _column(layer: Any, name: str, default: Any, dtype: Any) -> np.ndarray:
    n = len(layer.data)
    if name not in layer.features:
        return np.full(n, default, dtype=dtype)
    return np.asarray(layer.features[name], dtype=dtype)


def point_planes(points: Points, rows: Sequence[int], image: Image) -> list[PlaneIndex | None]:
    """The image plane each of ``rows`` lies on; None where the prompt layer has no such axes
    (a (y, x) layer on a stack prompts whichever plane is shown)."""
    coords = _point_coords(points, image, rows)
    if points.ndim < image.ndim:
        return [None] * len(coords)
    return [tuple(round(float(c)) for c in row[:-2]) for row in coords]


def point_rows(
    points: Points, plane: PlaneIndex, image: Image, object_id: int | None = None
) -> np.ndarray:
    """Row indices of the points on ``plane`` (of ``object_id``), as the prompts see them."""
    rows = read_prompts(image, points).point_indices_on(tuple(plane), object_id)
    return np.array(rows, dtype=np.intp)


def _shape_plane(vertices: np.ndarray, n_leading: int) -> PlaneIndex | None:
    """The plane a shape lies on; None for one drawn across planes (3D view)."""
    leading = vertices[:, :n_leading]
    if leading.shape[1] == 0:
        return ()
    first = np.round(leading[0])
    if not np.all(np.abs(leading - first) < 0.5):
        return None
    return tuple(int(v) for v in first)


def box_planes(shapes: Shapes, rows: Sequence[int], image: Image) -> list[PlaneIndex | None]:
    """The image plane each rectangle of ``rows`` lies on (None: several, or every plane)."""
    _check_dims(shapes, image, "Shapes", "box layer made for this image ('Add box')")
    if shapes.ndim < image.ndim:
        return [None] * len(rows)
    n_leading = image.ndim - 2
    return [
        _shape_plane(image_coords(shapes, shapes.data[int(row)], image), n_leading) for row in rows
    ]


def _boxes(shapes: Shapes, image: Image) -> list[Box]:
    """One box per object and plane, the last one drawn (drawing a new box corrects one)."""
    _check_dims(shapes, image, "Shapes", "box layer made for this image ('Add box')")
    ids = _column(shapes, OBJECT_ID, 1, np.int64)
    n_leading = image.ndim - 2
    found: dict[tuple[PlaneIndex | None, int], Box] = {}
    for row in range(len(shapes.data)):
        vertices = image_coords(shapes, shapes.data[row], image)
        plane = _shape_plane(vertices, n_leading) if shapes.ndim == image.ndim else None
        if plane is None and shapes.ndim == image.ndim:
            continue  # drawn across planes: not a box prompt
        y0, x0 = vertices[:, -2:].min(axis=0)
        y1, x1 = vertices[:, -2:].max(axis=0)
        key = (plane, int(ids[row]))  # a dict keeps the first one's place, the last one's box
        box = (float(x0), float(y0), float(x1), float(y1))
        found[key] = Box(plane, box, key[1], f"box {row} of {shapes.name!r}")
    return list(found.values())


def read_prompts(
    image: Image,
    points: Points | None = None,
    shapes: Shapes | None = None,
    masks: Labels | None = None,
    labels: Labels | None = None,
    video_axis: int | None = None,
) -> PromptSet:
    """Every prompt of the layers, in ``image``'s data coordinates; ValueError for layers
    that do not fit the image (naming the layer and the fix)."""
    shape = (*layer_array(image).shape[: image.ndim - 2], *plane_shape(image))
    low, high = (float(v) for v in image.contrast_limits)
    prompts = PromptSet(str(image.name), tuple(int(n) for n in shape), video_axis, (low, high))
    if points is not None:
        coords = _point_coords(points, image)
        polarity = _column(points, POLARITY, True, bool)
        ids = _column(points, OBJECT_ID, 1, np.int64)
        prompts.points = [
            Point(tuple(float(c) for c in row), bool(pos), int(i), f"point {n} of {points.name!r}")
            for n, (row, pos, i) in enumerate(zip(coords, polarity, ids))
        ]
    if shapes is not None:
        prompts.boxes = _boxes(shapes, image)
    if masks is not None:
        if tuple(masks.data.shape) != prompts.image_shape:
            raise ValueError(
                f"Labels layer {masks.name!r} has shape {tuple(masks.data.shape)}, but image "
                f"{image.name!r} needs {prompts.image_shape}; choose a mask layer of the image's "
                "shape"
            )
        prompts.masks = masks.data
    if labels is not None:
        if tuple(labels.data.shape) != prompts.image_shape:
            raise ValueError(
                f"Labels layer {labels.name!r} has shape {tuple(labels.data.shape)}, but "
                f"image {image.name!r} has {prompts.image_shape}"
            )
        prompts.labels = np.asarray(labels.data)
    return prompts


def prompt_layers(prompts: PromptSet, image: Image) -> tuple[Points, Shapes, Labels | None]:
    """New Points, Shapes and Labels layers aligned with ``image`` (nothing is replaced)."""
    from napari_sam2.layers import new_points_layer
    from napari_sam2.segment.boxes import new_shapes_layer

    shape = (*layer_array(image).shape[: image.ndim - 2], *plane_shape(image))
    if tuple(shape) != prompts.image_shape:
        raise ValueError(
            f"this session was saved for an image of shape {prompts.image_shape} "
            f"({prompts.image_name!r}), but {image.name!r} has shape {tuple(shape)}"
        )
    points = new_points_layer(image)
    if prompts.points:
        points.data = np.array([p.coords for p in prompts.points], dtype=float)
        features = points.features
        features[POLARITY] = np.array([p.positive for p in prompts.points], dtype=bool)
        features[OBJECT_ID] = np.array([p.object_id for p in prompts.points], dtype=np.int64)
        points.features = features
        points.refresh_colors()
    shapes = new_shapes_layer(image)
    for box in prompts.boxes:
        if box.plane is None:
            continue
        x0, y0, x1, y1 = box.box
        corners = np.array([[y0, x0], [y0, x1], [y1, x1], [y1, x0]], dtype=float)
        leading = np.tile(np.asarray(box.plane, dtype=float), (4, 1))
        shapes.feature_defaults = {OBJECT_ID: box.object_id}
        shapes.add_rectangles(np.column_stack([leading, corners]))
    labels = None
    if prompts.labels is not None:
        from napari.layers import Labels

        labels = Labels(
            prompts.labels,
            name=f"{image.name} SAM 2 labels",
            scale=image.scale[: prompts.labels.ndim],
            translate=image.translate[: prompts.labels.ndim],
        )
    return points, shapes, labels
