"""The reference's ``sam2.utils`` helpers on given inputs, for our reference-path adapters."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sam2.utils import amg, misc
from sam2.utils.transforms import SAM2Transforms


def components_and_holes(inputs: dict[str, np.ndarray], max_area: float) -> dict[str, np.ndarray]:
    """``get_connected_components(mask)`` and ``fill_holes_in_mask_scores(scores, max_area)``."""
    scores = torch.from_numpy(inputs["scores"])  # (N, 1, H, W)
    labels, counts = misc.get_connected_components(scores > 0)
    filled = misc.fill_holes_in_mask_scores(scores, max_area)
    return {"labels": labels.numpy(), "counts": counts.numpy(), "filled": filled.numpy()}


def amg_helpers(inputs: dict[str, np.ndarray], crop_box: list[int]) -> dict[str, np.ndarray]:
    """RLE round trip, boxes, uncrop_* and box_xyxy_to_xywh on given masks/boxes/points."""
    masks = torch.from_numpy(inputs["masks"])  # (N, H, W) bool
    rles = amg.mask_to_rle_pytorch(masks)
    h, w = masks.shape[-2:]
    out: dict[str, Any] = {
        "rle_counts": np.concatenate([np.asarray(r["counts"], dtype=np.int64) for r in rles]),
        "rle_lengths": np.array([len(r["counts"]) for r in rles]),
        "decoded": np.stack([amg.rle_to_mask(r) for r in rles]),
        "areas": np.array([amg.area_from_rle(r) for r in rles]),
        "boxes": amg.batched_mask_to_box(masks).numpy(),
        "uncropped_boxes": amg.uncrop_boxes_xyxy(torch.from_numpy(inputs["boxes"]), crop_box),
        "uncropped_points": amg.uncrop_points(torch.from_numpy(inputs["points"]), crop_box),
        "xywh": amg.box_xyxy_to_xywh(torch.from_numpy(inputs["boxes"][0])),
    }
    x0, y0, x1, y1 = crop_box
    crop_masks = masks[:, : y1 - y0, : x1 - x0]
    out["uncropped_masks"] = amg.uncrop_masks(crop_masks, crop_box, h + y0, w + x0)
    return {k: np.asarray(v) for k, v in out.items()}


def transforms(
    inputs: dict[str, np.ndarray],
    resolution: int,
    mask_threshold: float,
    max_hole_area: float,
    max_sprinkle_area: float,
) -> dict[str, np.ndarray]:
    """Every SAM2Transforms method on an image, points, boxes and low-res logits."""
    t = SAM2Transforms(resolution, mask_threshold, max_hole_area, max_sprinkle_area)
    image = inputs["image"]
    hw = image.shape[:2]
    coords, boxes = torch.from_numpy(inputs["coords"]), torch.from_numpy(inputs["boxes"])
    return {
        "image": t(image).numpy(),
        "batch": t.forward_batch([image, image[::-1].copy()]).numpy(),
        "coords_pixels": t.transform_coords(coords, normalize=True, orig_hw=hw).numpy(),
        "coords_unit": t.transform_coords(coords / 100.0).numpy(),
        "boxes": t.transform_boxes(boxes, normalize=True, orig_hw=hw).numpy(),
        "masks": t.postprocess_masks(torch.from_numpy(inputs["logits"]), hw).numpy(),
    }
