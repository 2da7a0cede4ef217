"""Memory attention: condition the current frame's features on what earlier frames left behind.

The memory is a token sequence: the spatial memories of a few earlier frames (``mem_dim``-wide,
one full grid each) followed by object-pointer tokens. Every layer is pre-norm: RoPE
self-attention over the current frame, RoPE cross-attention from the current frame to the memory
(pointer tokens not rotated), then an MLP. Inputs and outputs are sequence-first ``(L, B, C)``, as
the rest of the model keeps them; the layers themselves run batch-first ``(B, L, C)``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn

from sam2.modeling.attention import RoPEAttention

_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"relu": F.relu, "gelu": F.gelu}


def _add_pos(x: Tensor, pos: Tensor | None) -> Tensor:
    """``x + pos``, tolerating a missing encoding (the reference would fail on ``None``)."""
    return x if pos is None else x + pos


class MemoryAttentionLayer(nn.Module):
    """One pre-norm block: self-attention, cross-attention to memory, feed-forward MLP.

    The ``pos_enc_at_*`` switches say where positional encodings are added; the released models
    add them only to the cross-attention keys (position otherwise enters through RoPE).
    """

    def __init__(
        self,
        activation: str,
        cross_attention: nn.Module,
        d_model: int,
        dim_feedforward: int,
        dropout: float,
        pos_enc_at_attn: bool,
        pos_enc_at_cross_attn_keys: bool,
        pos_enc_at_cross_attn_queries: bool,
        self_attention: nn.Module,
    ) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}"
            )
        self.d_model = d_model
        self.dim_feedforward = dim_feedforward
        self.dropout_value = dropout
        self.self_attn = self_attention
        self.cross_attn_image = cross_attention

        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        # Parameter-free, active only in training: inside the MLP, then on each residual branch.
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

        self.activation_name = activation
        self.activation = _ACTIVATIONS[activation]
        self.pos_enc_at_attn = pos_enc_at_attn
        self.pos_enc_at_cross_attn_keys = pos_enc_at_cross_attn_keys
        self.pos_enc_at_cross_attn_queries = pos_enc_at_cross_attn_queries

    def _self_attention(self, x: Tensor, query_pos: Tensor | None) -> Tensor:
        t = self.norm1(x)
        qk = _add_pos(t, query_pos) if self.pos_enc_at_attn else t
        return x + self.dropout1(self.self_attn(qk, qk, t))

    def _cross_attention(
        self, x: Tensor, memory: Tensor, pos: Tensor | None, query_pos: Tensor | None, n_ptr: int
    ) -> Tensor:
        t = self.norm2(x)
        q = _add_pos(t, query_pos) if self.pos_enc_at_cross_attn_queries else t
        k = _add_pos(memory, pos) if self.pos_enc_at_cross_attn_keys else memory
        if n_ptr > 0:
            if not isinstance(self.cross_attn_image, RoPEAttention):
                raise ValueError(
                    f"num_k_exclude_rope={n_ptr} needs a RoPEAttention cross-attention, "
                    f"got {type(self.cross_attn_image).__name__}"
                )
            out = self.cross_attn_image(q, k, memory, num_k_exclude_rope=n_ptr)
        else:
            out = self.cross_attn_image(q, k, memory)
        return x + self.dropout2(out)

    def forward(
        self,
        tgt: Tensor,
        memory: Tensor,
        pos: Tensor | None = None,
        query_pos: Tensor | None = None,
        num_k_exclude_rope: int = 0,
    ) -> Tensor:
        """Update ``tgt`` (B, Lq, C) from ``memory`` (B, Lk, mem_dim); ``pos`` encodes memory.

        ``tgt`` may also be (1, Lq, C), one frame shared by B objects' memories: its
        self-attention is then computed once and handed to each object's cross-attention.
        """
        x = self._self_attention(tgt, query_pos)
        if x.shape[0] != memory.shape[0]:
            x = x.expand(memory.shape[0], -1, -1)
        x = self._cross_attention(x, memory, pos, query_pos, num_k_exclude_rope)
        hidden = self.dropout(self.activation(self.linear1(self.norm3(x))))  # (B, Lq, F)
        return x + self.dropout3(self.linear2(hidden))


class MemoryAttention(nn.Module):
    """A stack of ``num_layers`` independent copies of ``layer`` plus a final LayerNorm."""

    def __init__(
        self,
        d_model: int,
        pos_enc_at_input: bool,
        layer: nn.Module,
        num_layers: int,
        batch_first: bool = True,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.num_layers = num_layers
        self.norm = nn.LayerNorm(d_model)
        self.pos_enc_at_input = pos_enc_at_input
        self.batch_first = batch_first  # whether the layers want (B, L, C) rather than (L, B, C)

    def forward(
        self,
        curr: Tensor | list[Tensor],
        memory: Tensor,
        curr_pos: Tensor | list[Tensor] | None = None,
        memory_pos: Tensor | None = None,
        num_obj_ptr_tokens: int = 0,
    ) -> Tensor:
        """Condition ``curr`` (L, B, C) on ``memory`` (M, B, mem_dim); returns (L, B, C).

        ``curr`` (L, 1, C) is one frame conditioned on B memories at once (B objects).
        The last ``num_obj_ptr_tokens`` memory tokens are object pointers: they are not rotated
        by RoPE. ``curr``/``curr_pos`` may also be one-element lists, as the reference allows.
        """
        curr, curr_pos = _unwrap_single(curr, curr_pos)
        if curr.shape[1] not in (1, memory.shape[1]):
            raise ValueError(
                f"curr (L, B, C)={tuple(curr.shape)} and memory (M, B, C)={tuple(memory.shape)} "
                "must have the same batch size B (or curr batch 1, shared by all B)"
            )
        # The video predictor stores memories in bfloat16 even in float32 runs. The reference
        # gets them back to float32 only by type promotion when fp32 pointer tokens are
        # concatenated, and fails in the k/v projections when there are none. Casting to the
        # compute dtype here gives the same numbers in the first case and works in the second.
        memory = memory.to(curr.dtype)
        if memory_pos is not None:
            memory_pos = memory_pos.to(curr.dtype)

        x = curr
        if self.pos_enc_at_input and curr_pos is not None:
            x = x + 0.1 * curr_pos
        if self.batch_first:  # (L, B, C) -> (B, L, C)
            x = x.transpose(0, 1)
            memory = memory.transpose(0, 1)
            curr_pos = None if curr_pos is None else curr_pos.transpose(0, 1)
            memory_pos = None if memory_pos is None else memory_pos.transpose(0, 1)

        for layer in self.layers:
            rope_cross = isinstance(layer.cross_attn_image, RoPEAttention)
            x = layer(
                x,
                memory,
                pos=memory_pos,
                query_pos=curr_pos,
                num_k_exclude_rope=num_obj_ptr_tokens if rope_cross else 0,
            )
        x = self.norm(x)
        return x.transpose(0, 1) if self.batch_first else x  # (L, B, C)


def _unwrap_single(
    curr: Tensor | list[Tensor], curr_pos: Tensor | list[Tensor] | None
) -> tuple[Tensor, Tensor | None]:
    """Accept the reference's one-level list form ``[x]`` for the current features."""
    if isinstance(curr, list) or isinstance(curr_pos, list):
        if not (isinstance(curr, list) and isinstance(curr_pos, list)):
            raise ValueError("curr and curr_pos must both be tensors or both be lists")
        if len(curr) != 1 or len(curr_pos) != 1:
            raise ValueError(
                f"list inputs must hold exactly one level, got {len(curr)} and {len(curr_pos)}"
            )
        return curr[0], curr_pos[0]
    return curr, curr_pos
