"""Multi-head attention with separate q/k/v projections, plain and with axial RoPE.

Two execution paths, chosen once per instance (``use_sdpa``): PyTorch's fused
``scaled_dot_product_attention``, or an explicit matmul → softmax → matmul (in chunks of queries
at inference). The explicit path exists for CPU bfloat16, where matmuls run faster than fp32
but the fused kernel barely does; bf16 inference against long key sequences takes it always.
The process-wide default comes from :func:`default_use_sdpa` (env ``SAM2_USE_SDPA=0|1``).
"""

from __future__ import annotations

import math
import os
from typing import Final

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sam2.modeling.position_encoding import apply_rope, axial_rope_table

_USE_SDPA: bool | None = None


def default_use_sdpa() -> bool:
    """Whether new attention blocks use the fused kernel (default: yes)."""
    if _USE_SDPA is not None:
        return _USE_SDPA
    return os.environ.get("SAM2_USE_SDPA", "1").lower() not in ("0", "false", "no")


def set_default_use_sdpa(enabled: bool | None) -> None:
    """Override the default for blocks built afterwards (``None`` restores the env default)."""
    global _USE_SDPA
    _USE_SDPA = enabled


#: Keys from which CPU bf16 attention runs as chunked matmuls rather than the fused kernel:
#: memory attention's cross-attention (7 memories × 4096 tokens at 1024 input). Measured on
#: an AMD EPYC with AVX512-BF16, 4096 queries × 28,736 keys × 256: fused fp32 1.56 s, fused
#: bf16 1.42 s, chunked bf16 0.97 s (``benchmarks/README_video.md``).
LONG_KEYS = 8192
#: Elements of one chunk's score matrix on the explicit path (64 MiB of float32).
_SCORE_CHUNK = 1 << 24


def attention(q: Tensor, k: Tensor, v: Tensor, use_sdpa: bool, dropout_p: float = 0.0) -> Tensor:
    """Softmax attention over (..., L, D) tensors with the default 1/sqrt(D) scale.

    Inference in bf16 on the CPU against long key sequences takes the explicit path even in
    a fused block: there bf16 matmuls gain where the fused kernel barely does.
    """
    explicit_bf16 = (
        q.dtype == torch.bfloat16
        and q.device.type == "cpu"
        and k.shape[-2] >= LONG_KEYS
        and not torch.is_grad_enabled()
    )
    if use_sdpa and not explicit_bf16:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    scale = 1.0 / math.sqrt(q.shape[-1])
    kt = k.transpose(-2, -1)
    rows = q.shape[-2]
    per_row = max(1, math.prod(q.shape[:-2]) * k.shape[-2])
    chunk = max(1, _SCORE_CHUNK // per_row)
    if chunk >= rows or torch.is_grad_enabled():
        return _softmax_attend(q * scale, kt, v, dropout_p)
    out = q.new_empty(*q.shape[:-1], v.shape[-1])
    for start in range(0, rows, chunk):  # bounded memory: one chunk of scores at a time
        stop = start + chunk
        out[..., start:stop, :] = _softmax_attend(q[..., start:stop, :] * scale, kt, v, dropout_p)
    return out


def _softmax_attend(q: Tensor, kt: Tensor, v: Tensor, dropout_p: float) -> Tensor:
    weights = (q @ kt).softmax(dim=-1)
    if dropout_p > 0.0:
        weights = F.dropout(weights, dropout_p)
    return weights @ v


class Attention(nn.Module):
    """Attention that may project to a smaller internal dim (``embedding_dim / downsample_rate``).

    Keys and values may come from a space of another width (``kv_in_dim``), as in memory
    cross-attention where memories are 64-dim and queries 256-dim.
    """

    use_sdpa: Final[bool]

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        downsample_rate: int = 1,
        dropout: float = 0.0,
        kv_in_dim: int | None = None,
        use_sdpa: bool | None = None,
    ) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.kv_in_dim = kv_in_dim if kv_in_dim is not None else embedding_dim
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        if self.internal_dim % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide {self.internal_dim}")
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(self.kv_in_dim, self.internal_dim)
        self.v_proj = nn.Linear(self.kv_in_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)
        self.dropout_p = dropout
        self.use_sdpa = default_use_sdpa() if use_sdpa is None else use_sdpa

    def _split_heads(self, x: Tensor) -> Tensor:  # (B, L, C) -> (B, heads, L, C/heads)
        return x.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)

    @staticmethod
    def _merge_heads(x: Tensor) -> Tensor:  # (B, heads, L, c) -> (B, L, heads * c)
        return x.transpose(1, 2).flatten(2)

    def _attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        dropout_p = self.dropout_p if self.training else 0.0
        return self.out_proj(self._merge_heads(attention(q, k, v, self.use_sdpa, dropout_p)))

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:  # (B, Lq, C)
        q = self._split_heads(self.q_proj(q))
        k = self._split_heads(self.k_proj(k))
        v = self._split_heads(self.v_proj(v))
        return self._attend(q, k, v)


class RoPEAttention(Attention):
    """Attention with 2D axial rotary encoding of queries and (spatial) keys.

    Queries form a square grid of side ``sqrt(Lq)``. With ``rope_k_repeat`` the keys are several
    such grids back to back (memory frames) and each gets the same rotation; the last
    ``num_k_exclude_rope`` keys (object pointers) are not rotated.
    """

    def __init__(
        self,
        *args: object,
        rope_theta: float = 10000.0,
        rope_k_repeat: bool = False,
        feat_sizes: tuple[int, int] = (64, 64),
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.rope_theta = rope_theta
        self.rope_k_repeat = rope_k_repeat
        self.feat_sizes = tuple(feat_sizes)
        self._tables: dict[tuple[int, torch.device], Tensor] = {}

    def _table(self, length: int, device: torch.device) -> Tensor:  # (L, head_dim/2) complex
        key = (length, device)
        if key not in self._tables:
            if length == self.feat_sizes[0] * self.feat_sizes[1]:
                end_x, end_y = self.feat_sizes
            else:
                end_x = end_y = math.isqrt(length)
                if end_x * end_y != length:
                    raise ValueError(f"RoPE needs a square query grid, got {length} tokens")
            head_dim = self.internal_dim // self.num_heads
            # A table first built under inference mode (a video run) could not be used by a
            # later training step of the same model; a normal tensor serves both.
            with torch.inference_mode(False):
                table = axial_rope_table(head_dim, end_x, end_y, self.rope_theta).to(device)
            self._tables[key] = table
        return self._tables[key]

    def forward(self, q: Tensor, k: Tensor, v: Tensor, num_k_exclude_rope: int = 0) -> Tensor:
        q = self._split_heads(self.q_proj(q))
        k = self._split_heads(self.k_proj(k))
        v = self._split_heads(self.v_proj(v))
        table = self._table(q.shape[-2], q.device)
        q = apply_rope(q, table)
        n_rope = k.shape[-2] - num_k_exclude_rope
        if n_rope > 0:
            if n_rope != q.shape[-2] and not self.rope_k_repeat:
                raise ValueError("keys longer than queries need rope_k_repeat=True")
            if n_rope % q.shape[-2]:
                raise ValueError(
                    f"{n_rope} rotated keys are not a whole number of {q.shape[-2]}-token grids"
                )
            if num_k_exclude_rope:  # k is a fresh projection: rotate the grid part in place
                k[:, :, :n_rope] = apply_rope(k[:, :, :n_rope], table)
            else:
                k = apply_rope(k, table)
        return self._attend(q, k, v)
