"""Image preprocessing and coordinate/mask transforms between image pixels and model input.

SAM 2 stretches every image to a square S×S input (no aspect-ratio preservation, no padding),
with an antialiased bilinear resize of the [0, 1] float image and ImageNet mean/std.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sam2.intensity import ContrastLimits, choose_limits, to_unit_range

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def as_hwc_array(image: Any) -> np.ndarray:
    """(H, W, 3) or, for grayscale, (H, W, 1) array from a numpy array or a PIL image.

    Grayscale stays one channel until after intensity scaling, so that its percentiles are
    those of the data; an alpha channel is dropped.
    """
    if hasattr(image, "convert") and hasattr(image, "size") and not isinstance(image, np.ndarray):
        image = np.asarray(image.convert("RGB"))
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected a numpy array or a PIL image, got {type(image).__name__}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(
            f"expected an image of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got "
            f"{image.shape}; for a stack or a multichannel image pass one 2D plane, e.g. "
            "image[..., channel]"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"the image is empty (shape {image.shape})")
    if image.dtype == np.bool_:
        image = image.astype(np.uint8) * 255
    if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise TypeError(f"unsupported image dtype {image.dtype}")
    return image[:, :, :3]


def preprocess(
    image: np.ndarray, size: int, contrast_limits: ContrastLimits | None = None
) -> Tensor:
    """(H, W, 3|1) image -> (3, S, S) normalised float32 model input (see :mod:`sam2.intensity`).

    One channel is used as gray for all three colours.
    """
    limits = choose_limits(image, contrast_limits)
    unit = torch.from_numpy(np.ascontiguousarray(to_unit_range(image, limits))).permute(2, 0, 1)
    unit = unit.expand(3, -1, -1)
    resized = F.interpolate(
        unit[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True
    )[0]
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (resized - mean) / std


def to_model_coords(
    coords: Tensor, orig_hw: tuple[int, int], size: int, normalize: bool = True
) -> Tensor:
    """(..., 2) (x, y) in image pixels (or in [0, 1] if ``normalize`` is False) -> model pixels."""
    coords = coords.clone().float()
    if normalize:
        h, w = orig_hw
        coords[..., 0] = coords[..., 0] / w
        coords[..., 1] = coords[..., 1] / h
    return coords * size


def upsample_logits(logits: Tensor, orig_hw: tuple[int, int]) -> Tensor:
    """(B, M, h, w) low-res logits -> (B, M, H, W) at the image's size (bilinear, float32)."""
    return F.interpolate(logits.float(), size=orig_hw, mode="bilinear", align_corners=False)
