"""The plugin's model factory: one model for clicks and propagation, loaded once."""

from __future__ import annotations

from pathlib import Path

import torch

from napari_sam2.models import LOCAL_CHECKPOINT, model_factory
from sam2.build_sam import build_sam2


def test_local_checkpoint_is_built_for_video_and_loaded_once(tmp_path: Path) -> None:
    """A local checkpoint loads strictly, with the video builder's memory setting (masks from
    clicks are binarised before memory encoding), and a second call returns the same model."""
    path = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": build_sam2("tiny", device="cpu").state_dict()}, path)
    factory = model_factory(LOCAL_CHECKPOINT, device="cpu", checkpoint=path)
    predictor = factory()
    assert predictor.model.config.binarize_mask_from_pts_for_mem_enc
    assert factory() is predictor
    assert predictor.precision == "fp32"
    fast = model_factory(LOCAL_CHECKPOINT, device="cpu", checkpoint=path, precision="bf16")()
    assert fast.precision == "bf16"
    assert fast.model.config.binarize_mask_from_pts_for_mem_enc
