"""SAM 2's training losses (spec §5): focal + dice on masks, IoU regression, object score.

All functions take N objects with M candidate masks and return sums normalised by
``num_objects`` (the number of objects in the batch, as the release does), so a batch's loss
does not grow with its size. Targets are binary (N, 1, H, W) masks at the prediction's size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class LossWeights:
    """Weights and shapes of the four terms (defaults: the released fine-tuning config)."""

    mask: float = 20.0  # sigmoid focal loss
    dice: float = 1.0
    iou: float = 1.0
    object_score: float = 1.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    iou_use_l1: bool = True  # the released fine-tune config; the loss's own default is MSE
    supervise_all_iou: bool = True  # IoU head trained on all M outputs, not only the best


def sigmoid_focal_loss(
    logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> Tensor:
    """Per-pixel focal loss of logits vs 0/1 targets (same shape); ``alpha < 0``: no weighting.

    ``gamma=0, alpha=-1`` is plain binary cross-entropy (how the object score is trained).
    """
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma if gamma != 0 else ce
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss


def focal_per_mask(logits: Tensor, targets: Tensor, alpha: float, gamma: float) -> Tensor:
    """(N, M, H, W) logits, (N, M|1, H, W) targets -> (N, M) focal loss averaged over pixels."""
    targets = targets.expand_as(logits).float()
    return sigmoid_focal_loss(logits, targets, alpha, gamma).flatten(2).mean(-1)


def dice_per_mask(logits: Tensor, targets: Tensor) -> Tensor:
    """(N, M) soft dice loss ``1 - (2|P∩T| + 1) / (|P| + |T| + 1)`` on sigmoid probabilities."""
    prob = logits.sigmoid().flatten(2)
    target = targets.expand_as(logits).float().flatten(2)
    numerator = 2 * (prob * target).sum(-1)
    denominator = prob.sum(-1) + target.sum(-1)
    return 1 - (numerator + 1) / (denominator + 1)


def mask_ious(logits: Tensor, targets: Tensor) -> Tensor:
    """(N, M) IoU of the thresholded masks (logit > 0) with the targets (empty union: 0)."""
    pred = logits.flatten(2) > 0
    gt = targets.expand_as(logits).flatten(2) > 0
    inter = (pred & gt).sum(-1).float()
    union = (pred | gt).sum(-1).float()
    return inter / union.clamp(min=1.0)


def iou_per_mask(logits: Tensor, targets: Tensor, pred_ious: Tensor, use_l1: bool) -> Tensor:
    """(N, M) error of the predicted IoUs vs the actual IoUs (L1 or squared)."""
    actual = mask_ious(logits, targets)
    if use_l1:
        return F.l1_loss(pred_ious, actual, reduction="none")
    return F.mse_loss(pred_ious, actual, reduction="none")


@dataclass
class LossTerms:
    """The weighted total and its four unweighted parts (each a 0-dim tensor)."""

    total: Tensor
    mask: Tensor
    dice: Tensor
    iou: Tensor
    object_score: Tensor

    def __add__(self, other: LossTerms) -> LossTerms:
        return LossTerms(
            self.total + other.total,
            self.mask + other.mask,
            self.dice + other.dice,
            self.iou + other.iou,
            self.object_score + other.object_score,
        )

    def as_floats(self) -> dict[str, float]:
        return {k: float(getattr(self, k).detach()) for k in ("total", "mask", "dice", "iou")} | {
            "object_score": float(self.object_score.detach())
        }


def step_loss(
    masks: Tensor,
    pred_ious: Tensor,
    object_score_logits: Tensor,
    targets: Tensor,
    num_objects: float,
    weights: LossWeights | None = None,
) -> LossTerms:
    """Loss of one prediction step for N objects.

    ``masks`` (N, M, H, W) logits, ``pred_ious`` (N, M), ``object_score_logits`` (N, 1),
    ``targets`` (N, 1, H, W) binary. With M > 1 only the candidate with the lowest
    ``mask·focal + dice·dice`` back-propagates its mask losses; the IoU head learns from all
    (``supervise_all_iou``) or from that one. Mask, dice and IoU terms are zeroed for objects
    absent from the frame (empty target), whose only signal is the object score.
    """
    w = weights or LossWeights()
    if (
        masks.ndim != 4
        or targets.shape[0] != masks.shape[0]
        or targets.shape[-2:] != masks.shape[-2:]
    ):
        raise ValueError(
            f"masks (N, M, H, W) {tuple(masks.shape)} and targets (N, 1, H, W) "
            f"{tuple(targets.shape)} must agree in N, H and W"
        )
    masks = masks.float()
    targets = targets.float()
    focal = focal_per_mask(masks, targets, w.focal_alpha, w.focal_gamma)  # (N, M)
    dice = dice_per_mask(masks, targets)  # (N, M)
    iou = iou_per_mask(masks, targets, pred_ious.float(), w.iou_use_l1)  # (N, M)
    present = (targets.flatten(1) > 0).any(dim=1, keepdim=True).float()  # (N, 1)
    obj = sigmoid_focal_loss(object_score_logits.float(), present, alpha=-1.0, gamma=0.0)
    if masks.shape[1] > 1:
        best = torch.argmin(w.mask * focal + w.dice * dice, dim=-1)  # (N,)
        rows = torch.arange(masks.shape[0], device=masks.device)
        focal_b, dice_b = focal[rows, best, None], dice[rows, best, None]
        iou_b = iou.mean(-1, keepdim=True) if w.supervise_all_iou else iou[rows, best, None]
    else:
        focal_b, dice_b, iou_b = focal, dice, iou
    n = max(float(num_objects), 1.0)
    mask_l = (focal_b * present).sum() / n
    dice_l = (dice_b * present).sum() / n
    iou_l = (iou_b * present).sum() / n
    obj_l = obj.sum() / n
    total = w.mask * mask_l + w.dice * dice_l + w.iou * iou_l + w.object_score * obj_l
    return LossTerms(total, mask_l, dice_l, iou_l, obj_l)
