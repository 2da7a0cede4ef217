"""Shared fixtures for the tracking tests: one tiny random-weight SAM 2 for the wiring tests,
py-ctcmetrics for the scores."""

from __future__ import annotations

import os
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

from sam2.synthetic import SyntheticTimelapse
from sam2.synthetic_tracking import make_tracking_timelapse

if TYPE_CHECKING:
    from sam2.sam2_video_predictor import SAM2VideoPredictor

TINY = "configs/sam2.1/sam2.1_hiera_t.yaml"
IMAGE_SIZE = 256  # a quarter of the released input size: same code paths, 16x less work


@pytest.fixture(scope="session")
def tiny_predictor() -> SAM2VideoPredictor:
    """SAM 2.1 tiny with seeded random weights at 256² input, on the CPU."""
    import torch

    from sam2.build_sam import build_sam2_video_predictor

    torch.manual_seed(0)
    return build_sam2_video_predictor(
        TINY, None, device="cpu", hydra_overrides_extra=[f"++model.image_size={IMAGE_SIZE}"]
    )


@pytest.fixture(scope="session")
def small_timelapse() -> SyntheticTimelapse:
    """4 frames of 128² with 3 cells: enough to exercise every call, cheap on a CPU."""
    return make_tracking_timelapse(
        n_frames=4, shape=(128, 128), n_cells=3, n_divisions=0, n_entering=0, n_leaving=0, seed=3
    )


@pytest.fixture(scope="session")
def ctc_metrics() -> ModuleType:
    """py-ctcmetrics (the test extra); under CI a missing install fails instead of skipping."""
    try:
        import ctc_metrics.scripts.evaluate as evaluate
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but py-ctcmetrics is not installed (pip install py-ctcmetrics)")
        pytest.skip("py-ctcmetrics is not installed (pip install py-ctcmetrics)")
    return evaluate
