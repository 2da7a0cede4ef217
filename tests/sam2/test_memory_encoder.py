"""Memory encoder and its parts: key layout, parity with the reference, argument checks."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from sam2.modeling.memory_encoder import CXBlock, Fuser, MaskDownSampler, MemoryEncoder
from sam2.modeling.position_encoding import PositionEmbeddingSine
from tests.oracle.harness import Oracle
from tests.oracle.modules import assert_matches, randomize_, reference_forward

_REF = "sam2.modeling.memory_encoder."
_CX_KW: dict[str, Any] = {
    "dim": 256,
    "kernel_size": 7,
    "padding": 3,
    "layer_scale_init_value": 1e-6,
    "use_dwconv": True,
}
REFERENCE_KWARGS: dict[str, Any] = {
    "out_dim": 64,
    "position_encoding": {
        "__module__": "sam2.modeling.position_encoding.PositionEmbeddingSine",
        "kwargs": {"num_pos_feats": 64},
    },
    "mask_downsampler": {
        "__module__": _REF + "MaskDownSampler",
        "kwargs": {"kernel_size": 3, "stride": 2, "padding": 1},
    },
    "fuser": {
        "__module__": _REF + "Fuser",
        "kwargs": {"layer": {"__module__": _REF + "CXBlock", "kwargs": _CX_KW}, "num_layers": 2},
    },
}


def build_released() -> MemoryEncoder:
    """Our memory encoder with the released models' settings."""
    return MemoryEncoder(
        out_dim=64,
        position_encoding=PositionEmbeddingSine(64),
        mask_downsampler=MaskDownSampler(kernel_size=3, stride=2, padding=1),
        fuser=Fuser(CXBlock(**_CX_KW), num_layers=2),
    )


def test_state_dict_keys_and_shapes_match_checkpoint() -> None:
    """Keys and shapes equal the checkpoint's ``memory_encoder.*`` entries, nothing more."""
    expected: dict[str, tuple[int, ...]] = {}
    channels = [1, 4, 16, 64, 256]
    for stage in range(4):
        c_in, c_out = channels[stage], channels[stage + 1]
        conv, norm = (
            f"mask_downsampler.encoder.{3 * stage}",
            f"mask_downsampler.encoder.{3 * stage + 1}",
        )
        expected.update({f"{conv}.weight": (c_out, c_in, 3, 3), f"{conv}.bias": (c_out,)})
        expected.update({f"{norm}.weight": (c_out,), f"{norm}.bias": (c_out,)})
    expected.update(
        {
            "mask_downsampler.encoder.12.weight": (256, 256, 1, 1),
            "mask_downsampler.encoder.12.bias": (256,),
            "pix_feat_proj.weight": (256, 256, 1, 1),
            "pix_feat_proj.bias": (256,),
            "out_proj.weight": (64, 256, 1, 1),
            "out_proj.bias": (64,),
        }
    )
    for i in range(2):
        block = f"fuser.layers.{i}"
        expected.update(
            {
                f"{block}.gamma": (256,),
                f"{block}.dwconv.weight": (256, 1, 7, 7),
                f"{block}.dwconv.bias": (256,),
                f"{block}.norm.weight": (256,),
                f"{block}.norm.bias": (256,),
                f"{block}.pwconv1.weight": (1024, 256),
                f"{block}.pwconv1.bias": (1024,),
                f"{block}.pwconv2.weight": (256, 1024),
                f"{block}.pwconv2.bias": (256,),
            }
        )
    ours = {k: tuple(v.shape) for k, v in build_released().state_dict().items()}
    assert ours == expected


def test_optional_parts_carry_no_keys() -> None:
    """No layer scale means no ``gamma``; Fuser's Identity proj and same-width out_proj add none."""
    assert "gamma" not in CXBlock(8, layer_scale_init_value=0.0).state_dict()
    assert set(Fuser(CXBlock(8), 1).state_dict()) == set(
        "layers.0." + k for k in CXBlock(8).state_dict()
    )
    assert "proj.weight" in Fuser(CXBlock(8), 1, dim=8, input_projection=True).state_dict()
    enc = MemoryEncoder(8, MaskDownSampler(8), Fuser(CXBlock(8), 1), PositionEmbeddingSine(8), 8)
    assert not any(k.startswith("out_proj") for k in enc.state_dict())


