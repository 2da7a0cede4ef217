"""SAM2ImagePredictor: the reference's masks, IoUs and logits on identical weights."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from skimage import data as skdata

from sam2.build_sam import build_sam2
from sam2.intensity import choose_limits, to_unit_range
from sam2.sam2_image_predictor import SAM2ImagePredictor
from sam2.synthetic import make_image
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
    for i, feat in enumerate(predictor._embeddings[0].high_res_features):
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


@pytest.mark.oracle
@pytest.mark.slow
@pytest.mark.parametrize(
    "config", ["configs/sam2.1/sam2.1_hiera_b+.yaml", "configs/sam2.1/sam2.1_hiera_l.yaml"]
)
def test_larger_models_parity(
    oracle: Oracle, reference_checkpoints: ReferenceCheckpoints, config: str
) -> None:
    """Base+ and large: encoder features (3 levels) and predictions equal the reference's."""
    image = skdata.chelsea()  # 300×451, non-square
    _parity(oracle, str(reference_checkpoints.get(config)), config, image, image)


@pytest.mark.oracle
@pytest.mark.parametrize("multimask", [True, False])
def test_batch_parity(
    oracle: Oracle, reference_checkpoints: ReferenceCheckpoints, multimask: bool
) -> None:
    """set_image_batch + predict_batch: per-image prompts give the reference's outputs."""
    config = "configs/sam2.1/sam2.1_hiera_t.yaml"
    ckpt = str(reference_checkpoints.get(config))
    images = [skdata.coffee(), skdata.astronaut()[::2, ::2].copy()]
    inputs = {
        "image.0": images[0],
        "image.1": images[1],
        "points.0": np.array([[300.0, 200.0], [100.0, 50.0]], dtype=np.float32),
        "labels.0": np.array([1, 0], dtype=np.int32),
        "points.1": np.array([[120.0, 80.0]], dtype=np.float32),
        "labels.1": np.array([1], dtype=np.int32),
        "box.1": np.array([20.0, 30.0, 200.0, 220.0], dtype=np.float32),
    }
    ref = oracle.call(
        "image_predictor:predict_batch_cases",
        inputs,
        config=config,
        ckpt=ckpt,
        n_images=2,
        multimask_output=multimask,
    )
    predictor = SAM2ImagePredictor(build_sam2(config, ckpt, device="cpu"))
    predictor.set_image_batch(images)
    masks, ious, low_res = predictor.predict_batch(
        [inputs["points.0"], inputs["points.1"]],
        [inputs["labels.0"], inputs["labels.1"]],
        box_batch=[None, inputs["box.1"]],
        multimask_output=multimask,
    )
    for i in range(2):
        scale = max(1.0, float(np.abs(ref[f"{i}.low_res"]).max()))
        np.testing.assert_allclose(low_res[i], ref[f"{i}.low_res"], atol=TOL * scale, rtol=TOL)
        np.testing.assert_allclose(ious[i], ref[f"{i}.ious"], atol=TOL)
        assert (masks[i] != ref[f"{i}.masks"]).mean() < 1e-5


@pytest.mark.oracle
def test_hole_and_sprinkle_removal_parity(
    oracle: Oracle, reference_checkpoints: ReferenceCheckpoints
) -> None:
    """max_hole_area / max_sprinkle_area on CPU equal the reference's GPU post-processing."""
    config = "configs/sam2.1/sam2.1_hiera_t.yaml"
    ckpt = str(reference_checkpoints.get(config))
    image = skdata.coffee()
    arrays, cases = _cases(*image.shape[:2])
    cases = [c for c in cases if c["name"] in ("click", "two_clicks", "logits", "batch")]
    ref = oracle.call(
        "image_predictor:predict_cases",
        {"image": image, **arrays},
        config=config,
        ckpt=ckpt,
        cases=cases,
        max_hole_area=40.0,
        max_sprinkle_area=40.0,
        return_features=False,
    )
    plain = oracle.call(
        "image_predictor:predict_cases",
        {"image": image, **arrays},
        config=config,
        ckpt=ckpt,
        cases=cases,
        return_features=False,
    )
    changed = any(
        not np.array_equal(ref[f"{c['name']}.masks"], plain[f"{c['name']}.masks"]) for c in cases
    )
    assert changed, "the post-processing should change some masks in this setting"
    predictor = SAM2ImagePredictor(
        build_sam2(config, ckpt, device="cpu"), max_hole_area=40.0, max_sprinkle_area=40.0
    )
    predictor.set_image(image)
    _assert_outputs_match(_run_ours(predictor, arrays, cases), ref, cases)


@pytest.fixture(scope="module")
def small_predictor() -> SAM2ImagePredictor:
    """A random-weight tiny model at input size 256 (fast), with an image set."""
    predictor = SAM2ImagePredictor(
        build_sam2("tiny", device="cpu", hydra_overrides_extra=["++model.image_size=256"])
    )
    predictor.set_image(np.zeros((60, 80, 3), dtype=np.uint8))
    return predictor


