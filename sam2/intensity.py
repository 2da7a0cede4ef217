"""Bringing microscopy intensities into the [0, 1] RGB range SAM 2 was trained on.

Rules (the same for images, z-stacks and time-lapses; decided once per stack, never per frame):

* ``uint8``: divided by 255, exactly as the reference does.
* Explicit ``contrast_limits=(low, high)``: ``(x - low) / (high - low)``, clipped to [0, 1]
  (the plugin passes the napari layer's contrast limits).
* Any other integer type (12/16-bit cameras) and bool: robust limits, the 0.1 and 99.9
  percentiles of the data (of a sample of frames for stacks), then as above.
* Floats already within [0, 1]: used as they are (the reference's behaviour); other floats get
  robust limits like integers.
"""

from __future__ import annotations

import numpy as np

LOW_PERCENTILE, HIGH_PERCENTILE = 0.1, 99.9
ContrastLimits = tuple[float, float]


def robust_limits(sample: np.ndarray) -> ContrastLimits:
    """Percentile limits of a sample, widened to a non-empty range for flat images."""
    finite = np.asarray(sample, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        raise ValueError("the image holds no finite values (all NaN or infinite)")
    low, high = np.percentile(finite, [LOW_PERCENTILE, HIGH_PERCENTILE])
    if high <= low:
        high = low + 1.0
    return float(low), float(high)


def choose_limits(
    sample: np.ndarray, contrast_limits: ContrastLimits | None = None
) -> ContrastLimits | None:
    """Limits to scale with, or ``None`` to use the data unscaled (floats within [0, 1])."""
    if contrast_limits is not None:
        low, high = (float(v) for v in contrast_limits)
        if not np.isfinite([low, high]).all() or high <= low:
            raise ValueError(
                f"contrast_limits must be finite with low < high, got {contrast_limits}"
            )
        return low, high
    dtype = np.asarray(sample).dtype
    if dtype == np.uint8:
        return (0.0, 255.0)
    if np.issubdtype(dtype, np.floating):
        values = np.asarray(sample)
        if np.isnan(values).all():
            raise ValueError("the image holds no finite values (all NaN)")
        if np.nanmin(values) >= 0.0 and np.nanmax(values) <= 1.0:
            return None
    return robust_limits(sample)


def to_unit_range(image: np.ndarray, limits: ContrastLimits | None) -> np.ndarray:
    """float32 image scaled by ``limits`` (see :func:`choose_limits`) and clipped to [0, 1]."""
    data = np.asarray(image)
    if limits is None:
        out = data.astype(np.float32, copy=False)
    elif limits == (0.0, 255.0) and data.dtype == np.uint8:
        out = data.astype(np.float32) / 255.0
    else:
        low, high = limits
        out = ((data.astype(np.float64) - low) / (high - low)).astype(np.float32)
        out = np.clip(out, 0.0, 1.0)
    if np.isnan(out).any():
        raise ValueError("the image contains NaN values; replace them (e.g. np.nan_to_num) first")
    return out