@pytest.mark.oracle
@pytest.mark.parametrize(
    ("side", "batch", "skip_sigmoid"),
    [(64, 1, False), (64, 1, True), (32, 2, False)],
    ids=["64-sigmoid", "64-skip-sigmoid", "32-batch2"],
)
def test_matches_reference(oracle: Oracle, side: int, batch: int, skip_sigmoid: bool) -> None:
    """Released memory encoder equals the reference on features and pos encoding."""
    model = randomize_(build_released(), seed=side + batch).eval()
    gen = torch.Generator().manual_seed(side)
    pix_feat = torch.randn(batch, 256, side, side, generator=gen)
    masks = 8 * torch.randn(batch, 1, 16 * side, 16 * side, generator=gen)  # logits-like
    if skip_sigmoid:
        masks = torch.sigmoid(masks) * 20 - 10  # what the video model feeds
    ref = reference_forward(
        oracle,
        model,
        _REF + "MemoryEncoder",
        REFERENCE_KWARGS,
        {"pix_feat": pix_feat, "masks": masks},
        call_kwargs={"skip_mask_sigmoid": skip_sigmoid},
    )
    with torch.no_grad():
        out = model(pix_feat, masks, skip_mask_sigmoid=skip_sigmoid)
    assert out["vision_features"].shape == (batch, 64, side, side)
    assert len(out["vision_pos_enc"]) == 1
    assert_matches(out["vision_features"], ref["out.vision_features"])
    assert_matches(out["vision_pos_enc"][0], ref["out.vision_pos_enc.0"])


@pytest.mark.oracle
def test_default_downsampler_and_projected_fuser_match_reference(oracle: Oracle) -> None:
    """Non-released variants: 4×4 stride-4 downsampler; Fuser with input proj and dense conv."""
    down = randomize_(MaskDownSampler(embed_dim=32), seed=1).eval()
    mask = torch.randn(2, 1, 64, 64)
    ref = reference_forward(oracle, down, _REF + "MaskDownSampler", {"embed_dim": 32}, {"x": mask})
    with torch.no_grad():
        assert_matches(down(mask), ref["out"])

    block_kw: dict[str, Any] = {"dim": 16, "kernel_size": 3, "padding": 1, "use_dwconv": False}
    fuser = randomize_(Fuser(CXBlock(**block_kw), 2, dim=16, input_projection=True), seed=2)
    x = torch.randn(1, 16, 8, 8)
    ref = reference_forward(
        oracle,
        fuser.eval(),
        _REF + "Fuser",
        {
            "layer": {"__module__": _REF + "CXBlock", "kwargs": block_kw},
            "num_layers": 2,
            "dim": 16,
            "input_projection": True,
        },
        {"x": x},
    )
    with torch.no_grad():
        assert_matches(fuser(x), ref["out"])


def test_bad_arguments_are_rejected() -> None:
    """A total stride that is not a power of the stride, or a projection without dim, raise."""
    with pytest.raises(ValueError, match="power of stride"):
        MaskDownSampler(stride=3, total_stride=16)
    with pytest.raises(ValueError, match="needs dim"):
        Fuser(CXBlock(8), 1, input_projection=True)


def test_drop_path_only_in_training() -> None:
    """Stochastic depth leaves eval outputs untouched and drops whole samples in training."""
    torch.manual_seed(0)
    block = randomize_(CXBlock(8, drop_path=0.5))
    x = torch.randn(16, 8, 4, 4)
    with torch.no_grad():
        eval_out = block.eval()(x)
        torch.testing.assert_close(eval_out, randomize_(CXBlock(8))(x))
        train_out = block.train()(x)
    kept = [
        torch.allclose(train_out[i] - x[i], 2 * (eval_out[i] - x[i]), atol=1e-5) for i in range(16)
    ]
    dropped = [torch.equal(train_out[i], x[i]) for i in range(16)]
    assert all(k or d for k, d in zip(kept, dropped))
    assert any(kept) and any(dropped)
