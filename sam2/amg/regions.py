"""Removing small holes and islands from full-resolution binary masks (8-connectivity).

This is the optional clean-up that ``SAM2AutomaticMaskGenerator.postprocess_small_regions``
offers after ``generate`` (:func:`clean_records`); ``min_mask_region_area`` itself acts
earlier, on the low-res logits, through the image predictor. The rules are those of the
OpenCV-based reference:

* holes: every background component smaller than ``min_area`` is filled, including pieces of
  the outer background cut off by the mask;
* islands: every foreground component smaller than ``min_area`` is removed, except that when
  all of them are small the largest one stays. Among equally large components the one OpenCV
  labels first stays: the one reached first when the image is scanned in 2×2 blocks, block
  rows top to bottom, blocks left to right;
* a mask counts as changed if either step found a small component.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from sam2.amg.boxes import box_xyxy_to_xywh, masks_to_boxes
from sam2.amg.nms import batched_nms
from sam2.amg.rle import coco_encode_rle, mask_to_rle, require_pycocotools, rle_to_mask
from sam2.postprocess import connected_components

RegionMode = Literal["holes", "islands"]


def remove_small_regions(masks: Tensor, min_area: float, mode: RegionMode) -> tuple[Tensor, Tensor]:
    """(N, H, W) bool masks -> (cleaned masks, (N,) bool "changed")."""
    if mode not in ("holes", "islands"):
        raise ValueError(f"mode must be 'holes' or 'islands', got {mode!r}")
    if masks.ndim != 3:
        raise ValueError(f"expected (N, H, W) masks, got shape {tuple(masks.shape)}")
    masks = masks.bool()
    if masks.shape[0] == 0:
        return masks, torch.zeros(0, dtype=torch.bool, device=masks.device)
    region = ~masks if mode == "holes" else masks
    labels, areas = connected_components(region[:, None])
    labels, areas = labels[:, 0], areas[:, 0]  # (N, H, W)
    small = (labels > 0) & (areas < min_area)
    changed = small.flatten(1).any(dim=1)
    if mode == "holes":
        return masks | small, changed
    kept = masks & ~small
    all_small = changed & ~kept.flatten(1).any(dim=1)
    for n in torch.nonzero(all_small).flatten().tolist():
        kept[n] = _largest_component(labels[n], areas[n])
    return kept, changed


def _largest_component(labels: Tensor, areas: Tensor) -> Tensor:
    """(H, W) mask of the largest component; ties go to the first in 2×2-block scan order."""
    h, w = labels.shape
    rows = torch.arange(h, device=labels.device)[:, None]
    cols = torch.arange(w, device=labels.device)[None, :]
    block_order = (rows // 2) * ((w + 1) // 2) + cols // 2  # (H, W) rank of each pixel's block
    largest = (labels > 0) & (areas == areas.max())
    first = torch.where(largest, block_order, block_order.max() + 1).flatten().argmin()
    return labels == labels.flatten()[first]


def clean_records(
    records: list[dict[str, Any]], min_area: float, nms_thresh: float
) -> list[dict[str, Any]]:
    """Mask records (any ``output_mode``) with holes, then islands, under ``min_area`` removed.

    Masks that changed get a new box, and box NMS (``nms_thresh``) then prefers masks that
    needed no change. Returns new records in NMS order; changed ones have ``segmentation``
    (in the input's format), ``area`` and ``bbox`` updated.
    """
    if not records:
        return []
    masks = torch.from_numpy(np.stack([_decode(r["segmentation"]) for r in records]))
    masks, holes_changed = remove_small_regions(masks, min_area, "holes")
    masks, islands_changed = remove_small_regions(masks, min_area, "islands")
    unchanged = ~(holes_changed | islands_changed)
    boxes = masks_to_boxes(masks)
    categories = torch.zeros(len(records))
    keep = batched_nms(boxes.float(), unchanged.float(), categories, nms_thresh)
    out = []
    for i in keep.tolist():
        record = dict(records[i])
        if not unchanged[i]:
            mask = masks[i].numpy()
            record["segmentation"] = _encode_like(record["segmentation"], mask)
            record["area"] = int(mask.sum())
            record["bbox"] = box_xyxy_to_xywh(boxes[i].float()).tolist()
        out.append(record)
    return out


def _decode(segmentation: Any) -> np.ndarray:
    """(H, W) bool mask of a record's ``segmentation`` in any output mode."""
    if isinstance(segmentation, np.ndarray):
        return segmentation.astype(bool, copy=False)
    if isinstance(segmentation.get("counts"), list):
        return rle_to_mask(segmentation)
    require_pycocotools()
    from pycocotools import mask as mask_utils

    return mask_utils.decode(segmentation).astype(bool)


def _encode_like(segmentation: Any, mask: np.ndarray) -> Any:
    if isinstance(segmentation, np.ndarray):
        return mask
    rle = mask_to_rle(mask)
    return rle if isinstance(segmentation.get("counts"), list) else coco_encode_rle(rle)
