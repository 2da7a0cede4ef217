"""Between napari layers and SAM 2 prompts: Points in, Labels out.

Points are ``(…, y, x)`` in napari and ``(x, y)`` in SAM 2: :func:`points_to_prompts` is the
one place that converts. Each point carries two feature columns, ``positive`` (bool, drawn
green/red) and ``object_id`` (which object it prompts), so several objects can share one layer
and no click is ever thrown away. :class:`LabelsWriter` writes masks with
``Labels.data_setitem`` so every write is one undo step and never touches other objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from napari.layers import Image, Labels, Points

__all__ = [
    "NEGATIVE_COLOR",
    "OBJECT_ID",
    "POLARITY",
    "POSITIVE_COLOR",
    "LabelsWriter",
    "WriteResult",
    "new_labels_layer",
    "new_points_layer",
    "points_to_prompts",
    "prepare_points_layer",
    "prompt_planes",
    "prompt_rows",
    "set_point_defaults",
    "toggle_polarity",
]

POLARITY = "positive"
OBJECT_ID = "object_id"
POSITIVE_COLOR = "#00e000"
NEGATIVE_COLOR = "#ff2020"
PlaneIndex = tuple[int, ...]


# ---------------------------------------------------------------------------------- points
def prepare_points_layer(layer: Points, object_id: int = 1) -> None:
    """Give a Points layer the prompt columns and the green/red polarity colours.

    Existing points of a user's layer count as positive prompts of ``object_id``; nothing is
    removed or moved.
    """
    features = layer.features
    n = len(layer.data)
    if POLARITY not in features:
        features[POLARITY] = np.ones(n, dtype=bool)
    if OBJECT_ID not in features:
        features[OBJECT_ID] = np.full(n, object_id, dtype=np.int64)
    layer.features = features
    layer.face_color_cycle = {True: POSITIVE_COLOR, False: NEGATIVE_COLOR}
    layer.face_color = POLARITY
    set_point_defaults(layer, positive=True, object_id=object_id)


def set_point_defaults(
    layer: Points, *, positive: bool | None = None, object_id: int | None = None
) -> None:
    """Polarity and object of the next point the user clicks."""
    defaults = {key: layer.feature_defaults[key].iloc[0] for key in layer.feature_defaults}
    if positive is not None:
        defaults[POLARITY] = bool(positive)
    if object_id is not None:
        defaults[OBJECT_ID] = int(object_id)
    layer.feature_defaults = defaults


def toggle_polarity(layer: Points) -> tuple[bool, list[int]]:
    """Flip the selected points' polarity, or the next point's when none is selected.

    Returns the new default polarity and the object ids whose prompts changed.
    """
    selected = sorted(layer.selected_data)
    if selected:
        features = layer.features
        polarity = np.asarray(features[POLARITY], dtype=bool).copy()
        polarity[selected] = ~polarity[selected]
        features[POLARITY] = polarity
        layer.features = features
        layer.refresh_colors()
        changed = sorted({int(i) for i in np.asarray(features[OBJECT_ID])[selected]})
        return bool(layer.feature_defaults[POLARITY].iloc[0]), changed
    positive = not bool(layer.feature_defaults[POLARITY].iloc[0])
    set_point_defaults(layer, positive=positive)
    return positive, []


def new_points_layer(image: Image, object_id: int = 1) -> Points:
    """An empty prompt layer aligned with ``image`` (same dimensions, scale and translation)."""
    from napari.layers import Points

    layer = Points(
        np.empty((0, image.ndim)),
        ndim=image.ndim,
        name=f"{image.name} prompts",
        scale=image.scale,
        translate=image.translate,
        axis_labels=image.axis_labels,
        features={
            POLARITY: np.empty(0, dtype=bool),
            OBJECT_ID: np.empty(0, dtype=np.int64),
        },
        size=max(4.0, 0.015 * max(_image_hw(image))),
        border_color="white",
        border_width=0.1,
    )
    prepare_points_layer(layer, object_id)
    return layer


def _image_hw(image: Image) -> tuple[int, int]:
    shape = (image.data[0] if image.multiscale else image.data).shape
    shape = shape[:-1] if image.rgb else shape
    return int(shape[-2]), int(shape[-1])


def points_to_prompts(
    points: Points,
    plane: Sequence[int],
    image: Image | None = None,
    object_id: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The prompts on one plane: ``(N, 2)`` (x, y) image pixels and ``(N,)`` labels 1/0.

    ``plane`` holds the leading data indices of the image plane (``(t,)`` for a TYX stack,
    ``()`` for 2D). Points are mapped to ``image`` data coordinates through world coordinates,
    so a prompt layer with its own scale still lands on the right pixel; without ``image`` the
    points' data coordinates are used. A point belongs to the plane when its leading
    coordinates round to ``plane``; a prompt layer with fewer axes than the image applies to
    every plane. ``object_id`` keeps only that object's points. Raises ValueError for points
    off the image, naming the point and the fix.
    """
    rows, yx = _on_plane(points, plane, image, object_id)
    positive = _polarity(points)[rows]
    if image is not None:
        _check_inside(yx, _image_hw(image), points, rows)
        height, width = _image_hw(image)
        yx = np.clip(yx, 0, [height - 1, width - 1])  # pixel edges count as inside
    xy = yx[:, ::-1].astype(np.float32)  # (N, 2) y, x -> x, y
    return xy.reshape(-1, 2), positive.astype(np.int32)


