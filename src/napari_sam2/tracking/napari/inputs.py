"""What a tracking run is given in napari, checked before any worker starts.

:func:`prepare_inputs` turns the widget's choices (an image layer, a seed Labels layer, a seed
frame, the rules) into :class:`TrackingInputs`, or a ValueError whose sentence the widget shows
as a notification. The array checks themselves are the core's
(:func:`napari_sam2.tracking.inputs.check_inputs`), shared with the command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_sam2.axes import layer_array
from napari_sam2.tracking.inputs import check_inputs
from napari_sam2.tracking.params import TrackingParams
from napari_sam2.tracking.proposals import EntryDetector

if TYPE_CHECKING:
    from napari.layers import Image, Labels

__all__ = ["TrackingInputs", "check_image", "prepare_inputs"]


@dataclass(frozen=True)
class TrackingInputs:
    """Everything a run needs, checked: the (T, Y, X) frames and the seed frame's labels."""

    image: Image
    frames: Any  # (T, Y, X) array behind the image layer (numpy, dask, zarr)
    seed: np.ndarray  # (Y, X) labels of the seed frame
    seed_frame: int
    params: TrackingParams
    entries: EntryDetector
    contrast_limits: tuple[float, float]
    fast: bool = False  # track each cell in a window around where it was


def check_image(image: Image | None) -> Any:
    """The (T, Y, X) array of a time-lapse image layer, or a ValueError saying what to open."""
    if image is None:
        raise ValueError(
            "Open a time-lapse first (File > Open Sample > napari-sam2 has one) and choose it "
            "as the image."
        )
    if image.rgb:
        raise ValueError(
            f"{image.name!r} is an RGB image; cell tracking needs single-channel frames "
            "(split the channels with right-click > Split RGB and track one)."
        )
    shape = tuple(layer_array(image).shape)
    if len(shape) == 2:
        raise ValueError(
            f"{image.name!r} is a single 2D image; cell tracking needs a (T, Y, X) time-lapse."
        )
    if len(shape) > 3:
        raise ValueError(
            f"Cell tracking is 2D+t for now: {image.name!r} has shape {shape} ({len(shape)} "
            "axes). Track one z-plane or channel as its own (T, Y, X) layer, e.g. from the "
            f"napari console: viewer.add_image(viewer.layers[{image.name!r}].data[:, 0])"
        )
    return layer_array(image)


def prepare_inputs(
    image: Image | None,
    seed_layer: Labels | None,
    seed_frame: int,
    params: TrackingParams,
    entries: EntryDetector,
    fast: bool = False,
) -> TrackingInputs:
    """Check the layers before anything slow starts; ValueErrors are meant for the user."""
    frames = check_image(image)
    assert image is not None  # checked above
    if seed_layer is None:
        raise ValueError(
            "Choose the Labels layer with the seed cells (paint or load one label per cell on "
            "the seed frame)."
        )
    seeds = seed_layer.data[0] if seed_layer.multiscale else seed_layer.data
    try:
        _, seed = check_inputs(frames, seeds, seed_frame)
    except ValueError as exc:
        raise ValueError(f"Seed layer {seed_layer.name!r}: {exc}") from exc
    low, high = image.contrast_limits
    return TrackingInputs(
        image, frames, seed, int(seed_frame), params, entries, (float(low), float(high)), fast
    )
