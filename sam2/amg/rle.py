"""Run-length encoding of masks in the COCO layout, and COCO's compressed form when available.

An uncompressed RLE is ``{"size": [h, w], "counts": [...]}``: run lengths over the mask read
column by column (Fortran order), alternating background and foreground and starting with
background, so a mask whose first pixel is set begins with a 0 run. An empty mask is
``[h * w]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Rle = dict[str, Any]

PYCOCOTOOLS_HINT = (
    "output_mode='coco_rle' needs pycocotools, which is not installed; install it with "
    "`pip install pycocotools`, or use output_mode='uncompressed_rle' or 'binary_mask'"
)


def mask_to_rle(mask: np.ndarray) -> Rle:
    """(H, W) boolean mask -> uncompressed RLE."""
    if mask.ndim != 2:
        raise ValueError(f"expected one (H, W) mask, got shape {mask.shape}")
    h, w = mask.shape
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    if flat.size == 0:
        return {"size": [h, w], "counts": []}
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], edges, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts.insert(0, 0)
    return {"size": [h, w], "counts": counts}


def rle_to_mask(rle: Rle) -> np.ndarray:
    """Uncompressed RLE -> (H, W) boolean mask (C order)."""
    h, w = (int(v) for v in rle["size"])
    counts = np.asarray(rle["counts"], dtype=np.int64)
    if (counts < 0).any() or int(counts.sum()) != h * w:
        raise ValueError(
            f"RLE counts must be non-negative and sum to h * w = {h * w}, "
            f"got a sum of {int(counts.sum())}"
        )
    values = np.arange(counts.size) % 2 == 1  # runs alternate background, foreground
    flat = np.repeat(values, counts)
    return flat.reshape(w, h).T


def area_from_rle(rle: Rle) -> int:
    """Number of foreground pixels: the sum of the odd-indexed runs."""
    return int(sum(rle["counts"][1::2]))


def coco_encode_rle(rle: Rle) -> Rle:
    """Uncompressed RLE -> pycocotools' compressed RLE, ``counts`` as a str (JSON-ready)."""
    try:
        from pycocotools import mask as mask_utils
    except ImportError as error:
        raise ImportError(PYCOCOTOOLS_HINT) from error
    h, w = rle["size"]
    encoded = mask_utils.frPyObjects(rle, h, w)
    encoded["counts"] = encoded["counts"].decode("utf-8")
    return encoded


def require_pycocotools() -> None:
    """Fail early, before any computation, when ``coco_rle`` output cannot be produced."""
    try:
        import pycocotools.mask  # noqa: F401
    except ImportError as error:
        raise ImportError(PYCOCOTOOLS_HINT) from error
