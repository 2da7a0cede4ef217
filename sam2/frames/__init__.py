"""Lazy, normalised video frames for SAM 2's video predictor.

The reference loads a whole video into memory at ``init_state`` (12 MB per frame at 1024²).
Here a :class:`FrameSource` preprocesses one frame when the predictor asks for it, keeps a few
in a small LRU cache and reads the next ones on a background thread in the direction of play,
so a long time-lapse or z-stack never sits in memory at model resolution.

Intensity scaling is decided once per stack (see :mod:`sam2.intensity`), so contrast does not
flicker between frames; arrays are resized like the image predictor does
(:func:`sam2.transforms.preprocess`), JPEG folders exactly like the reference video predictor.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import Tensor

from sam2.frames.arrays import ArrayFrameSource, TiffStackSource
from sam2.frames.base import FrameSource, LazyFrames
from sam2.frames.jpeg import JpegFolderSource

__all__ = [
    "ArrayFrameSource",
    "FrameSource",
    "JpegFolderSource",
    "LazyFrames",
    "TiffStackSource",
    "open_frames",
]

TIFF_SUFFIXES = (".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


def open_frames(video: Any, image_size: int, **kwargs: Any) -> FrameSource:
    """A :class:`FrameSource` for a JPEG folder, a TIFF stack, an array or an existing source.

    ``kwargs`` go to the source's constructor (e.g. ``channel``, ``contrast_limits``,
    ``cache_size``).
    """
    if isinstance(video, FrameSource) and not hasattr(video, "__array__"):
        if kwargs:
            raise TypeError(f"options {sorted(kwargs)} cannot be applied to an open FrameSource")
        size = getattr(video, "image_size", image_size)
        if size != image_size:
            raise ValueError(
                f"the frame source makes {size}² inputs but the model needs {image_size}²"
            )
        return video
    if isinstance(video, bytes | bytearray):
        raise TypeError(
            "video bytes are not supported; decode them to a JPEG folder or an array first"
        )
    if isinstance(video, str | os.PathLike):
        path = Path(video)
        if path.is_dir():
            return JpegFolderSource(path, image_size, **kwargs)
        suffix = path.suffix.lower()
        if suffix in VIDEO_SUFFIXES:
            raise ValueError(
                f"{path.name}: {suffix} videos need decoding first, to a JPEG folder (e.g. "
                f"`ffmpeg -i {path.name} -q:v 2 -start_number 0 out/%05d.jpg`) or to an array"
            )
        if not path.exists():
            raise FileNotFoundError(f"no such file or folder: {path}")
        if suffix in TIFF_SUFFIXES:
            return TiffStackSource(path, image_size, **kwargs)
        raise ValueError(
            f"unsupported file type {suffix or '(none)'!r} for {path.name}: expected a folder of "
            "JPEG frames, a .tif/.tiff stack or an array"
        )
    if isinstance(video, list | tuple):
        raise TypeError("got a list of frames; stack them into one array first (np.stack)")
    if isinstance(video, Tensor) or all(hasattr(video, a) for a in ("shape", "dtype")):
        return ArrayFrameSource(video, image_size, **kwargs)
    raise TypeError(
        f"cannot read frames from {type(video).__name__}: expected a JPEG folder, a .tif/.tiff "
        "path, an array (numpy, dask, zarr, memmap) or a FrameSource"
    )
