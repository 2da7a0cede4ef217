"""Precision modes: fp32 stays bit for bit, bf16 gives the same masks, attention paths agree."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data as skdata

from sam2.build_sam import build_sam2
from sam2.modeling.attention import Attention
from sam2.modeling.hiera import MultiScaleAttention
from sam2.modeling.sam2_model import SAM2Model
from sam2.precision import autocast_context, check_precision, prefer_explicit_attention
from sam2.sam2_image_predictor import SAM2ImagePredictor
from sam2.transforms import preprocess, to_model_coords

SIZE = 512  # model input size: a quarter of the default's pixels keeps these tests quick
# bf16 vs fp32 mask IoU on this random-weight tiny model, coffee photo, 20 clicks, measured on
# a 2-core Xeon with AMX: seed 0 min 0.976 / mean 0.995 (multimask), 0.999 / 0.999 (single);
# seed 1 min 0.954 / mean 0.989. Random weights give flatter logits than trained ones, so
# more pixels sit near the threshold; the bounds leave room for other bf16 matmul kernels.
MIN_IOU = 0.90
MEAN_IOU = 0.98


@pytest.fixture(scope="module")
def model() -> SAM2Model:
    torch.manual_seed(0)
    return build_sam2("tiny", device="cpu", hydra_overrides_extra=[f"++model.image_size={SIZE}"])


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return skdata.coffee()  # (400, 600, 3) uint8


def _clicks(image: np.ndarray, n: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    h, w = image.shape[:2]
    xy = np.random.default_rng(0).uniform(0.05, 0.95, size=(n, 2)) * [w, h]
    for point in xy.astype(np.float32):
        yield point[None], np.array([1], dtype=np.int32)


def _mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # (C, H, W) 0/1 -> (C,)
    fa, fb = a > 0, b > 0
    inter = (fa & fb).sum(axis=(1, 2))
    union = (fa | fb).sum(axis=(1, 2))
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def test_fp32_is_the_default_and_unchanged(model: SAM2Model, photo: np.ndarray) -> None:
    """The default predictor gives exactly the plain model calls' numbers (no autocast)."""
    predictor = SAM2ImagePredictor(model)
    assert predictor.precision == "fp32"
    predictor.set_image(photo)
    point, label = next(_clicks(photo, 1))
    masks, ious, low_res = predictor.predict(point_coords=point, point_labels=label)

    with torch.inference_mode():
        feats = model.encode_image(preprocess(photo, SIZE)[None])
        embed = feats.vision_features + model.no_mem_embed.reshape(1, -1, 1, 1)
        coords = to_model_coords(torch.from_numpy(point)[None], (400, 600), SIZE)
        sparse, dense = model.sam_prompt_encoder(
            points=(coords, torch.from_numpy(label)[None]), boxes=None, masks=None
        )
        expected, expected_ious, _, _ = model.sam_mask_decoder(
            embed,
            model.sam_prompt_encoder.get_dense_pe(),
            sparse,
            dense,
            multimask_output=True,
            repeat_image=False,
            high_res_features=feats.high_res_features,
        )
        upsampled = F.interpolate(expected, size=(400, 600), mode="bilinear", align_corners=False)
    assert torch.equal(predictor.get_image_embedding(), embed)
    np.testing.assert_array_equal(low_res, expected[0].clamp(-32, 32).numpy())
    np.testing.assert_array_equal(ious, expected_ious[0].numpy())
    np.testing.assert_array_equal(masks, (upsampled[0] > 0).float().numpy())


def test_bf16_masks_agree_with_fp32(model: SAM2Model, photo: np.ndarray) -> None:
    """bf16 masks overlap the fp32 ones (IoU bounds measured above), single and multimask."""
    fp32 = SAM2ImagePredictor(model)
    bf16 = SAM2ImagePredictor(model, precision="bf16")
    fp32.set_image(photo)
    bf16.set_image(photo)
    ious: list[float] = []
    for point, label in _clicks(photo, 10):
        for multimask in (True, False):
            ref, _, _ = fp32.predict(point, label, multimask_output=multimask)
            out, _, _ = bf16.predict(point, label, multimask_output=multimask)
            ious.extend(_mask_iou(ref, out))
    assert min(ious) >= MIN_IOU, sorted(ious)[:5]
    assert float(np.mean(ious)) >= MEAN_IOU, float(np.mean(ious))