BAD_PROMPTS: list[tuple[dict[str, Any], str]] = [
    ({"point_coords": np.array([[10.0, 10.0]])}, "must be given together"),
    ({"point_coords": np.array([10.0, 10.0]), "point_labels": np.array([1])}, r"shape \(N, 2\)"),
    (
        {"point_coords": np.array([[10.0, 10.0]]), "point_labels": np.array([1, 0])},
        "point_labels must have shape",
    ),
    (
        {"point_coords": np.array([[10.0, 10.0]]), "point_labels": np.array([2])},
        "must be 1 .positive., 0",
    ),
    ({"point_coords": np.array([[np.nan, 10.0]]), "point_labels": np.array([1])}, "NaN"),
    (
        {"point_coords": np.array([[90.0, 10.0]]), "point_labels": np.array([1])},
        r"point 0 at \(x=90, y=10\) lies outside",
    ),
    (
        {
            "point_coords": np.array([[0.5, 1.5]]),
            "point_labels": np.array([1]),
            "normalize_coords": False,
        },
        r"outside \[0, 1\]",
    ),
    ({"box": np.array([50.0, 10.0, 20.0, 40.0])}, "x1 < x0"),
    ({"box": np.array([1.0, 2.0, 3.0])}, r"shape \(4,\)"),
    ({"box": np.array([0.0, 0.0, 81.0, 40.0])}, "outside the image"),
    (
        {"mask_input": np.zeros((1, 32, 32))},
        r"mask_input must be low-resolution logits of shape \(1, 64, 64\)",
    ),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_PROMPTS, ids=[m for _, m in BAD_PROMPTS])
def test_bad_prompts_raise_clear_errors(
    small_predictor: SAM2ImagePredictor, kwargs: dict[str, Any], message: str
) -> None:
    """Each malformed prompt raises ValueError naming the problem (never a torch traceback)."""
    with pytest.raises(ValueError, match=message):
        small_predictor.predict(**kwargs)


BAD_IMAGES: list[tuple[Any, type[Exception], str]] = [
    (np.zeros((0, 10, 3), dtype=np.uint8), ValueError, "empty"),
    (np.zeros((4, 10, 10, 3), dtype=np.uint8), ValueError, "pass one 2D plane"),
    (np.zeros((10, 10, 5), dtype=np.uint8), ValueError, r"\(H, W, 3\)"),
    (np.full((10, 10), np.nan, dtype=np.float32), ValueError, "NaN"),
    (np.array([[1, 2], [3, np.nan]], dtype=np.float32), ValueError, "NaN"),
    ("image.png", TypeError, "numpy array or a PIL image"),
    (np.zeros((10, 10), dtype=object), TypeError, "unsupported image dtype"),
]


@pytest.mark.parametrize(("image", "error", "message"), BAD_IMAGES, ids=[m for *_, m in BAD_IMAGES])
def test_bad_images_raise_clear_errors(
    small_predictor: SAM2ImagePredictor, image: Any, error: type[Exception], message: str
) -> None:
    """Empty, stacked, oddly-channelled, NaN or non-array images are refused with a clear error."""
    with pytest.raises(error, match=message):
        small_predictor.set_image(image)


def test_predict_before_set_image() -> None:
    """Predicting without an image says to call set_image first."""
    predictor = SAM2ImagePredictor(
        build_sam2("tiny", device="cpu", hydra_overrides_extra=["++model.image_size=256"])
    )
    with pytest.raises(RuntimeError, match="call set_image"):
        predictor.predict(point_coords=np.array([[1.0, 1.0]]), point_labels=np.array([1]))
    with pytest.raises(RuntimeError, match="call set_image"):
        predictor.get_image_embedding()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float32, np.float64, np.bool_])
def test_microscopy_dtypes_and_grayscale(dtype: type) -> None:
    """Grayscale images of common microscopy dtypes embed and predict at their own size."""
    predictor = SAM2ImagePredictor(
        build_sam2("tiny", device="cpu", hydra_overrides_extra=["++model.image_size=256"])
    )
    rng = np.random.default_rng(0)
    image = (rng.random((50, 70)) * (1 if dtype in (np.float32, np.float64) else 200)).astype(dtype)
    predictor.set_image(image)
    masks, ious, low_res = predictor.predict(
        point_coords=np.array([[35.0, 25.0]]), point_labels=np.array([1])
    )
    assert (
        masks.shape == (3, 50, 70)
        and masks.dtype == np.float32
        and set(np.unique(masks)) <= {0.0, 1.0}
    )
    assert ious.shape == (3,) and low_res.shape == (3, 64, 64)


def test_contrast_limits_change_the_embedding() -> None:
    """Explicit contrast limits are used instead of robust percentiles for 16-bit data."""
    predictor = SAM2ImagePredictor(
        build_sam2("tiny", device="cpu", hydra_overrides_extra=["++model.image_size=256"])
    )
    image = _microscopy((64, 64))
    predictor.set_image(image)
    auto = predictor.get_image_embedding().clone()
    predictor.set_image(image, contrast_limits=(0, 65535))
    assert not torch.allclose(auto, predictor.get_image_embedding())
    predictor.set_image(image, contrast_limits=choose_limits(image))
    torch.testing.assert_close(auto, predictor.get_image_embedding())
    with pytest.raises(ValueError, match="low < high"):
        predictor.set_image(image, contrast_limits=(5, 5))
