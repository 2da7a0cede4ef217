"""Two-way transformer and mask decoder: key layout, output selection; parity with the reference."""

from __future__ import annotations

import itertools
import json
from typing import Any, cast

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from sam2.modeling.common import MLP
from sam2.modeling.mask_decoder import MaskDecoder
from sam2.modeling.two_way_transformer import TwoWayTransformer
from tests.oracle.harness import Oracle
from tests.oracle.modules import assert_matches, randomize_, reference_forward

TRANSFORMER: dict[str, Any] = {"depth": 2, "embedding_dim": 256, "num_heads": 8, "mlp_dim": 2048}
RELEASED: dict[str, Any] = {
    "transformer_dim": 256,
    "use_high_res_features": True,
    "iou_prediction_use_sigmoid": True,
    "pred_obj_scores": True,
    "pred_obj_scores_mlp": True,
    "use_multimask_token_for_obj_ptr": True,
    "dynamic_multimask_via_stability": True,
    "dynamic_multimask_stability_delta": 0.05,
    "dynamic_multimask_stability_thresh": 0.98,
}
VARIANTS: dict[str, dict[str, Any]] = {
    "released": RELEASED,
    # SAM-1-like: no high-res path, raw IoU, no object score, plain single-mask output.
    "plain": {"transformer_dim": 256},
    # Object score from a single Linear layer instead of an MLP.
    "linear_obj_score": {"transformer_dim": 256, "pred_obj_scores": True},
}


def _block_shapes(prefix: str) -> dict[str, list[int]]:
    """Keys and shapes of one two-way block under ``prefix``."""
    shapes: dict[str, list[int]] = {}
    for name, inner in (
        ("self_attn", 256),
        ("cross_attn_token_to_image", 128),
        ("cross_attn_image_to_token", 128),
    ):
        shapes.update(_attn_shapes(f"{prefix}{name}.", inner))
    shapes.update(
        {
            f"{prefix}mlp.layers.0.weight": [2048, 256],
            f"{prefix}mlp.layers.0.bias": [2048],
            f"{prefix}mlp.layers.1.weight": [256, 2048],
            f"{prefix}mlp.layers.1.bias": [256],
        }
    )
    for i in range(1, 5):
        shapes.update({f"{prefix}norm{i}.weight": [256], f"{prefix}norm{i}.bias": [256]})
    return shapes


def _attn_shapes(prefix: str, inner: int) -> dict[str, list[int]]:
    shapes = {f"{prefix}{p}_proj.weight": [inner, 256] for p in "qkv"}
    shapes.update({f"{prefix}{p}_proj.bias": [inner] for p in "qkv"})
    shapes.update({f"{prefix}out_proj.weight": [256, inner], f"{prefix}out_proj.bias": [256]})
    return shapes


def _mlp_shapes(prefix: str, dims: list[int]) -> dict[str, list[int]]:
    shapes: dict[str, list[int]] = {}
    for i, (d_in, d_out) in enumerate(itertools.pairwise(dims)):
        shapes.update(
            {f"{prefix}layers.{i}.weight": [d_out, d_in], f"{prefix}layers.{i}.bias": [d_out]}
        )
    return shapes


def _expected_decoder_shapes() -> dict[str, list[int]]:
    """``sam_mask_decoder.*`` of every released checkpoint (spec §2.4 / Appendix A), no prefix."""
    shapes = {**_block_shapes("transformer.layers.0."), **_block_shapes("transformer.layers.1.")}
    shapes.update(_attn_shapes("transformer.final_attn_token_to_image.", 128))
    shapes.update(
        {
            "transformer.norm_final_attn.weight": [256],
            "transformer.norm_final_attn.bias": [256],
            "iou_token.weight": [1, 256],
            "mask_tokens.weight": [4, 256],
            "obj_score_token.weight": [1, 256],
            "output_upscaling.0.weight": [256, 64, 2, 2],
            "output_upscaling.0.bias": [64],
            "output_upscaling.1.weight": [64],
            "output_upscaling.1.bias": [64],
            "output_upscaling.3.weight": [64, 32, 2, 2],
            "output_upscaling.3.bias": [32],
            "conv_s0.weight": [32, 256, 1, 1],
            "conv_s0.bias": [32],
            "conv_s1.weight": [64, 256, 1, 1],
            "conv_s1.bias": [64],
        }
    )
    for i in range(4):
        shapes.update(_mlp_shapes(f"output_hypernetworks_mlps.{i}.", [256, 256, 256, 32]))
    shapes.update(_mlp_shapes("iou_prediction_head.", [256, 256, 256, 4]))
    shapes.update(_mlp_shapes("pred_obj_score_head.", [256, 256, 256, 1]))
    return shapes


def _decoder(variant: str = "released", seed: int = 0) -> MaskDecoder:
    decoder = MaskDecoder(transformer=TwoWayTransformer(**TRANSFORMER), **VARIANTS[variant])
    randomize_(decoder, seed, scale=0.1)
    return decoder.eval()


