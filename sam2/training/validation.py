"""Validation during training: the IoU a user gets from one click at a cell's centre.

The click is the pixel deepest inside the object (as a user clicks), the mask is the
candidate with the highest predicted IoU (what ``SAM2ImagePredictor.predict`` hands out
first), scored at model-input size. Batches are drawn from their own seeded generator, so
every validation sees the same objects and scores are comparable across steps.
"""

from __future__ import annotations

import numpy as np
import torch

from sam2.modeling.sam2_model import SAM2Model
from sam2.training.data import StackDataset
from sam2.training.prompts import center_error_points
from sam2.video.tracker import condition_on_memory

__all__ = ["click_iou"]


@torch.no_grad()
def click_iou(
    model: SAM2Model,
    data: StackDataset,
    batches: int = 8,
    images_per_batch: int = 2,
    objects_per_image: int = 8,
    seed: int = 12345,
) -> float:
    """Mean one-click IoU over the objects of ``batches`` seeded batches of ``data``."""
    was_training = model.training
    model.eval()
    rng = np.random.default_rng(seed)
    scores: list[torch.Tensor] = []
    try:
        for _ in range(batches):
            batch = data.image_batch(rng, images_per_batch, objects_per_image)
            images = batch.images.to(model.device)
            targets = batch.targets.to(model.device)  # (N, 1, S, S)
            feats = model.encode_image(images).select(batch.image_index.to(model.device))
            pix = condition_on_memory(model, feats, None, None)
            coords, labels = center_error_points(targets, None)
            heads = model.decode_masks(
                pix, coords, labels, None, feats.high_res_features, multimask_output=True
            )
            pred = heads.high_res_masks > 0  # (N, 1, S, S): the best by predicted IoU
            inter = (pred & targets).flatten(1).sum(1).float()
            union = (pred | targets).flatten(1).sum(1).float().clamp(min=1)
            scores.append(inter / union)
    finally:
        model.train(was_training)
    return float(torch.cat(scores).mean())
