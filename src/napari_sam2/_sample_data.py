"""npe2 sample-data contributions: synthetic 16-bit cells, so every workflow works offline."""

from __future__ import annotations

from typing import Any

from sam2.synthetic import make_image, make_timelapse, make_zstack

LayerDataTuple = tuple[Any, dict[str, Any], str]


def sample_image() -> list[LayerDataTuple]:
    """A 2D field of cells."""
    image, _ = make_image()
    return [(image, {"name": "cells 2D"}, "image")]


def sample_zstack() -> list[LayerDataTuple]:
    """A z-stack of nuclei; z is the axis SAM 2 tracks through."""
    image, _ = make_zstack()
    return [(image, {"name": "nuclei z-stack", "axis_labels": ("z", "y", "x")}, "image")]


def sample_timelapse() -> list[LayerDataTuple]:
    """A time-lapse of moving, dividing cells."""
    data = make_timelapse()
    return [(data.image, {"name": "cells time-lapse", "axis_labels": ("t", "y", "x")}, "image")]
