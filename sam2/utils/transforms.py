"""Reference-compatible ``sam2.utils.transforms.SAM2Transforms`` on :mod:`sam2.transforms`."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from sam2.postprocess import remove_small_regions
from sam2.transforms import as_hwc_array, preprocess, to_model_coords, upsample_logits

__all__ = ["SAM2Transforms"]


class SAM2Transforms:
    """Image preprocessing, prompt coordinates and mask post-processing at one model size.

    ``resolution`` is the model input size S. Images are handled as by
    :class:`sam2.sam2_image_predictor.SAM2ImagePredictor` (uint8 exactly as the reference;
    other dtypes scaled as :mod:`sam2.intensity` describes).
    """

    def __init__(
        self,
        resolution: int,
        mask_threshold: float,
        max_hole_area: float = 0.0,
        max_sprinkle_area: float = 0.0,
    ) -> None:
        self.resolution = int(resolution)
        self.mask_threshold = mask_threshold
        self.max_hole_area = max_hole_area
        self.max_sprinkle_area = max_sprinkle_area

    def __call__(self, x: Any) -> Tensor:
        """(H, W, 3) image (numpy or PIL) -> (3, S, S) normalised float32 model input."""
        return preprocess(as_hwc_array(x), self.resolution)

    def forward_batch(self, img_list: list[Any]) -> Tensor:
        """Images -> (B, 3, S, S)."""
        return torch.stack([self(img) for img in img_list])

    def transform_coords(
        self, coords: Tensor, normalize: bool = False, orig_hw: tuple[int, int] | None = None
    ) -> Tensor:
        """(..., 2) (x, y) in [0, 1], or in pixels of ``orig_hw`` with ``normalize``, -> model
        input pixels [0, S]."""
        if normalize and orig_hw is None:
            raise ValueError("normalize=True needs orig_hw, the image's (H, W)")
        hw = orig_hw if orig_hw is not None else (1, 1)
        return to_model_coords(coords, hw, self.resolution, normalize)

    def transform_boxes(
        self, boxes: Tensor, normalize: bool = False, orig_hw: tuple[int, int] | None = None
    ) -> Tensor:
        """(B, 4) XYXY boxes -> (B, 2, 2) corners in model input pixels."""
        return self.transform_coords(boxes.reshape(-1, 2, 2), normalize, orig_hw)

    def postprocess_masks(self, masks: Tensor, orig_hw: tuple[int, int]) -> Tensor:
        """(B, M, h, w) low-res logits -> holes and sprinkles removed -> (B, M, H, W)."""
        cleaned = remove_small_regions(
            masks.float(), self.max_hole_area, self.max_sprinkle_area, self.mask_threshold
        )
        return upsample_logits(cleaned, orig_hw)
