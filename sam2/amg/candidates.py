"""The automatic mask generator's working set: one row per candidate mask, all tensors.

Masks travel as their low-res logits (S/4 × S/4, whatever the image size) and are upsampled
to full resolution only to be scored and, at the end, for the masks that are returned.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor


@dataclass(frozen=True)
class Candidates:
    """N candidate masks of one or more crops."""

    low_res: Tensor  # (N, S/4, S/4) float32 logits, after the predictor's post-processing
    iou_preds: Tensor  # (N,) float32 predicted IoU
    stability: Tensor  # (N,) float32 stability score
    points: Tensor  # (N, 2) float32 (x, y) prompt, crop pixels until shifted to the image
    boxes: Tensor  # (N, 4) int64 inclusive XYXY box of the binary mask, as points
    crop_index: Tensor  # (N,) int64 index of the crop that made the mask

    def __post_init__(self) -> None:
        n = self.iou_preds.shape[0]
        for field in fields(self):
            value = getattr(self, field.name)
            if value.shape[0] != n:
                raise ValueError(f"{field.name} has {value.shape[0]} rows, expected {n}")

    def __len__(self) -> int:
        return int(self.iou_preds.shape[0])

    def select(self, keep: Tensor) -> Candidates:
        """Rows picked by a boolean mask or by indices (in that order)."""
        return Candidates(**{f.name: getattr(self, f.name)[keep] for f in fields(self)})

    def shifted(self, x0: int, y0: int) -> Candidates:
        """Points and boxes moved by the crop origin, from crop to image pixels."""
        offset = torch.tensor([x0, y0], device=self.points.device)
        return Candidates(
            low_res=self.low_res,
            iou_preds=self.iou_preds,
            stability=self.stability,
            points=self.points + offset.to(self.points.dtype),
            boxes=self.boxes + offset.repeat(2),
            crop_index=self.crop_index,
        )

    @staticmethod
    def cat(parts: list[Candidates]) -> Candidates:
        """Rows of all parts, in order (at least one part)."""
        if not parts:
            raise ValueError("Candidates.cat needs at least one part")
        return Candidates(
            **{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(Candidates)}
        )
