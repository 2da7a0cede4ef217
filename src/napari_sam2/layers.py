"""The plugin's layers: prompt Points (their columns and colours) and the output Labels.

Each point carries two feature columns, ``positive`` (bool, drawn green/red) and ``object_id``
(which object it prompts), so several objects can share one layer and no click is ever thrown
away (reading them as prompts is :mod:`napari_sam2.segment.layer_prompts`'s job). :func:`merge_mask`
decides which pixels a mask may take without touching other objects; :class:`LabelsWriter`
applies that with ``Labels.data_setitem`` so every write is one undo step, and the headless
replay applies it to a numpy or memory-mapped array.

Writing an object replaces its old pixels on the plane, which is only right for an object we
made: an id a layer already holds for someone else's pixels (per-frame Cellpose ids, a cell
painted by hand) would lose them. So each Labels layer remembers the ids napari-sam2 wrote
into it (for as long as the layer lives), and :class:`LabelsWriter` refuses any other id the
layer already holds with :class:`ForeignLabelError`, before writing anything.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence
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
    "ForeignLabelError",
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


class ForeignLabelError(ValueError):
    """Object ids the output layer already holds for pixels napari-sam2 did not write."""


#: The ids napari-sam2 wrote into (or loaded as a session into) each live Labels layer.
_OURS: weakref.WeakKeyDictionary[Labels, set[int]] = weakref.WeakKeyDictionary()


class LabelsWriter:
    """Writes one object's mask into one plane of a Labels layer.

    Only pixels that are 0 or already hold the object's id are touched, so other objects (and
    anything the user painted) survive. The object's old pixels on that plane are cleared
    first, and the whole change is a single ``data_setitem`` call: one step of the layer's
    undo history, and only the changed region is refreshed.

    That clearing is why an id must be ours: the first write of an id the layer already
    holds, but that napari-sam2 never wrote there, raises :class:`ForeignLabelError` instead
    (nothing is written; the message gives a free id). Refusing beats quietly renumbering:
    the user's prompts carry the id, and a mask under another id than the one chosen would be
    as surprising as the erased pixels.
    """

    def __init__(self, layer: Labels) -> None:
        self.layer = layer

    @property
    def ours(self) -> set[int]:
        """The ids napari-sam2 may rewrite in this layer (shared by every writer of it)."""
        return _OURS.setdefault(self.layer, set())

    def own(self, ids: Iterable[int]) -> None:
        """Take ``ids`` as ours without a check: the labels of a session we saved."""
        self.ours.update(int(i) for i in ids)

    def claim(self, ids: Iterable[int]) -> None:
        """Make ``ids`` ours if the layer does not hold them yet; else ForeignLabelError.

        A propagation claims all its objects at once (one pass over the layer), so its
        frames are never refused half-way.
        """
        new = sorted({int(i) for i in ids} - self.ours)
        if not new:
            return
        taken = _present(self.layer.data, new)
        if taken:
            listed = ", ".join(map(str, taken[:10])) + (", …" if len(taken) > 10 else "")
            raise ForeignLabelError(
                f"Labels layer {self.layer.name!r} already holds object id(s) {listed} for "
                "pixels napari-sam2 did not write (another tool's objects or ones painted by "
                "hand); writing would erase them, so nothing was written. Press 'New object' "
                f"for a free id ({self.max_id() + 1}) or choose a new output layer"
            )
        self.ours.update(new)

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
        self.claim([object_id])
        current = np.asarray(self.layer.data[plane]).astype(dtype, copy=False)  # (H, W)
        try:
            ys, xs, values, result = merge_mask(current, mask, object_id)
        except ValueError as exc:
            raise ValueError(f"Labels layer {self.layer.name!r}: {exc}") from None
        self._setitem(plane, ys, xs, values)
        return result

    def clear(self, plane: Sequence[int], object_id: int) -> int:
        """Remove the object from ``plane`` (one undo step); returns the pixels cleared.

        Like :meth:`write`, refuses an id whose pixels napari-sam2 did not write.
        """
        plane = tuple(int(i) for i in plane)
        dtype = self._check(plane, object_id)
        self.claim([object_id])
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


def _present(data: Any, ids: Sequence[int]) -> list[int]:
    """Which of ``ids`` occur in ``data``, read one leading index at a time (bounded memory,
    and lazy arrays are loaded piece by piece)."""
    wanted = np.asarray(ids, dtype=np.int64)
    found: set[int] = set()
    pieces = (data[i] for i in range(data.shape[0])) if data.ndim > 2 else iter([data])
    for piece in pieces:
        values = np.asarray(piece)
        hits = values[np.isin(values, wanted)]
        found.update(int(v) for v in np.unique(hits))
        if len(found) == len(wanted):
            break
    return sorted(found)