def _inputs(
    batch: int, side: int, n_prompts: int, image_batch: int, high_res: bool, seed: int
) -> dict[str, Tensor]:
    """Random decoder inputs for an (side × side) embedding; masks come out at 4·side."""
    gen = torch.Generator().manual_seed(seed)
    inputs = {
        "image_embeddings": torch.randn(image_batch, 256, side, side, generator=gen),
        "image_pe": torch.randn(1, 256, side, side, generator=gen),
        "sparse": torch.randn(batch, n_prompts, 256, generator=gen),
        "dense": torch.randn(batch, 256, side, side, generator=gen),
    }
    if high_res:
        inputs["feat_s0"] = torch.randn(batch, 32, 4 * side, 4 * side, generator=gen)
        inputs["feat_s1"] = torch.randn(batch, 64, 2 * side, 2 * side, generator=gen)
    return inputs


def _ours(
    decoder: MaskDecoder, inputs: dict[str, Tensor], multimask: bool, repeat: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    high_res = [inputs["feat_s0"], inputs["feat_s1"]] if "feat_s0" in inputs else None
    with torch.no_grad():
        return decoder(
            inputs["image_embeddings"],
            inputs["image_pe"],
            inputs["sparse"],
            inputs["dense"],
            multimask_output=multimask,
            repeat_image=repeat,
            high_res_features=high_res,
        )


def _reference(
    oracle: Oracle,
    decoder: MaskDecoder,
    variant: str,
    inputs: dict[str, Tensor],
    multimask: bool,
    repeat: bool,
) -> dict[str, np.ndarray]:
    arrays = {f"sd.{k}": v.numpy() for k, v in decoder.state_dict().items()}
    arrays.update({k: v.numpy() for k, v in inputs.items()})
    return oracle.call(
        "sam_heads:mask_decoder",
        arrays,
        decoder_kwargs=VARIANTS[variant],
        transformer_kwargs=TRANSFORMER,
        multimask_output=multimask,
        repeat_image=repeat,
    )


def _assert_outputs_match(ours: tuple[Tensor, ...], ref: dict[str, np.ndarray]) -> None:
    for tensor, name in zip(ours, ("masks", "iou", "tokens", "obj")):
        assert_matches(tensor, ref[name])


def test_state_dict_matches_checkpoint_layout() -> None:
    """Keys and shapes equal the checkpoint's ``sam_mask_decoder.*`` entries, nothing more."""
    decoder = MaskDecoder(transformer=TwoWayTransformer(**TRANSFORMER), **RELEASED)
    got = {k: list(v.shape) for k, v in decoder.state_dict().items()}
    assert got == _expected_decoder_shapes()


@pytest.mark.parametrize(("multimask", "k", "k_tokens"), [(True, 3, 3), (False, 1, 1)])
def test_output_shapes(multimask: bool, k: int, k_tokens: int) -> None:
    """Masks (B, K, 4h, 4w), IoU (B, K), tokens (B, K', C), object score (B, 1)."""
    inputs = _inputs(batch=2, side=8, n_prompts=3, image_batch=1, high_res=True, seed=0)
    masks, iou, tokens, obj = _ours(_decoder(), inputs, multimask, repeat=True)
    assert masks.shape == (2, k, 32, 32)
    assert iou.shape == (2, k)
    assert tokens.shape == (2, k_tokens, 256)
    assert obj.shape == (2, 1)


def test_bad_inputs_raise() -> None:
    """Mismatched image batch or missing high-res features raise a ValueError saying why."""
    inputs = _inputs(batch=2, side=8, n_prompts=3, image_batch=1, high_res=True, seed=0)
    decoder = _decoder()
    with pytest.raises(ValueError, match="pass repeat_image=True"):
        _ours(decoder, inputs, multimask=False, repeat=False)
    del inputs["feat_s0"], inputs["feat_s1"]
    with pytest.raises(ValueError, match="use_high_res_features=True"):
        _ours(decoder, inputs, multimask=False, repeat=True)


@pytest.mark.oracle
@pytest.mark.parametrize("side", [64, 32])
def test_two_way_transformer_matches_reference(oracle: Oracle, side: int) -> None:
    """Both outputs (tokens, image) equal the reference's on random tokens and embeddings."""
    transformer = TwoWayTransformer(**TRANSFORMER)
    randomize_(transformer, seed=side)
    gen = torch.Generator().manual_seed(side)
    args = {
        "image_embedding": torch.randn(2, 256, side, side, generator=gen),
        "image_pe": torch.randn(2, 256, side, side, generator=gen),
        "point_embedding": torch.randn(2, 9, 256, generator=gen),
    }
    ref = reference_forward(
        oracle, transformer, "sam2.modeling.sam.transformer.TwoWayTransformer", TRANSFORMER, args
    )
    with torch.no_grad():
        queries, keys = transformer.eval()(*args.values())
    assert_matches(queries, ref["out.0"])
    assert_matches(keys, ref["out.1"])


DECODER_CASES = {
    # name: (variant, batch, image_batch, repeat_image, multimask_output, high_res)
    "multimask": ("released", 2, 2, False, True, True),
    "single_mask": ("released", 2, 2, False, False, True),
    "repeat_image": ("released", 3, 1, True, True, True),
    "repeat_image_single": ("released", 3, 1, True, False, True),
    "plain_multimask": ("plain", 2, 1, True, True, False),
    "plain_single": ("plain", 2, 2, False, False, False),
    "linear_obj_score": ("linear_obj_score", 2, 1, True, False, False),
}


@pytest.mark.oracle
@pytest.mark.parametrize("case", list(DECODER_CASES))
def test_mask_decoder_matches_reference(oracle: Oracle, case: str) -> None:
    """Masks, IoU, SAM tokens and object-score logits equal the reference's."""
    variant, batch, image_batch, repeat, multimask, high_res = DECODER_CASES[case]
    decoder = _decoder(variant, seed=len(case))
    inputs = _inputs(batch, 16, 4, image_batch, high_res, seed=len(case))
    ref = _reference(oracle, decoder, variant, inputs, multimask, repeat)
    _assert_outputs_match(_ours(decoder, inputs, multimask, repeat), ref)


@pytest.mark.oracle
def test_mask_decoder_full_size_matches_reference(oracle: Oracle) -> None:
    """At the released 64×64 embedding (256×256 masks, 256²/128² high-res features) too."""
    decoder = _decoder(seed=64)
    inputs = _inputs(batch=1, side=64, n_prompts=3, image_batch=1, high_res=True, seed=64)
    ref = _reference(oracle, decoder, "released", inputs, multimask=True, repeat=False)
    _assert_outputs_match(_ours(decoder, inputs, multimask=True, repeat=False), ref)


def _straddling_scale(decoder: MaskDecoder, inputs: dict[str, Tensor]) -> float:
    """A gain for mask token 0's logits that leaves some prompt sets stable and others not.

    Token 0's logits are linear in the last layer of its hypernetwork, so scaling that layer
    by ``g`` scales the logits by ``g``: search ``g`` where the 0.98 threshold splits the batch
    with a clear margin on both sides.
    """
    high_res = [inputs["feat_s0"], inputs["feat_s1"]]
    with torch.no_grad():
        logits = decoder.predict_masks(
            inputs["image_embeddings"],
            inputs["image_pe"],
            inputs["sparse"],
            inputs["dense"],
            repeat_image=False,
            high_res_features=high_res,
        )[0][:, 0]
    best, best_margin = 0.0, 0.0
    for gain in torch.logspace(-3, 1, 200).tolist():
        score = decoder._get_stability_scores(logits * gain)  # (B,)
        stable = score >= 0.98
        if stable.all() or not stable.any():
            continue
        margin = float((score - 0.98).abs().min())
        if margin > best_margin:
            best, best_margin = gain, margin
    if best_margin < 1e-3:
        raise AssertionError(f"no gain splits the batch clearly (best margin {best_margin})")
    return best


@pytest.mark.oracle
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dynamic_multimask_fallback_matches_reference(oracle: Oracle, seed: int) -> None:
    """Single-mask requests: stable sets keep token 0, unstable ones take the best multimask."""
    decoder = _decoder(seed=seed)
    inputs = _inputs(batch=6, side=16, n_prompts=2, image_batch=6, high_res=True, seed=seed)
    gain = _straddling_scale(decoder, inputs)
    last = cast(nn.Linear, cast(MLP, decoder.output_hypernetworks_mlps[0]).layers[-1])
    with torch.no_grad():
        last.weight.mul_(gain)
        last.bias.mul_(gain)

    ref = _reference(oracle, decoder, "released", inputs, multimask=False, repeat=False)
    stable = torch.from_numpy(ref["stability"]) >= 0.98  # (B,)
    assert stable.any() and not stable.all(), "the fallback must trigger for some sets only"
    ours = _ours(decoder, inputs, multimask=False, repeat=False)
    _assert_outputs_match(ours, ref)

    with torch.no_grad():
        masks, ious, tokens, _ = decoder.predict_masks(
            inputs["image_embeddings"],
            inputs["image_pe"],
            inputs["sparse"],
            inputs["dense"],
            repeat_image=False,
            high_res_features=[inputs["feat_s0"], inputs["feat_s1"]],
        )
    best = 1 + ious[:, 1:].argmax(dim=-1)
    for b in range(len(stable)):
        assert torch.equal(ours[0][b, 0], masks[b, 0 if stable[b] else int(best[b])])
    assert torch.equal(ours[2], tokens[:, 0:1]), "the pointer token stays token 0"


@pytest.mark.oracle
def test_state_dict_matches_reference(oracle: Oracle) -> None:
    """A freshly built reference decoder (released settings) has our keys and shapes."""
    ref = oracle.call(
        "sam_heads:state_dict_shapes",
        {},
        encoder_kwargs={
            "embed_dim": 256,
            "image_embedding_size": [64, 64],
            "input_image_size": [1024, 1024],
            "mask_in_chans": 16,
        },
        decoder_kwargs=RELEASED,
        transformer_kwargs=TRANSFORMER,
    )
    shapes = json.loads(str(np.asarray(ref["shapes"])))
    prefix = "sam_mask_decoder."
    got = {k[len(prefix) :]: v for k, v in shapes.items() if k.startswith(prefix)}
    assert got == _expected_decoder_shapes()
