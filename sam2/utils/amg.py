"""Reference-compatible ``sam2.utils.amg``: the mask generator's helpers under their old names.

Most names are our :mod:`sam2.amg` functions themselves; the rest adapt argument forms
(batched tensors in, lists out) to the reference's. Not provided: ``MaskData`` (our generator
keeps typed :class:`sam2.amg.candidates.Candidates` instead of a dict of arrays) and
``batch_iterator``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sam2.amg import regions
from sam2.amg.boxes import box_xyxy_to_xywh, is_box_near_crop_edge, masks_to_boxes
from sam2.amg.grids import build_all_layer_point_grids, build_point_grid, generate_crop_boxes
from sam2.amg.rle import area_from_rle, coco_encode_rle, mask_to_rle, rle_to_mask
from sam2.amg.stability import stability_score as calculate_stability_score

__all__ = [
    "area_from_rle",
    "batched_mask_to_box",
    "box_xyxy_to_xywh",
    "build_all_layer_point_grids",
    "build_point_grid",
    "calculate_stability_score",
    "coco_encode_rle",
    "generate_crop_boxes",
    "is_box_near_crop_edge",
    "mask_to_rle_pytorch",
    "remove_small_regions",
    "rle_to_mask",
    "uncrop_boxes_xyxy",
    "uncrop_masks",
    "uncrop_points",
]


def mask_to_rle_pytorch(tensor: Tensor) -> list[dict[str, Any]]:
    """(B, H, W) boolean masks -> one uncompressed COCO RLE per mask."""
    return [mask_to_rle(mask) for mask in tensor.bool().cpu().numpy()]


def batched_mask_to_box(masks: Tensor) -> Tensor:
    """(..., H, W) boolean masks -> (..., 4) inclusive XYXY boxes, [0, 0, 0, 0] if empty."""
    if masks.numel() == 0:  # the reference gives float zeros here
        return torch.zeros(*masks.shape[:-2], 4, device=masks.device)
    return masks_to_boxes(masks)


def remove_small_regions(
    mask: np.ndarray, area_thresh: float, mode: str
) -> tuple[np.ndarray, bool]:
    """One (H, W) mask without holes (``mode="holes"``) or islands (``"islands"``) smaller
    than ``area_thresh`` pixels, and whether anything changed."""
    cleaned, changed = regions.remove_small_regions(
        torch.from_numpy(np.asarray(mask, dtype=bool))[None],
        area_thresh,
        mode,  # type: ignore[arg-type]
    )
    return cleaned[0].numpy(), bool(changed[0])


def _offset(crop_box: Sequence[int], values: Tensor, per_point: int) -> Tensor:
    x0, y0 = int(crop_box[0]), int(crop_box[1])
    offset = torch.tensor([x0, y0] * per_point, device=values.device)
    return values + offset  # broadcasts over any leading dims


def uncrop_boxes_xyxy(boxes: Tensor, crop_box: Sequence[int]) -> Tensor:
    """(..., 4) XYXY boxes in crop pixels -> image pixels."""
    return _offset(crop_box, boxes, 2)


def uncrop_points(points: Tensor, crop_box: Sequence[int]) -> Tensor:
    """(..., 2) (x, y) points in crop pixels -> image pixels."""
    return _offset(crop_box, points, 1)


def uncrop_masks(masks: Tensor, crop_box: Sequence[int], orig_h: int, orig_w: int) -> Tensor:
    """(..., h, w) masks of a crop -> (..., orig_h, orig_w), zero outside the crop."""
    x0, y0, x1, y1 = (int(v) for v in crop_box)
    if (x0, y0, x1, y1) == (0, 0, orig_w, orig_h):
        return masks
    return F.pad(masks, (x0, orig_w - x1, y0, orig_h - y1), value=0)
