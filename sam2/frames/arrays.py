"""Frames from arrays (numpy, memmap, dask, zarr) and TIFF stacks, normalised once per stack."""

from __future__ import annotations

import math
import operator
import os
import threading
import weakref
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from sam2.frames.base import LazyFrames
from sam2.intensity import ContrastLimits, choose_limits
from sam2.transforms import preprocess

LIMIT_SAMPLE_FRAMES = 8  # frames read to choose a stack's intensity limits
LIMIT_SAMPLE_VALUES = 1 << 22  # values kept from them (percentiles of a strided subsample)


def _layout(
    shape: tuple[int, ...], channel_axis: int | None, channel: int | None
) -> tuple[int | None, int | None]:
    """(channel axis, channel) for a stack's shape; channel None means RGB(A) along the axis."""
    ndim = len(shape)
    if ndim < 3:
        raise ValueError(
            f"expected a stack of frames (T or Z first), got a {ndim}D array of shape {shape}; "
            "for a single image use the image predictor, or add an axis (array[None])"
        )
    if ndim > 4:
        raise ValueError(
            f"expected (T, H, W), (T, H, W, 3) or (T, H, W, C) frames, got shape {shape}; "
            "select one position of the extra axes first (e.g. array[:, z])"
        )
    if channel_axis is None and (channel is not None or ndim == 4):
        channel_axis = -1
    if channel_axis is None:
        return None, None
    if ndim == 3:
        raise ValueError(f"channel_axis={channel_axis} given but frames of shape {shape} are 2D")
    axis = operator.index(channel_axis)
    if not -ndim <= axis < ndim:
        raise ValueError(f"channel_axis {channel_axis} is out of range for shape {shape}")
    axis %= ndim
    if axis == 0:
        raise ValueError("channel_axis cannot be 0: axis 0 holds the frames (T or Z)")
    n = shape[axis]
    if channel is None:
        if n in (3, 4):
            return axis, None
        raise ValueError(
            f"frames of shape {shape} have {n} channels on axis {axis}; pick one with "
            f"channel=0..{n - 1}, or name the channel axis with channel_axis=... (RGB needs 3 "
            "channels)"
        )
    if not 0 <= operator.index(channel) < n:
        raise ValueError(f"channel {channel} is out of range: axis {axis} has {n} channels")
    return axis, operator.index(channel)


class ArrayFrameSource(LazyFrames):
    """Frames along axis 0 of a numpy/memmap/dask/zarr array, normalised once per stack.

    ``channel_axis``/``channel`` pick one channel of multichannel frames (shown as gray); a
    4D array with 3 (or 4, alpha dropped) channels and no ``channel`` is RGB. Without
    ``contrast_limits`` the limits come from :func:`sam2.intensity.choose_limits` on a sample of
    up to 8 evenly spaced frames, so a dark frame stays dark.
    """

    def __init__(
        self,
        array: Any,
        image_size: int,
        *,
        channel_axis: int | None = None,
        channel: int | None = None,
        contrast_limits: ContrastLimits | None = None,
        cache_size: int = 8,
        prefetch: int = 2,
    ) -> None:
        if isinstance(array, Tensor):
            array = array.detach().cpu().numpy()
        if not all(hasattr(array, a) for a in ("shape", "dtype", "__getitem__")):
            raise TypeError(
                f"expected an array-like with shape, dtype and indexing, got {type(array).__name__}"
            )
        shape = tuple(int(n) for n in array.shape)
        try:
            self.dtype = np.dtype(array.dtype)
        except TypeError:
            raise TypeError(f"unsupported array dtype {array.dtype}") from None
        if not (self.dtype == np.bool_ or self.dtype.kind in "uif"):
            raise TypeError(f"unsupported frame dtype {self.dtype}: need integers, floats or bool")
        self._array = array
        self._axis, self._channel = _layout(shape, channel_axis, channel)
        hw = [n for i, n in enumerate(shape) if i not in (0, self._axis)]
        self._orig_hw = (hw[0], hw[1])
        if shape[0] == 0 or 0 in self._orig_hw:
            raise ValueError(f"the stack is empty (shape {shape})")
        super().__init__(shape[0], image_size, cache_size, prefetch)
        self._io_lock = threading.Lock()  # readers (h5py, tiff files) may not be thread-safe
        self.contrast_limits = self._stack_limits(contrast_limits)

    @property
    def orig_hw(self) -> tuple[int, int]:
        return self._orig_hw

    def _read(self, index: int) -> np.ndarray:
        """(H, W, 1|3) frame as stored (bool as uint8 0/255); only the needed channels."""
        key: list[Any] = [index]
        if self._axis is not None:
            key += [slice(None)] * (self._axis - 1)
            key.append(self._channel if self._channel is not None else slice(0, 3))
        with self._io_lock:
            frame = np.asarray(self._array[tuple(key)])
        if self._axis is None or self._channel is not None:
            frame = frame[..., None]
        elif self._axis != 3:
            frame = np.moveaxis(frame, self._axis - 1, -1)
        if frame.dtype == np.bool_:
            frame = frame.astype(np.uint8) * 255
        return frame

    def _stack_limits(self, given: ContrastLimits | None) -> ContrastLimits:
        """Limits for every frame; floats within [0, 1] get (0, 1), i.e. used as they are."""
        if given is not None:
            limits = choose_limits(np.empty(0, np.float32), given)
        elif self.dtype in (np.uint8, np.bool_):
            limits = (0.0, 255.0)
        else:
            count = min(LIMIT_SAMPLE_FRAMES, len(self))
            picks = np.unique(np.linspace(0, len(self) - 1, count).round().astype(int))
            h, w = self._orig_hw
            step = max(1, math.ceil(len(picks) * h * w / LIMIT_SAMPLE_VALUES))
            sample = np.concatenate([self._read(int(i)).ravel()[::step] for i in picks])
            limits = choose_limits(sample)
        return (0.0, 1.0) if limits is None else limits

    def _load(self, index: int) -> np.ndarray:
        return self._read(index)

    def _to_input(self, raw: np.ndarray) -> Tensor:
        # (H, W, 1|3) -> (3, S, S); explicit limits keep preprocess from deciding per frame
        return preprocess(raw, self.image_size, self.contrast_limits)


def _open_tiff(path: Path) -> tuple[Any, list[Any]]:
    """A lazy array of the first series and the handles to close with it."""
    import tifffile

    try:
        return tifffile.memmap(path, mode="r"), []  # uncompressed, contiguous: no decoding
    except (ValueError, OSError):
        pass
    try:
        import zarr
    except ImportError:
        pass
    else:
        store = tifffile.imread(path, aszarr=True)
        array = zarr.open(store, mode="r")
        if not hasattr(array, "shape"):  # a multiscale group: its full-resolution level
            array = array["0"]
        return array, [store]
    with tifffile.TiffFile(path) as tif:  # decode once into a temporary file, not into RAM
        return tif.series[0].asarray(out="memmap"), []


def _close_all(handles: list[Any]) -> None:
    for handle in handles:
        handle.close()


class TiffStackSource(ArrayFrameSource):
    """A TIFF stack read lazily: memory-mapped when uncompressed, else page by page via zarr."""

    def __init__(self, path: str | os.PathLike[str], image_size: int, **kwargs: Any) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no such TIFF file: {self.path}")
        array, handles = _open_tiff(self.path)
        self._close_handles = weakref.finalize(self, _close_all, handles)  # even if never closed
        try:
            super().__init__(array, image_size, **kwargs)
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        self._close_handles()
        self._array = None
