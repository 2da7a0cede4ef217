"""Fixtures shared by the sam2 tests: one cheap random-weight video predictor."""

from __future__ import annotations

import pytest
import torch

from sam2.build_sam import build_sam2_video_predictor
from sam2.sam2_video_predictor import SAM2VideoPredictor


@pytest.fixture(scope="module")
def video_predictor_256() -> SAM2VideoPredictor:
    """Random-weight tiny model at input size 256 (seeded, so every module gets the same)."""
    torch.manual_seed(0)
    return build_sam2_video_predictor(
        "tiny", device="cpu", hydra_overrides_extra=["++model.image_size=256"]
    )
