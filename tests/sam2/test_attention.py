"""Attention blocks: fused and explicit paths agree; parity with the reference on random weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sam2.modeling.attention import Attention, RoPEAttention
from tests.oracle.harness import Oracle
from tests.oracle.modules import assert_matches, randomize_, reference_forward


def test_sdpa_and_explicit_paths_agree() -> None:
    """Flipping use_sdpa on one instance changes nothing beyond float rounding."""
    torch.manual_seed(0)
    block = randomize_(Attention(256, 8, downsample_rate=2)).eval()
    q, k = torch.randn(2, 7, 256), torch.randn(2, 50, 256)
    fused = block(q, k, k)
    block.use_sdpa = False  # type: ignore[misc]
    torch.testing.assert_close(block(q, k, k), fused, atol=1e-5, rtol=1e-5)


def test_rope_sdpa_and_explicit_paths_agree() -> None:
    """The RoPE block's two paths agree too, with object-pointer keys excluded from RoPE."""
    torch.manual_seed(0)
    block = randomize_(RoPEAttention(256, 1, kv_in_dim=64, rope_k_repeat=True, feat_sizes=(8, 8)))
    q, k = torch.randn(1, 64, 256), torch.randn(1, 2 * 64 + 8, 64)
    fused = block(q, k, k, num_k_exclude_rope=8)
    block.use_sdpa = False  # type: ignore[misc]
    torch.testing.assert_close(block(q, k, k, num_k_exclude_rope=8), fused, atol=1e-5, rtol=1e-5)


@pytest.mark.oracle
def test_attention_matches_reference(oracle: Oracle) -> None:
    """Two-way-transformer attention (internal dim 128, 8 heads) equals the reference's."""
    block = randomize_(Attention(256, 8, downsample_rate=2)).eval()
    q, k = torch.randn(2, 7, 256), torch.randn(2, 50, 256)
    ref = reference_forward(
        oracle,
        block,
        "sam2.modeling.sam.transformer.Attention",
        {"embedding_dim": 256, "num_heads": 8, "downsample_rate": 2},
        {"q": q, "k": k, "v": k},
    )
    with torch.no_grad():
        assert_matches(block(q, k, k), ref["out"])


@pytest.mark.oracle
@pytest.mark.parametrize(("side", "n_mem", "n_ptr"), [(64, 2, 8), (32, 3, 0), (16, 1, 4)])
def test_rope_cross_attention_matches_reference(
    oracle: Oracle, side: int, n_mem: int, n_ptr: int
) -> None:
    """Memory cross-attention: keys repeated per memory frame, pointer tokens not rotated."""
    block = randomize_(RoPEAttention(256, 1, kv_in_dim=64, rope_k_repeat=True)).eval()
    q = torch.randn(1, side * side, 256)
    k = torch.randn(1, n_mem * side * side + n_ptr, 64)
    v = torch.randn_like(k)
    ref = reference_forward(
        oracle,
        block,
        "sam2.modeling.sam.transformer.RoPEAttention",
        {
            "embedding_dim": 256,
            "num_heads": 1,
            "downsample_rate": 1,
            "rope_theta": 10000.0,
            "feat_sizes": [64, 64],
            "rope_k_repeat": True,
            "kv_in_dim": 64,
        },
        {"q": q, "k": k, "v": v},
        call_kwargs={"num_k_exclude_rope": n_ptr},
    )
    with torch.no_grad():
        ours = block(q, k, v, num_k_exclude_rope=n_ptr)
    assert_matches(ours, ref["out"])


@pytest.mark.oracle
def test_rope_self_attention_matches_reference(oracle: Oracle) -> None:
    """Memory self-attention with RoPE on a 64×64 grid equals the reference's."""
    block = randomize_(RoPEAttention(256, 1)).eval()
    x = torch.randn(1, 64 * 64, 256)
    ref = reference_forward(
        oracle,
        block,
        "sam2.modeling.sam.transformer.RoPEAttention",
        {"embedding_dim": 256, "num_heads": 1, "downsample_rate": 1, "feat_sizes": [64, 64]},
        {"q": x, "k": x, "v": x},
    )
    with torch.no_grad():
        assert_matches(block(x, x, x), ref["out"])


def test_cpu_bf16_long_keys_take_chunked_matmuls(monkeypatch: pytest.MonkeyPatch) -> None:
    """bf16 inference against ≥ LONG_KEYS keys: chunked explicit attention, the fused
    kernel's result within bf16 rounding, and every chunk filled."""
    import sam2.modeling.attention as attention_module

    torch.manual_seed(0)
    q = torch.randn(2, 1, 50, 32).bfloat16()
    k = torch.randn(2, 1, attention_module.LONG_KEYS, 32).bfloat16()
    v = torch.randn(2, 1, attention_module.LONG_KEYS, 32).bfloat16()
    monkeypatch.setattr(attention_module, "_SCORE_CHUNK", 7 * 2 * attention_module.LONG_KEYS)
    calls: list[int] = []
    original = attention_module._softmax_attend

    def counting(q: torch.Tensor, *args: object) -> torch.Tensor:
        calls.append(q.shape[-2])
        return original(q, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(attention_module, "_softmax_attend", counting)
    with torch.no_grad():
        got = attention_module.attention(q, k, v, use_sdpa=True)
    assert calls == [7] * 7 + [1]  # 50 queries in chunks of 7
    expected = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
    torch.testing.assert_close(got.float(), expected, atol=2e-2, rtol=2e-2)
    with torch.no_grad():  # fp32, or short keys: the fused kernel, untouched
        attention_module.attention(q.float(), k.float(), v.float(), use_sdpa=True)
        attention_module.attention(q, k[..., :100, :], v[..., :100, :], use_sdpa=True)
    assert len(calls) == 8
