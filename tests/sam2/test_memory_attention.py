"""Memory attention: released-config parity with the reference, dtype handling, key layout."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from sam2.modeling.attention import Attention, RoPEAttention
from sam2.modeling.memory_attention import MemoryAttention, MemoryAttentionLayer
from tests.oracle.harness import Oracle
from tests.oracle.modules import assert_matches, randomize_, reference_forward

_SELF_KW: dict[str, Any] = {
    "embedding_dim": 256,
    "num_heads": 1,
    "downsample_rate": 1,
    "dropout": 0.1,
    "rope_theta": 10000.0,
    "feat_sizes": [64, 64],
}
_CROSS_KW: dict[str, Any] = {**_SELF_KW, "rope_k_repeat": True, "kv_in_dim": 64}
_LAYER_KW: dict[str, Any] = {
    "activation": "relu",
    "dim_feedforward": 2048,
    "dropout": 0.1,
    "pos_enc_at_attn": False,
    "pos_enc_at_cross_attn_keys": True,
    "pos_enc_at_cross_attn_queries": False,
    "d_model": 256,
}
_REF_ATTN = "sam2.modeling.sam.transformer.RoPEAttention"
REFERENCE_KWARGS: dict[str, Any] = {
    "d_model": 256,
    "pos_enc_at_input": True,
    "num_layers": 4,
    "layer": {
        "__module__": "sam2.modeling.memory_attention.MemoryAttentionLayer",
        "kwargs": {
            **_LAYER_KW,
            "self_attention": {"__module__": _REF_ATTN, "kwargs": _SELF_KW},
            "cross_attention": {"__module__": _REF_ATTN, "kwargs": _CROSS_KW},
        },
    },
}


def build_released(num_layers: int = 4) -> MemoryAttention:
    """Our memory attention with the released models' settings."""
    cross_kw = {**_CROSS_KW, "feat_sizes": (64, 64)}
    self_kw = {**_SELF_KW, "feat_sizes": (64, 64)}
    layer = MemoryAttentionLayer(
        **_LAYER_KW,
        self_attention=RoPEAttention(**self_kw),
        cross_attention=RoPEAttention(**cross_kw),
    )
    return MemoryAttention(d_model=256, pos_enc_at_input=True, layer=layer, num_layers=num_layers)


