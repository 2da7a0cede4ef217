"""Simulated user prompts, sampled from ground truth as the release trains (spec §5).

Points are (N, P, 2) (x, y) in model-input pixels with (N, P) int labels: 1 positive, 0
negative, 2/3 the top-left/bottom-right box corners. Masks are (N, 1, H, W) booleans at model
input size. Every sampler draws from an explicit ``torch.Generator`` so training is seeded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class PromptOptions:
    """How prompts are simulated (defaults: the released training config, spec §5)."""

    prob_point_input: float = 0.5  # clicks/boxes; otherwise the GT mask on conditioning frames
    prob_box_input: float = 0.5  # given point input: a box instead of a click
    num_init_cond_frames: int = 2  # 1..this many initial conditioning frames (first always)
    num_frames_to_correct: int = 2  # 1..this many frames get corrective clicks
    num_correction_points: int = 7  # iterative clicks per corrected frame
    prob_correction_from_gt: float = 0.1  # a corrective click sampled from the GT mask
    box_noise: float = 0.1  # box corner jitter, fraction of the box side ...
    box_noise_bound: float = 20.0  # ... and at most this many pixels


def random_error_points(
    gt: Tensor, pred: Tensor | None, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """One click per object, uniform over its error region: (N, 1, 2) coords, (N, 1) labels.

    False negatives give positive clicks and false positives negative ones; ``pred=None``
    means "nothing predicted yet", so the click is uniform over the GT mask (positive). An
    object without errors gets a click anywhere in the frame, labelled by the GT there.
    """
    gt = gt.bool()
    n, _, _h, w = gt.shape
    pred_b = torch.zeros_like(gt) if pred is None else pred.bool()
    fn = gt & ~pred_b
    fp = ~gt & pred_b
    error = (fn | fp).flatten(1).float()  # (N, HW)
    noise = torch.rand(error.shape, generator=generator, device=error.device)
    none = error.sum(1, keepdim=True) == 0
    idx = torch.argmax(torch.where(none, noise, noise * error + error), dim=1)  # (N,)
    labels = fn.flatten(1)[torch.arange(n), idx] | (
        none[:, 0] & gt.flatten(1)[torch.arange(n), idx]
    )
    coords = torch.stack([idx % w, idx // w], dim=-1).float() + 0.5  # pixel centres (x, y)
    return coords[:, None], labels.int()[:, None]


def center_error_points(gt: Tensor, pred: Tensor | None) -> tuple[Tensor, Tensor]:
    """One click per object at the error pixel farthest from the error's boundary (eval).

    The larger of the false-negative and false-positive regions wins (positive vs negative
    click), as the release's evaluation sampler does; distances are Euclidean (scipy).
    """
    from scipy import ndimage

    gt_np = gt.bool().cpu().numpy()[:, 0]
    pred_np = np.zeros_like(gt_np) if pred is None else pred.bool().cpu().numpy()[:, 0]
    coords, labels = [], []
    for g, p in zip(gt_np, pred_np):
        best = (-1.0, 0, 0, 1)
        for region, label in ((g & ~p, 1), (~g & p, 0)):
            if region.any():
                dist = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
                y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
                if dist[y, x] > best[0]:
                    best = (float(dist[y, x]), int(x), int(y), label)
        coords.append([best[1] + 0.5, best[2] + 0.5])
        labels.append(best[3])
    device = gt.device
    return (
        torch.tensor(coords, dtype=torch.float32, device=device)[:, None],
        torch.tensor(labels, dtype=torch.int32, device=device)[:, None],
    )


def mask_boxes(gt: Tensor) -> Tensor:
    """(N, 4) tight boxes [x0, y0, x1, y1] in pixels (pixel edges; empty masks: zeros)."""
    gt = gt.bool()[:, 0]
    _n, h, w = gt.shape
    rows, cols = gt.any(dim=2), gt.any(dim=1)  # (N, H), (N, W)
    ys = torch.arange(h, device=gt.device)
    xs = torch.arange(w, device=gt.device)
    y0 = torch.where(rows, ys, h).min(1).values
    y1 = torch.where(rows, ys, -1).max(1).values + 1
    x0 = torch.where(cols, xs, w).min(1).values
    x1 = torch.where(cols, xs, -1).max(1).values + 1
    boxes = torch.stack([x0, y0, x1, y1], dim=1).float()
    return torch.where(rows.any(1, keepdim=True), boxes, torch.zeros_like(boxes))


def noisy_box_points(
    gt: Tensor, generator: torch.Generator, noise: float = 0.1, bound: float = 20.0
) -> tuple[Tensor, Tensor]:
    """Box prompts from GT masks with each corner jittered uniformly by ≤ ``noise`` × the box
    side (at most ``bound`` pixels), clamped to the image: (N, 2, 2) coords, (N, 2) labels 2/3.
    """
    boxes = mask_boxes(gt)
    h, w = gt.shape[-2:]
    if noise > 0:
        size = torch.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], dim=1)
        max_d = torch.clamp(size * noise, max=bound).repeat(1, 2)  # (N, 4) dx, dy, dx, dy
        jitter = torch.rand(boxes.shape, generator=generator, device=boxes.device) * 2 - 1
        boxes = boxes + jitter * max_d
        limit = torch.tensor([w, h, w, h], dtype=boxes.dtype, device=boxes.device)
        boxes = torch.minimum(boxes.clamp(min=0), limit)
    labels = torch.tensor([[2, 3]], dtype=torch.int32, device=gt.device).expand(len(boxes), 2)
    return boxes.reshape(-1, 2, 2), labels


def correction_points(
    gt: Tensor, pred: Tensor, generator: torch.Generator, prob_from_gt: float
) -> tuple[Tensor, Tensor]:
    """The next corrective click per object: from the error region, or with ``prob_from_gt``
    from the GT mask (a positive click anywhere in the object)."""
    coords, labels = random_error_points(gt, pred, generator)
    if prob_from_gt > 0:
        use_gt = torch.rand(gt.shape[0], generator=generator, device=gt.device) < prob_from_gt
        if bool(use_gt.any()):
            gt_coords, gt_labels = random_error_points(gt, None, generator)
            coords = torch.where(use_gt[:, None, None], gt_coords, coords)
            labels = torch.where(use_gt[:, None], gt_labels, labels)
    return coords, labels


def initial_prompt(
    gt: Tensor, generator: torch.Generator, options: PromptOptions, force_points: bool = False
) -> tuple[str, tuple[Tensor, Tensor] | None]:
    """What prompts an object's first conditioning frame: ``("mask", None)``, a click or a box.

    Decided once per batch (all objects of a batch get the same kind), as the release decides
    per clip; ``force_points`` (single images) rules out the mask prompt.
    """
    draw = torch.rand(2, generator=generator).tolist()
    if not force_points and draw[0] >= options.prob_point_input:
        return "mask", None
    if draw[1] < options.prob_box_input:
        return "box", noisy_box_points(gt, generator, options.box_noise, options.box_noise_bound)
    return "click", random_error_points(gt, None, generator)
