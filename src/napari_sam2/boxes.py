"""Box prompts from a napari Shapes layer: each rectangle boxes one object on one plane.

A rectangle carries an ``object_id`` feature like a prompt point, so one Shapes layer can hold
boxes for many objects and frames. SAM 2 takes one box per object and frame; when the user drew
several, the last one counts (drawing a new box is how a box is corrected).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from napari_sam2.axes import plane_shape
from napari_sam2.layers import OBJECT_ID

if TYPE_CHECKING:
    from napari.layers import Image, Shapes

__all__ = [
    "BOX_COLOR",
    "box_planes",
    "new_shapes_layer",
    "prepare_shapes_layer",
    "set_box_defaults",
    "shapes_to_box",
]

BOX_COLOR = "#ffd700"
PlaneIndex = tuple[int, ...]


def prepare_shapes_layer(layer: Shapes, object_id: int = 1) -> None:
    """Give a Shapes layer the ``object_id`` column; existing shapes box ``object_id``."""
    features = layer.features
    if OBJECT_ID not in features:
        features[OBJECT_ID] = np.full(len(layer.data), object_id, dtype=np.int64)
        layer.features = features
    set_box_defaults(layer, object_id)


def set_box_defaults(layer: Shapes, object_id: int) -> None:
    """The object the next rectangle boxes."""
    defaults = {key: layer.feature_defaults[key].iloc[0] for key in layer.feature_defaults}
    defaults[OBJECT_ID] = int(object_id)
    layer.feature_defaults = defaults


def new_shapes_layer(image: Image, object_id: int = 1) -> Shapes:
    """An empty box layer aligned with ``image`` (same dimensions, scale and translation)."""
    from napari.layers import Shapes

    layer = Shapes(
        ndim=image.ndim,
        name=f"{image.name} boxes",
        scale=image.scale,
        translate=image.translate,
        axis_labels=image.axis_labels,
        features={OBJECT_ID: np.empty(0, dtype=np.int64)},
        edge_color=BOX_COLOR,
        edge_width=2,
        face_color="transparent",
    )
    prepare_shapes_layer(layer, object_id)
    return layer


def _vertices_in_image(shapes: Shapes, index: int, image: Image) -> np.ndarray:
    """(V, image.ndim) vertices of shape ``index`` in ``image`` data coordinates."""
    vertices = np.asarray(shapes.data[index], dtype=np.float64)
    world = [shapes.data_to_world(v) for v in vertices]
    mapped = np.array([image.world_to_data(w) for w in world], dtype=np.float64)
    return mapped.reshape(-1, image.ndim)


def _plane_of(vertices: np.ndarray, n_leading: int) -> PlaneIndex | None:
    """The plane a shape lies on; None for a shape without leading axes (any plane)."""
    leading = vertices[:, :n_leading]
    if leading.shape[1] == 0:
        return ()
    first = np.round(leading[0])
    if not np.all(np.abs(leading - first) < 0.5):
        return None  # drawn across planes (3D view): not a box prompt
    return tuple(int(v) for v in first)


def box_planes(shapes: Shapes, rows: Sequence[int], image: Image) -> list[PlaneIndex | None]:
    """The image plane each rectangle of ``rows`` lies on (None if it spans several)."""
    _check_dims(shapes, image)
    n_leading = image.ndim - 2
    out: list[PlaneIndex | None] = []
    for row in rows:
        if shapes.ndim < image.ndim:
            out.append(None)
            continue
        out.append(_plane_of(_vertices_in_image(shapes, int(row), image), n_leading))
    return out


def _check_dims(shapes: Shapes, image: Image) -> None:
    if shapes.ndim > image.ndim:
        raise ValueError(
            f"Shapes layer {shapes.name!r} has {shapes.ndim} dimensions but the image has "
            f"{image.ndim}; use a box layer made for this image ('Add box')"
        )


def shapes_to_box(
    shapes: Shapes, plane: Sequence[int], image: Image, object_id: int
) -> np.ndarray | None:
    """The object's box on ``plane`` as ``[x0, y0, x1, y1]`` image pixels, or None.

    Rectangles (and other shapes, by their bounding box) of ``object_id`` whose vertices lie on
    ``plane`` count; the last one drawn wins. A box entirely off the image raises ValueError.
    """
    _check_dims(shapes, image)
    plane = tuple(int(i) for i in plane)
    if OBJECT_ID in shapes.features:
        ids = np.asarray(shapes.features[OBJECT_ID], dtype=np.int64)
    else:
        ids = np.full(len(shapes.data), object_id, dtype=np.int64)
    n_leading = image.ndim - 2
    for row in reversed(np.flatnonzero(ids == int(object_id))):
        vertices = _vertices_in_image(shapes, int(row), image)
        where = _plane_of(vertices, n_leading) if shapes.ndim == image.ndim else plane
        if where != plane:
            continue
        height, width = plane_shape(image)
        y0, x0 = vertices[:, -2:].min(axis=0)
        y1, x1 = vertices[:, -2:].max(axis=0)
        if y1 < -0.5 or x1 < -0.5 or y0 > height - 0.5 or x0 > width - 0.5:
            raise ValueError(
                f"box {int(row)} of {shapes.name!r} lies outside the image ({height}×{width} "
                "pixels, H×W); move or delete it"
            )
        y0, y1 = np.clip([y0, y1], 0, height - 1)
        x0, x1 = np.clip([x0, x1], 0, width - 1)
        return np.array([x0, y0, x1, y1], dtype=np.float32)
    return None