def prompt_rows(
    points: Points,
    plane: Sequence[int],
    image: Image | None = None,
    object_id: int | None = None,
) -> np.ndarray:
    """Row indices of the points that :func:`points_to_prompts` would use."""
    return _on_plane(points, plane, image, object_id)[0]


def prompt_planes(points: Points, rows: Sequence[int], image: Image) -> list[PlaneIndex | None]:
    """The image plane each of ``rows`` lies on; None where the prompt layer has no such axes
    (a (y, x) layer on a stack prompts whichever plane is shown)."""
    _check_dims(points, image.ndim)
    if points.ndim < image.ndim:
        return [None] * len(rows)
    coords = _image_coords(points, np.asarray(rows, dtype=np.intp), image)
    return [tuple(round(float(c)) for c in row[:-2]) for row in coords]


def _check_dims(points: Points, n_image_dims: int) -> None:
    if points.ndim < 2:
        raise ValueError(
            f"points layer {points.name!r} has {points.ndim} dimension(s); prompts need at "
            "least (y, x)"
        )
    if points.ndim > n_image_dims:
        raise ValueError(
            f"points layer {points.name!r} has {points.ndim} dimensions but the image has "
            f"{n_image_dims}; use a prompt layer made for this image ('Add points')"
        )


def _image_coords(points: Points, rows: np.ndarray, image: Image | None) -> np.ndarray:
    """(N, points.ndim) coordinates of ``rows`` in ``image`` data space (… y, x)."""
    coords = np.asarray(points.data, dtype=np.float64)[rows].reshape(-1, points.ndim)
    if image is None:
        return coords
    world = [points.data_to_world(p) for p in coords]
    mapped = np.array([image.world_to_data(w) for w in world], dtype=np.float64)
    return mapped.reshape(-1, image.ndim)[:, image.ndim - points.ndim :]


