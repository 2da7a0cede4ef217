"""Which axis is the stack (T or Z), which 2D plane the viewer shows, and how to read it.

napari keeps the spatial plane in the last two data axes (Y, X), with an optional trailing
channel axis for RGB layers (``layer.rgb``; ``layer.ndim`` does not count it). Every other axis
is a *leading* axis: the stack axis SAM 2 will track through (T or Z), and for 4D data the one
held fixed. A plane is named by its leading indices, e.g. ``(5,)`` for frame 5 of a TYX stack.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from napari.components import Dims
    from napari.layers import Image

__all__ = [
    "TIME_LABELS",
    "Z_LABELS",
    "PlaneIndex",
    "describe_plane",
    "layer_array",
    "plane_index",
    "plane_shape",
    "read_plane",
    "stack_axis",
]

TIME_LABELS = ("t", "time", "frame", "frames")
Z_LABELS = ("z", "depth", "plane", "slice", "planes", "slices")

#: A plane of an image, named by its leading data indices: ``(5,)`` is frame 5 of a TYX stack.
PlaneIndex = tuple[int, ...]


def _check_image(layer: Image) -> None:
    """Refuse layers without a Y/X plane, before any index arithmetic goes wrong."""
    if layer.ndim < 2:
        raise ValueError(
            f"layer {layer.name!r} has {layer.ndim} dimension(s); SAM 2 needs an image with at "
            "least two spatial axes (Y, X)"
        )


def stack_axis(layer: Image) -> int | None:
    """The data axis SAM 2 treats as the video axis, or None for a single 2D image.

    A time axis wins over a z axis (a TZYX time-lapse is tracked through T); without
    recognisable ``axis_labels`` the first leading axis is used.
    """
    _check_image(layer)
    n_leading = layer.ndim - 2
    if n_leading == 0:
        return None
    labels = [str(label).lower() for label in layer.axis_labels[:n_leading]]
    for names in (TIME_LABELS, Z_LABELS):
        for axis, label in enumerate(labels):
            if label in names:
                return axis
    return 0


def axis_name(layer: Image, axis: int) -> str:
    """A short name for a leading axis: its label, or ``axis 0`` when napari made one up."""
    label = str(layer.axis_labels[axis])
    return f"axis {axis}" if label.lstrip("-").isdigit() else label


def describe_plane(layer: Image, plane: PlaneIndex) -> str:
    """``"t=5"``, ``"t=5, z=12"`` or ``"2D"``, for status lines and error messages."""
    if not plane:
        return "2D"
    return ", ".join(f"{axis_name(layer, axis)}={index}" for axis, index in enumerate(plane))


def plane_shape(layer: Image) -> tuple[int, int]:
    """(H, W) of the layer's Y/X plane, in data pixels."""
    _check_image(layer)
    shape = layer_array(layer).shape
    if layer.rgb:
        shape = shape[:-1]
    return int(shape[-2]), int(shape[-1])


def layer_array(layer: Image) -> Any:
    """The full-resolution array behind a layer (level 0 of a multiscale pyramid)."""
    return layer.data[0] if layer.multiscale else layer.data


def plane_index(layer: Image, dims: Dims) -> PlaneIndex:
    """Leading data indices of the plane the viewer shows for ``layer``.

    Raises ValueError when the viewer does not show the layer's Y/X plane (3D view, or axes
    transposed so that a stack axis is on screen) or when the current position lies outside
    the layer, so a click never lands on a plane the user is not looking at.
    """
    _check_image(layer)
    if dims.ndisplay != 2:
        raise ValueError("SAM 2 segments 2D slices: switch the viewer to 2D view (Ctrl+Y)")
    offset = dims.ndim - layer.ndim  # world axes before the layer's first axis
    shown = sorted(axis - offset for axis in dims.displayed)
    if shown != [layer.ndim - 2, layer.ndim - 1]:
        raise ValueError(
            f"the viewer shows axes {tuple(dims.displayed)}, not the Y/X plane of "
            f"{layer.name!r}; use 'Roll dimensions' or 'Transpose' to bring Y and X back on screen"
        )
    position = layer.world_to_data(dims.point)
    shape = layer_array(layer).shape
    index: list[int] = []
    for axis in range(layer.ndim - 2):
        value = round(float(position[axis]))
        if not 0 <= value < shape[axis]:
            raise ValueError(
                f"the current {axis_name(layer, axis)}={value} lies outside {layer.name!r} "
                f"({shape[axis]} planes along that axis); move the slider onto the image"
            )
        index.append(value)
    return tuple(index)


def read_plane(data: Any, plane: Sequence[int], rgb: bool) -> np.ndarray:
    """The (H, W) or (H, W, 3) array at ``plane``, read from numpy, dask or zarr alike.

    An RGBA layer loses its alpha channel: SAM 2 expects RGB.
    """
    image = np.asarray(data[tuple(plane)])
    if rgb:
        image = image[..., :3]
    return image