def test_bf16_returns_float32_and_leaves_the_model_alone(
    model: SAM2Model, photo: np.ndarray
) -> None:
    """Users get float32 arrays and embedding; the shared model keeps its float32 weights."""
    before = [p.clone() for p in model.parameters()]
    predictor = SAM2ImagePredictor(model, precision="bf16")
    predictor.set_image(photo)
    point, label = next(_clicks(photo, 1))
    for return_logits in (False, True):
        out = predictor.predict(point_coords=point, point_labels=label, return_logits=return_logits)
        assert [a.dtype for a in out] == [np.float32] * 3
    assert predictor.get_image_embedding().dtype == torch.float32
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_explicit_and_fused_attention_agree_in_fp32(model: SAM2Model, photo: np.ndarray) -> None:
    """Switching every attention block to the explicit path changes only float rounding."""
    blocks = [m for m in model.modules() if isinstance(m, (Attention, MultiScaleAttention))]
    predictor = SAM2ImagePredictor(model)
    point, label = next(_clicks(photo, 1))
    predictor.set_image(photo)
    fused_embed = predictor.get_image_embedding().clone()
    fused = predictor.predict(point_coords=point, point_labels=label, return_logits=True)
    try:
        assert prefer_explicit_attention(model) == len(blocks)
        assert not any(b.use_sdpa for b in blocks)
        predictor.set_image(photo)
        explicit_embed = predictor.get_image_embedding()
        explicit = predictor.predict(point_coords=point, point_labels=label, return_logits=True)
    finally:
        prefer_explicit_attention(model, enabled=False)
    assert all(b.use_sdpa for b in blocks)
    torch.testing.assert_close(explicit_embed, fused_embed, atol=1e-4, rtol=1e-4)
    for ours, theirs in zip(explicit, fused):
        scale = max(1.0, float(np.abs(theirs).max()))
        np.testing.assert_allclose(ours, theirs, atol=1e-4 * scale, rtol=1e-4)


def test_autocast_context_casts_only_in_bf16() -> None:
    """fp32 is a null context; bf16 makes a Linear compute in bfloat16 on the CPU."""
    layer, x = torch.nn.Linear(4, 4), torch.randn(2, 4)
    with autocast_context("fp32", "cpu"):
        assert layer(x).dtype == torch.float32
    with autocast_context("bf16", torch.device("cpu")):
        assert layer(x).dtype == torch.bfloat16
    assert layer(x).dtype == torch.float32


def test_bad_precision_is_explained(model: SAM2Model) -> None:
    """An unknown precision, or bf16 on a device without autocast, names what works."""
    with pytest.raises(ValueError, match=r"one of 'auto', 'fp32', 'bf16', got 'fp16'"):
        SAM2ImagePredictor(model, precision="fp16")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"not on 'mps'; use precision='fp32'"):
        check_precision("bf16", "mps")
    assert check_precision("bf16", "cpu") == "bf16"


def test_from_pretrained_passes_precision(
    model: SAM2Model, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``precision`` given to from_pretrained reaches the predictor, not only the builder."""
    monkeypatch.setattr("sam2.build_sam.build_sam2_hf", lambda model_id, **kwargs: model)
    predictor = SAM2ImagePredictor.from_pretrained("facebook/sam2.1-hiera-tiny", precision="bf16")
    assert predictor.precision == "bf16"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bf16_autocast_on_cuda(photo: np.ndarray) -> None:
    """On CUDA bf16 runs under CUDA autocast and still returns float32 arrays."""
    torch.manual_seed(0)
    gpu_model = build_sam2(
        "tiny", device="cuda", hydra_overrides_extra=[f"++model.image_size={SIZE}"]
    )
    fp32 = SAM2ImagePredictor(gpu_model)
    bf16 = SAM2ImagePredictor(gpu_model, precision="bf16")
    fp32.set_image(photo)
    bf16.set_image(photo)
    point, label = next(_clicks(photo, 1))
    ref = fp32.predict(point_coords=point, point_labels=label)[0]
    out = bf16.predict(point_coords=point, point_labels=label)[0]
    assert out.dtype == np.float32
    assert _mask_iou(ref, out).min() >= MIN_IOU


def test_precision_names_import_without_torch() -> None:
    """``sam2.precision`` gives Precision and PRECISIONS in a process that never loads torch."""
    code = (
        "import sys; import sam2.precision as p; "
        "assert 'torch' not in sys.modules, 'torch was imported'; "
        "assert p.PRECISIONS == ('fp32', 'bf16'), p.PRECISIONS; "
        "assert p.check_precision('bf16') == 'bf16'; "
        "assert 'torch' not in sys.modules, 'check_precision imported torch'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
