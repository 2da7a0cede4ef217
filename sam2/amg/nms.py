"""Greedy non-maximum suppression on XYXY boxes, in plain torch (no torchvision).

The results are torchvision's, index for index, which the parity tests rely on:

* boxes are visited by score, highest first, equal scores in index order (a stable sort);
  a visited box that is still alive is kept and removes every later box whose IoU with it is
  greater than ``iou_threshold``. IoU is ``inter / (area_i + area_j - inter)`` in the boxes'
  dtype and is compared with the threshold in float64, as torchvision's C++ kernel does.
* ``batched_nms`` keeps categories apart by shifting each category's boxes beyond the others;
  above torchvision's size switch (more than 4000 coordinates on the CPU, 100 000 elsewhere)
  it runs one NMS per category instead and orders the result with torch's default (unstable)
  sort by score, so even ties come out in the order torchvision gives.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

_ROWS_PER_BLOCK = 512  # rows of the pairwise IoU matrix held at once


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Indices (int64) of the kept boxes, by decreasing score. ``boxes`` (N, 4) XYXY floats."""
    _check(boxes, scores)
    n = boxes.shape[0]
    if n == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    order = torch.argsort(scores, descending=True, stable=True)
    ordered = boxes[order]
    area = (ordered[:, 2] - ordered[:, 0]) * (ordered[:, 3] - ordered[:, 1])
    removed = np.zeros(n, dtype=bool)
    keep: list[int] = []
    for start in range(0, n, _ROWS_PER_BLOCK):
        stop = min(start + _ROWS_PER_BLOCK, n)
        if removed[start:stop].all():
            continue
        overlaps = _overlaps(ordered, area, start, stop, iou_threshold)  # (rows, N - start)
        for i in range(start, stop):
            if removed[i]:
                continue
            keep.append(i)
            removed[start:] |= overlaps[i - start]
    kept = torch.as_tensor(keep, dtype=torch.int64, device=boxes.device)
    return order[kept]


def _overlaps(
    boxes: Tensor, area: Tensor, start: int, stop: int, iou_threshold: float
) -> np.ndarray:
    """(stop - start, N - start) bool: IoU of rows ``start:stop`` with boxes ``start:`` > thr."""
    rows, cols = boxes[start:stop, None, :], boxes[None, start:, :]
    lt = torch.maximum(rows[..., :2], cols[..., :2])
    rb = torch.minimum(rows[..., 2:], cols[..., 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    iou = inter / (area[start:stop, None] + area[None, start:] - inter)
    return (iou.double() > iou_threshold).cpu().numpy()


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """:func:`nms` within each category ``idxs`` (N,); indices by decreasing score."""
    _check(boxes, scores)
    if idxs.shape != scores.shape:
        raise ValueError(f"idxs must be (N,) like scores, got {tuple(idxs.shape)}")
    if boxes.shape[0] == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    per_category_above = 4000 if boxes.device.type == "cpu" else 100_000
    if boxes.numel() > per_category_above:
        return _nms_per_category(boxes, scores, idxs, iou_threshold)
    shift = idxs.to(boxes) * (boxes.max() + torch.tensor(1).to(boxes))
    return nms(boxes + shift[:, None], scores, iou_threshold)


def _nms_per_category(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    keep = torch.zeros_like(scores, dtype=torch.bool)
    for category in torch.unique(idxs):
        members = torch.where(idxs == category)[0]
        keep[members[nms(boxes[members], scores[members], iou_threshold)]] = True
    kept = torch.where(keep)[0]
    return kept[scores[kept].sort(descending=True)[1]]


def _check(boxes: Tensor, scores: Tensor) -> None:
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be (N, 4) XYXY, got shape {tuple(boxes.shape)}")
    if scores.shape != (boxes.shape[0],):
        raise ValueError(
            f"scores must be (N,) with N = {boxes.shape[0]} boxes, got {tuple(scores.shape)}"
        )
