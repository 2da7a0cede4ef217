"""The plugin's model loader: one model for clicks and propagation, loaded once."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from napari_sam2.models import (
    DEFAULT_MODEL,
    DEMO_MODEL,
    PROPAGATION_OPTIONS,
    TRACKING_OPTIONS,
    ModelChoice,
    config_for_checkpoint,
    default_model,
    model_loader,
    resolve_hub_id,
)
from sam2.build_sam import build_sam2
from sam2.precision import choose_precision


def test_local_checkpoint_is_built_for_video_and_loaded_once(tmp_path: Path) -> None:
    """A local checkpoint loads strictly, its video predictors binarise click masks before
    memory encoding (the video builder's setting), and a second call returns the same model."""
    path = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": build_sam2("tiny", device="cpu").state_dict()}, path)
    loader = model_loader(ModelChoice(hub_id=None, checkpoint=str(path), device="cpu"))
    loaded = loader()
    assert loaded.video_predictor(TRACKING_OPTIONS).options.binarize_mask_from_pts
    assert loader() is loaded
    # the default "auto": bf16 only where this CPU has bfloat16 units, and the reason kept
    expected = choose_precision("auto", "cpu")
    assert loaded.precision == expected.precision and loaded.precision_reason == expected.reason
    assert loaded.image_predictor().precision == expected.precision
    exact = ModelChoice(hub_id=None, checkpoint=str(path), device="cpu", precision="fp32").load()
    assert exact.precision == "fp32" and exact.image_predictor().precision == "fp32"
    fast = ModelChoice(hub_id=None, checkpoint=str(path), device="cpu", precision="bf16").load()
    assert fast.precision == "bf16"
    assert fast.image_predictor().precision == "bf16"
    assert fast.video_predictor(TRACKING_OPTIONS).precision == "bf16"
    assert fast.video_predictor(PROPAGATION_OPTIONS).options.binarize_mask_from_pts


def test_video_predictors_get_the_plugins_options(tmp_path: Path) -> None:
    """Propagation keeps corrections as conditioning frames; both fill holes of 8 pixels."""
    from napari_sam2.models import LoadedModel

    loaded = LoadedModel(build_sam2("tiny", device="cpu"))
    propagation = loaded.video_predictor(PROPAGATION_OPTIONS)
    tracking = loaded.video_predictor(TRACKING_OPTIONS)
    assert propagation.options.add_all_frames_to_correct_as_cond
    assert not tracking.options.add_all_frames_to_correct_as_cond
    assert propagation.options.fill_hole_area == tracking.options.fill_hole_area == 8


def test_choices_that_cannot_load_say_why(tmp_path: Path) -> None:
    """No checkpoint, or one whose name tells no config: a sentence naming the fix."""
    with pytest.raises(ValueError, match="choose a checkpoint file"):
        ModelChoice(hub_id=None).load()
    with pytest.raises(ValueError, match=r"'mine\.pt' is from its name; choose its config"):
        ModelChoice(hub_id=None, checkpoint=str(tmp_path / "mine.pt")).load()
    with pytest.raises(ValueError, match="unknown model 'sam3-giant'"):
        resolve_hub_id("sam3-giant")
    assert resolve_hub_id("tiny") == "facebook/sam2.1-hiera-tiny"
    assert config_for_checkpoint("x/sam2_hiera_large.pt") == "configs/sam2/sam2_hiera_l.yaml"


def test_default_model_is_the_demo_until_the_released_tiny_is_cached(tmp_path: Path) -> None:
    """An empty Hugging Face cache gives the offline demo model; once sam2.1 tiny's file is
    in the cache (laid out as a download leaves it), the released model is the default."""
    assert default_model(cache_dir=tmp_path) == DEMO_MODEL
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--facebook--sam2.1-hiera-tiny"
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit / "sam2.1_hiera_tiny.pt").write_bytes(b"weights")
    assert default_model(cache_dir=tmp_path) == DEFAULT_MODEL
    assert resolve_hub_id("demo-cells") == resolve_hub_id(DEMO_MODEL) == DEMO_MODEL
