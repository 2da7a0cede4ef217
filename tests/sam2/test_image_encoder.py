"""Image encoder: Hiera trunk and FPN neck match the reference on random weights."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

from sam2.modeling.hiera import DropPath, Hiera, window_partition, window_unpartition
from sam2.modeling.image_encoder import FpnNeck, ImageEncoder
from sam2.modeling.position_encoding import PositionEmbeddingSine
from tests.oracle.harness import Oracle
from tests.oracle.modules import assert_matches, randomize_, reference_forward

HIERA = "sam2.modeling.backbones.hieradet.Hiera"
TINY: dict[str, Any] = {
    "embed_dim": 96,
    "num_heads": 1,
    "stages": [1, 2, 7, 2],
    "global_att_blocks": [5, 7, 9],
    "window_pos_embed_bkg_spatial_size": [7, 7],
}
BASE_PLUS: dict[str, Any] = {"embed_dim": 112, "num_heads": 2}
LARGE_STYLE: dict[str, Any] = {
    "embed_dim": 32,
    "num_heads": 2,
    "stages": [1, 1, 2, 1],
    "global_att_blocks": [3],
    "window_pos_embed_bkg_spatial_size": [7, 7],
    "window_spec": [8, 4, 16, 8],
}
NECK: dict[str, Any] = {
    "d_model": 256,
    "backbone_channel_list": [768, 384, 192, 96],
    "fpn_top_down_levels": [2, 3],
    "fpn_interp_model": "nearest",
}


def _trunk(config: dict[str, Any], seed: int = 0) -> Hiera:
    return randomize_(Hiera(**config), seed=seed).eval()  # type: ignore[return-value]


def _check_trunk(oracle: Oracle, config: dict[str, Any], size: int) -> None:
    trunk = _trunk(config)
    image = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    ref = reference_forward(oracle, trunk, HIERA, config, {"x": image})
    with torch.no_grad():
        ours = trunk(image)
    assert len(ours) == 4
    for i, feats in enumerate(ours):
        assert_matches(feats, ref[f"out.{i}"])


def test_window_round_trip_with_padding() -> None:
    """Partition zero-pads bottom/right to whole windows; unpartition restores the map exactly."""
    x = torch.randn(2, 10, 13, 3)
    windows, pad_hw = window_partition(x, 4)
    assert pad_hw == (12, 16)
    assert windows.shape == (2 * 3 * 4, 4, 4, 3)
    # the last window of the first image covers rows 8..11, cols 12..15: only [0:2, 0:1] is real
    last = windows[11]
    torch.testing.assert_close(last[:2, :1], x[0, 8:10, 12:13])
    assert last[2:].abs().sum() == 0 and last[:, 1:].abs().sum() == 0
    torch.testing.assert_close(window_unpartition(windows, 4, pad_hw, (10, 13)), x)


def test_tiny_trunk_layout() -> None:
    """Tiny trunk: per-stage widths, channel list (coarsest first) and output shapes at 256."""
    trunk = Hiera(**TINY).eval()
    assert trunk.channel_list == [768, 384, 192, 96]
    with torch.no_grad():
        outs = trunk(torch.zeros(1, 3, 256, 256))
    assert [tuple(o.shape) for o in outs] == [
        (1, 96, 64, 64),
        (1, 192, 32, 32),
        (1, 384, 16, 16),
        (1, 768, 8, 8),
    ]


def test_tiny_state_dict_shapes() -> None:
    """Trunk and neck keys and shapes follow the tiny checkpoint (spec Appendix A)."""
    encoder = ImageEncoder(Hiera(**TINY), FpnNeck(PositionEmbeddingSine(256), **NECK), scalp=1)
    shapes = {k: list(v.shape) for k, v in encoder.state_dict().items()}
    assert len(shapes) == 4 + 12 * 12 + 3 * 2 + 4 * 2
    assert shapes["trunk.pos_embed"] == [1, 96, 7, 7]
    assert shapes["trunk.pos_embed_window"] == [1, 96, 8, 8]
    assert shapes["trunk.patch_embed.proj.weight"] == [96, 3, 7, 7]
    assert shapes["trunk.blocks.1.attn.qkv.weight"] == [576, 96]
    assert shapes["trunk.blocks.1.norm2.weight"] == [192]
    assert shapes["trunk.blocks.1.proj.weight"] == [192, 96]
    assert shapes["trunk.blocks.10.attn.qkv.weight"] == [2304, 384]
    assert shapes["trunk.blocks.11.mlp.layers.0.weight"] == [3072, 768]
    assert shapes["neck.convs.0.conv.weight"] == [256, 768, 1, 1]
    assert shapes["neck.convs.3.conv.weight"] == [256, 96, 1, 1]
    assert {k for k in shapes if k.endswith(".proj.weight") and ".attn." not in k} == {
        "trunk.patch_embed.proj.weight",
        "trunk.blocks.1.proj.weight",
        "trunk.blocks.3.proj.weight",
        "trunk.blocks.10.proj.weight",
    }


def test_sdpa_and_explicit_paths_agree() -> None:
    """Flipping use_sdpa on every trunk attention changes nothing beyond float rounding."""
    trunk = _trunk(LARGE_STYLE)
    image = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        fused = trunk(image)
        for block in trunk.blocks:
            block.attn.use_sdpa = False  # type: ignore[union-attr]
        explicit = trunk(image)
    for a, b in zip(fused, explicit):
        assert_matches(b, a.numpy())


def test_drop_path_is_identity_at_eval() -> None:
    """DropPath only drops whole samples in training mode, rescaling the kept ones."""
    drop = DropPath(0.5)
    x = torch.ones(64, 3, 2)
    assert drop.eval()(x) is x
    y = drop.train()(x)
    per_sample = y.flatten(1)
    assert set(per_sample.unique().tolist()) <= {0.0, 2.0}
    assert (per_sample == per_sample[:, :1]).all()


def test_bad_arguments_raise() -> None:
    """Mismatched configs raise ValueError naming the problem instead of failing later."""
    with pytest.raises(ValueError, match="one window size per stage"):
        Hiera(stages=(1, 1), window_spec=(8, 4, 14, 7))
    with pytest.raises(ValueError, match="backbone_channel_list"):
        ImageEncoder(Hiera(**TINY), FpnNeck(PositionEmbeddingSine(256), 256, [896, 448, 224, 112]))
    with pytest.raises(ValueError, match="fuse_type"):
        FpnNeck(PositionEmbeddingSine(256), 256, [96], fuse_type="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="multiple of the first window size"):
        Hiera(**LARGE_STYLE)(torch.zeros(1, 3, 100, 100))


@pytest.mark.oracle
def test_tiny_trunk_matches_reference_512(oracle: Oracle) -> None:
    """Tiny trunk at 512: all four stage outputs, with padding 32→42 and 16→21."""
    _check_trunk(oracle, TINY, 512)


@pytest.mark.oracle
def test_tiny_trunk_matches_reference_1024(oracle: Oracle) -> None:
    """Tiny trunk at the model size 1024: padding 64→70 (window 14) and 32→35 (window 7)."""
    _check_trunk(oracle, TINY, 1024)


@pytest.mark.oracle
def test_base_plus_trunk_matches_reference(oracle: Oracle) -> None:
    """Base+ defaults (14×14 background pos-embed, 2 heads) at 256, windows padded."""
    _check_trunk(oracle, BASE_PLUS, 256)


@pytest.mark.oracle
@pytest.mark.parametrize("size", [128, 256])
def test_large_style_windows_match_reference(oracle: Oracle, size: int) -> None:
    """Large-style windows (8, 4, 16, 8) on a few narrow blocks, with and without padding."""
    _check_trunk(oracle, LARGE_STYLE, size)


@pytest.mark.oracle
def test_image_encoder_matches_reference(oracle: Oracle) -> None:
    """Tiny trunk + FPN neck (nearest top-down into levels 2, 3) + scalp 1 at 512."""
    encoder = ImageEncoder(_trunk(TINY), FpnNeck(PositionEmbeddingSine(256), **NECK), scalp=1)
    randomize_(encoder.neck, seed=3)
    encoder.eval()
    image = torch.randn(1, 3, 512, 512, generator=torch.Generator().manual_seed(2))
    ref = reference_forward(
        oracle,
        encoder,
        "sam2.modeling.backbones.image_encoder.ImageEncoder",
        {
            "trunk": {"__module__": HIERA, "kwargs": TINY},
            "neck": {
                "__module__": "sam2.modeling.backbones.image_encoder.FpnNeck",
                "kwargs": {
                    **NECK,
                    "position_encoding": {
                        "__module__": "sam2.modeling.position_encoding.PositionEmbeddingSine",
                        "kwargs": {"num_pos_feats": 256},
                    },
                },
            },
            "scalp": 1,
        },
        {"sample": image},
    )
    with torch.no_grad():
        ours = encoder(image)
    assert len(ours["backbone_fpn"]) == len(ours["vision_pos_enc"]) == 3
    assert_matches(ours["vision_features"], ref["out.vision_features"])
    for i in range(3):
        assert_matches(ours["backbone_fpn"][i], ref[f"out.backbone_fpn.{i}"])
        assert_matches(ours["vision_pos_enc"][i], ref[f"out.vision_pos_enc.{i}"])


@pytest.mark.oracle
def test_state_dict_matches_reference_tiny_model(oracle: Oracle) -> None:
    """Our tiny encoder's keys and shapes equal the reference tiny model's ``image_encoder.*``."""
    spec = oracle.call("build:state_dict_spec", config="configs/sam2.1/sam2.1_hiera_t.yaml")
    names = [str(n) for n in spec["names"]]
    reference = {
        name[len("image_encoder.") :]: shape
        for name, shape in zip(names, json.loads(str(spec["shapes"])))
        if name.startswith("image_encoder.")
    }
    encoder = ImageEncoder(Hiera(**TINY), FpnNeck(PositionEmbeddingSine(256), **NECK), scalp=1)
    assert {k: list(v.shape) for k, v in encoder.state_dict().items()} == reference