def _inputs(side: int, n_mem: int, n_ptr: int, batch: int, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    n_mem_tokens = n_mem * side * side + n_ptr
    return {
        "curr": torch.randn(side * side, batch, 256, generator=gen),  # (L, B, C)
        "memory": torch.randn(n_mem_tokens, batch, 64, generator=gen),  # (M, B, 64)
        "curr_pos": torch.randn(side * side, batch, 256, generator=gen),
        "memory_pos": torch.randn(n_mem_tokens, batch, 64, generator=gen),
    }


def test_state_dict_keys_and_shapes_match_checkpoint() -> None:
    """Keys and shapes equal the checkpoint's ``memory_attention.*`` entries, nothing more."""
    per_layer = {
        **{
            f"{attn}.{proj}.{kind}": shape
            for attn, kv_in in (("self_attn", 256), ("cross_attn_image", 64))
            for proj, w_shape in (
                ("q_proj", (256, 256)),
                ("k_proj", (256, kv_in)),
                ("v_proj", (256, kv_in)),
                ("out_proj", (256, 256)),
            )
            for kind, shape in (("weight", w_shape), ("bias", (256,)))
        },
        "linear1.weight": (2048, 256),
        "linear1.bias": (2048,),
        "linear2.weight": (256, 2048),
        "linear2.bias": (256,),
        **{f"norm{i}.{kind}": (256,) for i in (1, 2, 3) for kind in ("weight", "bias")},
    }
    expected = {f"layers.{l}.{k}": s for l in range(4) for k, s in per_layer.items()}
    expected.update({"norm.weight": (256,), "norm.bias": (256,)})
    ours = {k: tuple(v.shape) for k, v in build_released().state_dict().items()}
    assert ours == expected


def test_layers_are_independent_copies() -> None:
    """Each layer owns its parameters: changing one leaves the others (and the template) alone."""
    template = build_released(num_layers=1).layers[0]
    stack = MemoryAttention(256, True, template, num_layers=2)
    params = dict(stack.named_parameters())
    with torch.no_grad():
        params["layers.0.linear1.weight"].zero_()
    assert params["layers.1.linear1.weight"].abs().sum() > 0
    assert dict(template.named_parameters())["linear1.weight"].abs().sum() > 0


@pytest.mark.oracle
@pytest.mark.parametrize(
    ("side", "n_mem", "n_ptr", "batch"),
    [(64, 2, 8, 1), (32, 3, 0, 1), (32, 1, 4, 2)],
    ids=["64x64-2mem-8ptr", "32x32-3mem-noptr", "32x32-batch2"],
)
def test_matches_reference(oracle: Oracle, side: int, n_mem: int, n_ptr: int, batch: int) -> None:
    """Released 4-layer stack equals the reference, with pointer tokens excluded from RoPE."""
    model = randomize_(build_released(), seed=side + n_mem).eval()
    args = _inputs(side, n_mem, n_ptr, batch, seed=n_ptr)
    ref = reference_forward(
        oracle,
        model,
        "sam2.modeling.memory_attention.MemoryAttention",
        REFERENCE_KWARGS,
        args,
        call_kwargs={"num_obj_ptr_tokens": n_ptr},
    )
    with torch.no_grad():
        ours = model(**args, num_obj_ptr_tokens=n_ptr)
    assert ours.shape == (side * side, batch, 256)
    assert_matches(ours, ref["out"])


@pytest.mark.parametrize("n_ptr", [0, 4])
def test_bf16_memory_is_upcast_to_compute_dtype(n_ptr: int) -> None:
    """bf16 memory with fp32 curr runs (even without pointers) and equals its fp32 upcast."""
    model = randomize_(build_released(num_layers=2)).eval()
    args = _inputs(16, 2, n_ptr, 1, seed=3)
    mem_bf16 = args["memory"].bfloat16()
    pos_bf16 = args["memory_pos"].bfloat16()
    with torch.no_grad():
        from_bf16 = model(args["curr"], mem_bf16, args["curr_pos"], pos_bf16, n_ptr)
        from_fp32 = model(args["curr"], mem_bf16.float(), args["curr_pos"], pos_bf16.float(), n_ptr)
    assert from_bf16.dtype == torch.float32
    torch.testing.assert_close(from_bf16, from_fp32, atol=0.0, rtol=0.0)


def test_list_inputs_and_dropout_only_in_training() -> None:
    """One-element lists work like tensors; eval is deterministic while training drops out."""
    model = randomize_(build_released(num_layers=1)).eval()
    args = _inputs(8, 1, 0, 1, seed=5)
    with torch.no_grad():
        plain = model(**args)
        listed = model([args["curr"]], args["memory"], [args["curr_pos"]], args["memory_pos"])
        torch.testing.assert_close(listed, plain, atol=0.0, rtol=0.0)
        model.train()
        assert not torch.equal(model(**args), plain)


def test_bad_inputs_are_rejected() -> None:
    """Batch mismatches (curr batch 1 is shared by all memories, any other must match),
    unknown activations and pointer tokens without RoPE raise ValueError."""
    model = build_released(num_layers=1).eval()
    args = _inputs(8, 1, 0, 2, seed=0)  # curr (64, 2, 256)
    with pytest.raises(ValueError, match="same batch size"):
        model(args["curr"], torch.randn(64, 3, 64))
    with pytest.raises(ValueError, match="activation must be one of"):
        MemoryAttentionLayer("tanh", nn_identity(), 256, 8, 0.0, False, True, False, nn_identity())
    plain_layer = MemoryAttentionLayer(
        "relu", Attention(256, 1, kv_in_dim=64), 256, 8, 0.0, False, True, False, Attention(256, 1)
    )
    with pytest.raises(ValueError, match="needs a RoPEAttention"):
        plain_layer(torch.randn(1, 4, 256), torch.randn(1, 6, 64), num_k_exclude_rope=2)


def nn_identity() -> torch.nn.Module:
    """A stand-in attention for constructor-only checks."""
    return torch.nn.Identity()
