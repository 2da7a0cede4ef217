"""Hole filling and sprinkle removal on mask logits, on any device.

The reference computes connected components only with its CUDA extension and silently skips
this post-processing elsewhere, so CPU results differ from GPU ones. Here the components come
from an exact 8-connected labelling on every device (``sam2.connected_components``: our C++/CUDA
extension, or scikit-image where it is not built), so every device gets the GPU result.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sam2.connected_components import connected_components as _components


def connected_components(mask: Tensor) -> tuple[Tensor, Tensor]:
    """8-connected components of a (N, 1, H, W) boolean mask.

    Returns ``labels`` (int32, 0 for background, > 0 inside a component) and ``areas`` (int32,
    each pixel's component size, 0 for background), on the mask's device.
    """
    return _components(mask)


def fill_holes(
    logits: Tensor, max_area: float, threshold: float = 0.0, fill: float = 0.1
) -> Tensor:
    """Set background components (``logit <= threshold``) of at most ``max_area`` pixels to
    ``fill``. ``logits`` is (N, 1, H, W); the video predictor uses ``fill=0.1``."""
    if max_area <= 0:
        return logits
    labels, areas = connected_components(logits <= threshold)
    return torch.where(
        (labels > 0) & (areas <= max_area), torch.as_tensor(fill, dtype=logits.dtype), logits
    )


def remove_small_regions(
    logits: Tensor, max_hole_area: float, max_sprinkle_area: float, threshold: float = 0.0
) -> Tensor:
    """Image-predictor post-processing on (B, M, H, W) low-res logits.

    Holes (background components up to ``max_hole_area``) become ``threshold + 10``, sprinkles
    (foreground components up to ``max_sprinkle_area``) ``threshold - 10``; both sets of
    components are taken from the input logits.
    """
    if max_hole_area <= 0 and max_sprinkle_area <= 0:
        return logits
    flat = logits.flatten(0, 1).unsqueeze(1)  # (B*M, 1, H, W)
    out = logits
    if max_hole_area > 0:
        labels, areas = connected_components(flat <= threshold)
        holes = ((labels > 0) & (areas <= max_hole_area)).reshape_as(logits)
        out = torch.where(holes, torch.as_tensor(threshold + 10.0, dtype=logits.dtype), out)
    if max_sprinkle_area > 0:
        labels, areas = connected_components(flat > threshold)
        sprinkles = ((labels > 0) & (areas <= max_sprinkle_area)).reshape_as(logits)
        out = torch.where(sprinkles, torch.as_tensor(threshold - 10.0, dtype=logits.dtype), out)
    return out


def apply_non_overlapping_constraints(masks: Tensor) -> Tensor:
    """(N, 1, H, W) logits of N objects: where an object is not the highest-scoring one, its
    logit is lowered to at most -10, so every pixel belongs to one object at most."""
    if masks.shape[0] <= 1:
        return masks
    winner = torch.argmax(masks, dim=0, keepdim=True)  # (1, 1, H, W)
    index = torch.arange(masks.shape[0], device=masks.device)[:, None, None, None]
    return torch.where(winner == index, masks, torch.clamp(masks, max=-10.0))
