"""TrackingOptions: one typed value for the video predictor's options, from any entry point."""

from __future__ import annotations

import pytest
import torch

from sam2.build_sam import build_model, build_sam2_video_predictor
from sam2.configs import resolve_config
from sam2.modeling.sam2_model import SAM2Model
from sam2.sam2_video_predictor import SAM2VideoPredictor
from sam2.video.options import TrackingOptions


@pytest.fixture(scope="module")
def model() -> SAM2Model:
    """Random-weight tiny model at input size 256 (plain config: no binarising)."""
    torch.manual_seed(0)
    return build_model(resolve_config("tiny").replace(image_size=256)).eval()


def test_reference_keywords_fold_into_options(model: SAM2Model) -> None:
    """The reference's keywords (the plugin's call) become the predictor's public options."""
    predictor = SAM2VideoPredictor(model, fill_hole_area=8, add_all_frames_to_correct_as_cond=True)
    assert predictor.options == TrackingOptions(
        fill_hole_area=8, add_all_frames_to_correct_as_cond=True
    )


def test_options_are_taken_as_given(model: SAM2Model) -> None:
    """An explicit TrackingOptions is used as is, binarising included."""
    options = TrackingOptions.postprocessed(non_overlap_masks=True)
    assert SAM2VideoPredictor(model, options).options is options


def test_binarize_follows_the_model_config_without_options(model: SAM2Model) -> None:
    """A model built with binarize_mask_from_pts_for_mem_enc keeps binarising when re-wrapped."""
    binarizing = build_model(model.config.replace(binarize_mask_from_pts_for_mem_enc=True))
    assert SAM2VideoPredictor(binarizing).options.binarize_mask_from_pts
    assert not SAM2VideoPredictor(model).options.binarize_mask_from_pts


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fill_hole_aera": 8}, r"unexpected keyword argument\(s\) \['fill_hole_aera'\]"),
        ({"options": TrackingOptions(), "fill_hole_area": 8}, "either options or the keyword"),
        ({"options": {"fill_hole_area": 8}}, "options must be a TrackingOptions, got dict"),
    ],
)
def test_bad_options_are_type_errors(model: SAM2Model, kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    """A misspelt keyword, options plus keywords, or a dict for options are refused by name."""
    with pytest.raises(TypeError, match=message):
        SAM2VideoPredictor(model, **kwargs)


def test_builder_translates_postprocessing_and_overrides() -> None:
    """The video builder's post-processing and option overrides arrive as TrackingOptions."""
    small = "++model.image_size=256"
    post = build_sam2_video_predictor(
        "tiny", device="cpu", hydra_overrides_extra=[small, "++model.non_overlap_masks=true"]
    )
    assert post.options == TrackingOptions.postprocessed(non_overlap_masks=True)
    plain = build_sam2_video_predictor(
        "tiny", device="cpu", hydra_overrides_extra=[small], apply_postprocessing=False
    )
    assert plain.options == TrackingOptions()
