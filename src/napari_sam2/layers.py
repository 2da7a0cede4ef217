"""The plugin's layers: prompt Points (their columns and colours) and the output Labels.

Each point carries two feature columns, ``positive`` (bool, drawn green/red) and ``object_id``
(which object it prompts), so several objects can share one layer and no click is ever thrown
away (reading them as prompts is :mod:`napari_sam2.segment.layer_prompts`'s job). :func:`merge_mask`
decides which pixels a mask may take without touching other objects; :class:`LabelsWriter`
applies that with ``Labels.data_setitem`` so every write is one undo step, and the headless
replay applies it to a numpy or memory-mapped array.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_sam2.axes import PlaneIndex, plane_shape

if TYPE_CHECKING:
    from napari.layers import Image, Labels, Points

__all__ = [
    "NEGATIVE_COLOR",
    "OBJECT_ID",
    "POLARITY",
    "POSITIVE_COLOR",
    "LabelsWriter",
    "WriteResult",
    "merge_mask",
    "new_labels_layer",
    "new_points_layer",
    "prepare_points_layer",
    "set_point_defaults",
    "toggle_polarity",
]

POLARITY = "positive"
OBJECT_ID = "object_id"
POSITIVE_COLOR = "#00e000"
NEGATIVE_COLOR = "#ff2020"


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
        size=max(4.0, 0.015 * max(plane_shape(image))),
        border_color="white",
        border_width=0.1,
    )
    prepare_points_layer(layer, object_id)
    return layer


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


def merge_mask(
    current: np.ndarray, mask: np.ndarray, object_id: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, WriteResult]:
    """Make ``mask`` (H, W) bool the object's pixels of the plane ``current`` (H, W).

    Only pixels that are 0 or already the object's may change, so other objects (and anything
    the user painted) survive; the object's old pixels outside ``mask`` are cleared. Returns
    the changed pixels' ``ys``, ``xs`` and new ``values`` (in ``current``'s dtype), and what
    the write did.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != current.shape:
        raise ValueError(
            f"mask of shape {mask.shape} does not match the labels plane of shape {current.shape}"
        )
    own = current == object_id
    target = mask & ((current == 0) | own)
    ys, xs = np.nonzero(own ^ target)  # pixels that change
    values = np.where(target[ys, xs], object_id, 0).astype(current.dtype)
    return ys, xs, values, WriteResult(int(target.sum()), int((mask & ~target).sum()))


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
        current = np.asarray(self.layer.data[plane]).astype(dtype, copy=False)  # (H, W)
        try:
            ys, xs, values, result = merge_mask(current, mask, object_id)
        except ValueError as exc:
            raise ValueError(f"Labels layer {self.layer.name!r}: {exc}") from None
        self._setitem(plane, ys, xs, values)
        return result

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
