"""SAM2ImagePredictor: the reference's masks, IoUs and logits on identical weights."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from skimage import data as skdata

from napari_sam2.synthetic import make_image
from sam2.build_sam import build_sam2
from sam2.intensity import choose_limits, to_unit_range
from sam2.sam2_image_predictor import SAM2ImagePredictor
from tests.conftest import ReferenceCheckpoints
from tests.oracle.harness import Oracle

TOL = 1e-4


def _photo() -> np.ndarray:
    """A real photograph, non-square (400×600 RGB)."""
    return skdata.coffee()


def _microscopy(shape: tuple[int, int]) -> np.ndarray:
    """16-bit noisy cells (the plugin's synthetic data)."""
    return make_image(shape=shape, seed=5)[0]


def _cases(h: int, w: int) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """Prompt arrays and the cases that use them (mirrors the probe's case format)."""
    rng = np.random.default_rng(0)
    arrays = {
        "one_point": np.array([[w * 0.4, h * 0.55]], dtype=np.float32),
        "one_label": np.array([1], dtype=np.int32),
        "two_points": np.array([[w * 0.4, h * 0.55], [w * 0.7, h * 0.2]], dtype=np.float32),
        "two_labels": np.array([1, 0], dtype=np.int32),
        "box": np.array([w * 0.2, h * 0.3, w * 0.6, h * 0.8], dtype=np.float32),
        "norm_points": np.array([[0.25, 0.75]], dtype=np.float32),
        "batch_points": (rng.uniform(0.1, 0.9, size=(3, 2, 2)) * [w, h]).astype(np.float32),
        "batch_labels": np.array([[1, 1], [1, 0], [0, 1]], dtype=np.int32),
        "batch_boxes": np.array(
            [[0, 0, w * 0.5, h * 0.5], [w * 0.3, h * 0.3, w * 0.9, h * 0.7], [10, 20, 60, 90]],
            dtype=np.float32,
        ),
    }
    cases: list[dict[str, Any]] = [
        {"name": "click", "point_coords": "one_point", "point_labels": "one_label"},
        {
            "name": "click_single",
            "point_coords": "one_point",
            "point_labels": "one_label",
            "multimask_output": False,
        },
        {
            "name": "two_clicks",
            "point_coords": "two_points",
            "point_labels": "two_labels",
            "multimask_output": False,
        },
        {"name": "box", "box": "box", "multimask_output": False},
        {
            "name": "box_points",
            "box": "box",
            "point_coords": "two_points",
            "point_labels": "two_labels",
            "multimask_output": False,
        },
        {
            "name": "refine",
            "point_coords": "two_points",
            "point_labels": "two_labels",
            "mask_input": "from:click",
            "multimask_output": False,
        },
        {"name": "mask_only", "mask_input": "from:click", "multimask_output": True},
        {
            "name": "normalized",
            "point_coords": "norm_points",
            "point_labels": "one_label",
            "normalize_coords": False,
        },
        {
            "name": "logits",
            "point_coords": "one_point",
            "point_labels": "one_label",
            "return_logits": True,
        },
        {"name": "batch", "point_coords": "batch_points", "point_labels": "batch_labels"},
        {
            "name": "batch_boxes",
            "box": "batch_boxes",
            "point_coords": "batch_points",
            "point_labels": "batch_labels",
            "multimask_output": False,
        },
    ]
    return arrays, cases


def _run_ours(
    predictor: SAM2ImagePredictor, arrays: dict[str, np.ndarray], cases: list[dict[str, Any]]
) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    done: dict[str, np.ndarray] = {}
    for case in cases:
        kwargs: dict[str, Any] = {"multimask_output": case.get("multimask_output", True)}
        for key in ("point_coords", "point_labels", "box", "mask_input"):
            ref = case.get(key)
            if isinstance(ref, str) and ref.startswith("from:"):
                kwargs[key] = done[ref[5:]]
            elif ref is not None:
                kwargs[key] = arrays[ref]
        for key in ("normalize_coords", "return_logits"):
            if key in case:
                kwargs[key] = case[key]
        masks, ious, low_res = predictor.predict(**kwargs)
        name = case["name"]
        out[f"{name}.masks"], out[f"{name}.ious"], out[f"{name}.low_res"] = masks, ious, low_res
        done[name] = low_res[np.argmax(ious, axis=-1)][None] if low_res.ndim == 3 else low_res
    return out


def _assert_outputs_match(
    ours: dict[str, np.ndarray], ref: dict[str, np.ndarray], cases: list[dict[str, Any]]
) -> None:
    for case in cases:
        name = case["name"]
        low, ref_low = ours[f"{name}.low_res"], ref[f"{name}.low_res"]
        scale = max(1.0, float(np.abs(ref_low).max()))
        np.testing.assert_allclose(low, ref_low, atol=TOL * scale, rtol=TOL, err_msg=name)
        np.testing.assert_allclose(
            ours[f"{name}.ious"], ref[f"{name}.ious"], atol=TOL, err_msg=name
        )
        masks, ref_masks = ours[f"{name}.masks"], ref[f"{name}.masks"]
        assert masks.shape == ref_masks.shape and masks.dtype == ref_masks.dtype, name
        if case.get("return_logits"):
            np.testing.assert_allclose(masks, ref_masks, atol=TOL * scale, rtol=TOL, err_msg=name)
        else:
            differ = masks != ref_masks
            # a pixel may flip only where the upsampled logit is within rounding of the threshold
            assert differ.mean() < 1e-5, f"{name}: {int(differ.sum())} mask pixels differ"
        assert ((ref_masks > 0).any() and (ref_masks <= 0).any()) or case.get("name") == "mask_only"


def _parity(
    oracle: Oracle, ckpt: str, config: str, image: np.ndarray, ref_image: np.ndarray
) -> None:
    h, w = image.shape[:2]
    arrays, cases = _cases(h, w)
    ref = oracle.call(
        "image_predictor:predict_cases",
        {"image": ref_image, **arrays},
        config=config,
        ckpt=ckpt,
        cases=cases,
    )
    predictor = SAM2ImagePredictor(build_sam2(config, ckpt, device="cpu"))
    predictor.set_image(image)
    embed = predictor.get_image_embedding()
    np.testing.assert_allclose(
        embed.numpy(),
        ref["image_embed"],
        atol=TOL * max(1.0, float(np.abs(ref["image_embed"]).max())),
    )
    for i, feat in enumerate(predictor._features["high_res_feats"]):  # type: ignore[index]
        expected = ref[f"high_res_feats.{i}"]
        np.testing.assert_allclose(
            feat.numpy(), expected, atol=TOL * max(1.0, float(np.abs(expected).max()))
        )
    _assert_outputs_match(_run_ours(predictor, arrays, cases), ref, cases)


@pytest.mark.oracle
@pytest.mark.parametrize(
    "config", ["configs/sam2.1/sam2.1_hiera_t.yaml", "configs/sam2.1/sam2.1_hiera_s.yaml"]
)
def test_photo_parity(
    oracle: Oracle, reference_checkpoints: ReferenceCheckpoints, config: str
) -> None:
    """On a non-square photo every prompt kind gives the reference's masks, IoUs and logits."""
    image = _photo()
    _parity(oracle, str(reference_checkpoints.get(config)), config, image, image)


@pytest.mark.oracle
@pytest.mark.parametrize("shape", [(256, 256), (200, 320)])
def test_16bit_microscopy_parity(
    oracle: Oracle, reference_checkpoints: ReferenceCheckpoints, shape: tuple[int, int]
) -> None:
    """A 16-bit grayscale image equals the reference fed our documented [0, 1] normalisation."""
    config = "configs/sam2.1/sam2.1_hiera_t.yaml"
    image = _microscopy(shape)
    unit = to_unit_range(image, choose_limits(image))
    ref_image = np.repeat(unit[:, :, None], 3, axis=2)  # the reference takes float HWC as is
    _parity(oracle, str(reference_checkpoints.get(config)), config, image, ref_image)


@pytest.mark.oracle
def test_sam20_parity(oracle: Oracle, reference_checkpoints: ReferenceCheckpoints) -> None:
    """SAM 2.0 tiny gives the reference's masks too."""
    config = "configs/sam2/sam2_hiera_t.yaml"
    image = skdata.astronaut()
    _parity(oracle, str(reference_checkpoints.get(config)), config, image, image)
