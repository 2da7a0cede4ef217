"""Stability score: how little a mask changes when its binarisation threshold moves.

With logits ``L``, threshold ``t`` and offset ``o`` it is ``|L > t + o| / |L > t - o|``, the
IoU of the two binarised masks (one is always inside the other). A mask with no pixel above
``t - o`` scores NaN, which fails every ``>=`` filter.
"""

from __future__ import annotations

import torch
from torch import Tensor


def stability_score(logits: Tensor, mask_threshold: float, offset: float) -> Tensor:
    """(..., H, W) float logits -> (...,) float32 stability scores.

    Pixel counts are exact integers, divided in float32 as the reference does.
    """
    inner = _count_above(logits, mask_threshold + offset)
    outer = _count_above(logits, mask_threshold - offset)
    return inner / outer


def _count_above(logits: Tensor, level: float) -> Tensor:
    """(...,) int32 number of pixels above ``level``; row counts in int16 where they fit, which
    sums about three times faster than a bool sum on the CPU."""
    above = logits > level
    row_dtype = torch.int16 if logits.shape[-1] <= torch.iinfo(torch.int16).max else torch.int32
    return above.sum(dim=-1, dtype=row_dtype).sum(dim=-1, dtype=torch.int32)