def _on_plane(
    points: Points, plane: Sequence[int], image: Image | None, object_id: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the points on ``plane`` and their (y, x) in image data coordinates."""
    plane = tuple(int(i) for i in plane)
    n_image_dims = len(plane) + 2
    if image is not None and image.ndim != n_image_dims:
        raise ValueError(
            f"plane {plane} has {len(plane)} leading indices, but image {image.name!r} has "
            f"{image.ndim} dimensions"
        )
    _check_dims(points, n_image_dims)
    rows = np.flatnonzero(_points_of(points, object_id))
    coords = _image_coords(points, rows, image)
    n_missing = n_image_dims - points.ndim  # leading axes the prompt layer does not have
    leading = coords[:, :-2]
    on_plane = np.all(np.abs(leading - np.asarray(plane[n_missing:])) < 0.5, axis=1)
    return rows[on_plane], coords[on_plane, -2:]


def _points_of(points: Points, object_id: int | None) -> np.ndarray:
    if object_id is None or OBJECT_ID not in points.features:
        return np.ones(len(points.data), dtype=bool)
    return np.asarray(points.features[OBJECT_ID], dtype=np.int64) == int(object_id)


def _polarity(points: Points) -> np.ndarray:
    if POLARITY not in points.features:
        return np.ones(len(points.data), dtype=bool)
    return np.asarray(points.features[POLARITY], dtype=bool)


def _check_inside(yx: np.ndarray, hw: tuple[int, int], points: Points, rows: np.ndarray) -> None:
    """Pixel centres are integers in napari, so the image spans [-0.5, size - 0.5]."""
    height, width = hw
    outside = (yx[:, 0] < -0.5) | (yx[:, 0] > height - 0.5)
    outside |= (yx[:, 1] < -0.5) | (yx[:, 1] > width - 0.5)
    if outside.any():
        first = int(np.flatnonzero(outside)[0])
        y, x = yx[first]
        raise ValueError(
            f"point {int(rows[first])} of {points.name!r} at (y={y:.1f}, x={x:.1f}) lies "
            f"outside the image ({height}×{width} pixels, H×W); move or delete it"
        )


# ---------------------------------------------------------------------------------- labels
def new_labels_layer(image: Image) -> Labels:
    """An empty uint32 Labels layer aligned with ``image``: no 255-object ceiling."""
    from napari.layers import Labels

    shape = (image.data[0] if image.multiscale else image.data).shape
    shape = shape[:-1] if image.rgb else shape
    return Labels(
        np.zeros(shape, dtype=np.uint32),
        name=f"{image.name} SAM 2 labels",
        scale=image.scale,
        translate=image.translate,
        axis_labels=image.axis_labels,
    )


@dataclass(frozen=True)
class WriteResult:
    """What one write did: pixels now labelled, and mask pixels left to other objects."""

    pixels: int
    blocked: int


class LabelsWriter:
    """Writes one object's mask into one plane of a Labels layer.

    Only pixels that are 0 or already hold the object's id are touched, so other objects (and
    anything the user painted) survive. The object's old pixels on that plane are cleared
    first, and the whole change is a single ``data_setitem`` call: one step of the layer's
    undo history, and only the changed region is refreshed.
    """

    def __init__(self, layer: Labels) -> None:
        self.layer = layer

    def _check(self, plane: PlaneIndex, object_id: int) -> np.dtype[Any]:
        dtype = np.dtype(self.layer.data.dtype)
        if object_id < 1:
            raise ValueError(f"object id must be 1 or more (0 is background), got {object_id}")
        if np.issubdtype(dtype, np.integer) and object_id > np.iinfo(dtype).max:
            raise ValueError(
                f"object id {object_id} does not fit in Labels layer {self.layer.name!r} "
                f"({dtype}); pick a new output layer (uint32)"
            )
        if len(plane) + 2 != self.layer.ndim:
            raise ValueError(
                f"Labels layer {self.layer.name!r} has {self.layer.ndim} dimensions, but the "
                f"image plane needs {len(plane) + 2}; pick a Labels layer of the image's shape"
            )
        return dtype

    def write(self, plane: Sequence[int], object_id: int, mask: np.ndarray) -> WriteResult:
        """Make ``mask`` (H, W) bool the object's pixels on ``plane``, as one undo step."""
        plane = tuple(int(i) for i in plane)
        dtype = self._check(plane, object_id)
        current = np.asarray(self.layer.data[plane])  # (H, W)
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != current.shape:
            raise ValueError(
                f"mask of shape {mask.shape} does not match Labels layer {self.layer.name!r} "
                f"plane of shape {current.shape}"
            )
        own = current == object_id
        target = mask & ((current == 0) | own)
        ys, xs = np.nonzero(own ^ target)  # pixels that change
        self._setitem(plane, ys, xs, np.where(target[ys, xs], object_id, 0).astype(dtype))
        return WriteResult(pixels=int(target.sum()), blocked=int((mask & ~target).sum()))

    def clear(self, plane: Sequence[int], object_id: int) -> int:
        """Remove the object from ``plane`` (one undo step); returns the pixels cleared."""
        plane = tuple(int(i) for i in plane)
        dtype = self._check(plane, object_id)
        current = np.asarray(self.layer.data[plane])
        ys, xs = np.nonzero(current == object_id)
        self._setitem(plane, ys, xs, np.zeros(ys.size, dtype=dtype))
        return int(ys.size)

    def _setitem(
        self, plane: PlaneIndex, ys: np.ndarray, xs: np.ndarray, values: np.ndarray
    ) -> None:
        """One ``data_setitem`` call: one undo step, only the changed region refreshed."""
        if ys.size:
            leading = [np.full(ys.size, i, dtype=np.intp) for i in plane]
            self.layer.data_setitem((*leading, ys, xs), values)

    def max_id(self) -> int:
        """The largest id in the layer, so a new object never reuses one."""
        data = self.layer.data
        return int(np.asarray(data.max())) if data.size else 0
