"""Boxes around masks and the box tests of the automatic mask generator.

Boxes are XYXY. Boxes *of masks* are inclusive: ``x1`` is the last column the mask covers, so a
one-pixel mask at (x, y) has the box ``[x, y, x, y]`` and an empty mask ``[0, 0, 0, 0]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def masks_to_boxes(masks: Tensor) -> Tensor:
    """(..., H, W) boolean masks -> (..., 4) int64 inclusive XYXY boxes, zeros for empty masks."""
    if masks.numel() == 0:
        return torch.zeros(*masks.shape[:-2], 4, dtype=torch.int64, device=masks.device)
    return _boxes(masks.any(dim=-1), masks.any(dim=-2))


def logits_to_boxes(logits: Tensor, threshold: float) -> Tensor:
    """:func:`masks_to_boxes` of ``logits > threshold`` (finite logits) without forming the
    masks: a row holds a mask pixel exactly when its maximum is above the threshold."""
    if logits.numel() == 0:
        return torch.zeros(*logits.shape[:-2], 4, dtype=torch.int64, device=logits.device)
    return _boxes(logits.amax(dim=-1) > threshold, logits.amax(dim=-2) > threshold)


def _boxes(rows: Tensor, cols: Tensor) -> Tensor:
    """Boxes from which rows (..., H) and columns (..., W) hold mask pixels."""
    y0, y1 = _first_last(rows)
    x0, x1 = _first_last(cols)
    boxes = torch.stack([x0, y0, x1, y1], dim=-1)
    empty = ~rows.any(dim=-1)
    return boxes.masked_fill(empty.unsqueeze(-1), 0)


def _first_last(hits: Tensor) -> tuple[Tensor, Tensor]:
    """Index of the first and of the last True along the last axis (0 where there is none)."""
    as_int = hits.to(torch.uint8)
    first = as_int.argmax(dim=-1)
    last = hits.shape[-1] - 1 - as_int.flip(-1).argmax(dim=-1)
    return first, last


def box_xyxy_to_xywh(boxes: Tensor) -> Tensor:
    """(..., 4) XYXY -> XYWH with ``w = x1 - x0``, ``h = y1 - y0`` (as the reference records)."""
    x0, y0, x1, y1 = boxes.unbind(-1)
    return torch.stack([x0, y0, x1 - x0, y1 - y0], dim=-1)


def box_area(boxes: Tensor) -> Tensor:
    """(N, 4) XYXY -> (N,) ``(x1 - x0) * (y1 - y0)`` in the boxes' dtype."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def is_box_near_crop_edge(
    boxes: Tensor, crop_box: Sequence[int], orig_box: Sequence[int], atol: float = 20.0
) -> Tensor:
    """(N,) True for mask boxes (crop pixels) within ``atol`` of a crop edge that is not also
    an image edge: such masks are probably cut off by the crop and are better found elsewhere.

    Each box coordinate is compared with the same coordinate of the crop (x0 with x0, ...).
    """
    x0, y0 = crop_box[0], crop_box[1]
    offset = torch.tensor([x0, y0, x0, y0], device=boxes.device)
    shifted = (boxes + offset).float()
    crop = torch.as_tensor(crop_box, dtype=torch.float32, device=boxes.device)
    image = torch.as_tensor(orig_box, dtype=torch.float32, device=boxes.device)
    near_crop = torch.isclose(shifted, crop[None], atol=atol, rtol=0.0)
    near_image = torch.isclose(shifted, image[None], atol=atol, rtol=0.0)
    return (near_crop & ~near_image).any(dim=1)
