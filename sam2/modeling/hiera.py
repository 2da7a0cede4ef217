"""Hiera: the hierarchical, windowed-attention ViT trunk of the SAM 2 image encoder.

All blocks work channels-last, (B, H, W, C). Four stages halve the resolution and double the
width; the first block of a stage does the down-sampling by max-pooling its queries (Q-pooling).
Module and parameter names follow the released checkpoints (``image_encoder.trunk.*``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Final

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sam2.modeling.attention import attention, default_use_sdpa
from sam2.modeling.common import MLP


def window_partition(x: Tensor, window_size: int) -> tuple[Tensor, tuple[int, int]]:
    """Cut a (B, H, W, C) map into (B * nW, ws, ws, C) windows, zero-padding bottom/right.

    Returns the windows and the padded size (Hp, Wp), which :func:`window_unpartition` needs.
    The padding is plain zeros with no mask: padded tokens take part in attention, as in the
    released model.
    """
    b, h, w, c = x.shape
    pad_h = -h % window_size
    pad_w = -w % window_size
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))  # pads C by 0, W right, H bottom
    hp, wp = h + pad_h, w + pad_w
    x = x.view(b, hp // window_size, window_size, wp // window_size, window_size, c)
    windows = x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size, window_size, c)
    return windows, (hp, wp)  # (B * nW, ws, ws, C)


def window_unpartition(
    windows: Tensor, window_size: int, pad_hw: tuple[int, int], hw: tuple[int, int]
) -> Tensor:
    """Inverse of :func:`window_partition`: (B * nW, ws, ws, C) -> (B, H, W, C), padding cropped."""
    hp, wp = pad_hw
    h, w = hw
    rows, cols = hp // window_size, wp // window_size
    b = windows.shape[0] // (rows * cols)
    x = windows.reshape(b, rows, cols, window_size, window_size, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)  # (B, Hp, Wp, C)
    if hp > h or wp > w:
        x = x[:, :h, :w, :]
    return x


def _pool_channels_last(x: Tensor, pool: nn.Module) -> Tensor:
    """Apply a (B, C, H, W) pooling layer to a (B, H, W, C) map."""
    return pool(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class DropPath(nn.Module):
    """Stochastic depth: drop a residual branch per sample while training; identity at eval."""

    def __init__(self, drop_prob: float = 0.0, scale_by_keep: bool = True) -> None:
        super().__init__()
        self.drop_prob = drop_prob
        self.scale_by_keep = scale_by_keep

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.drop_prob == 0.0:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        if self.scale_by_keep and keep > 0.0:
            mask = mask / keep
        return x * mask


class PatchEmbed(nn.Module):
    """Strided convolution from pixels to tokens: (B, 3, S, S) -> (B, S/4, S/4, E)."""

    def __init__(
        self,
        kernel_size: tuple[int, int] = (7, 7),
        stride: tuple[int, int] = (4, 4),
        padding: tuple[int, int] = (3, 3),
        in_chans: int = 3,
        embed_dim: int = 768,
    ) -> None:
        super().__init__()
        self.proj = nn.Conv2d(
            in_chans, embed_dim, kernel_size=kernel_size, stride=stride, padding=padding
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).permute(0, 2, 3, 1)  # (B, H, W, E)


class MultiScaleAttention(nn.Module):
    """Self-attention over a (B, H, W, C) map whose queries may be max-pooled (``q_pool``).

    Pooling only the queries gives an output at the lower resolution while every key/value of
    the input window still contributes.
    """

    use_sdpa: Final[bool]

    def __init__(
        self, dim: int, dim_out: int, num_heads: int, q_pool: nn.Module | None = None
    ) -> None:
        super().__init__()
        if dim_out % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide dim_out={dim_out}")
        self.dim = dim
        self.dim_out = dim_out
        self.num_heads = num_heads
        self.q_pool = q_pool
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)
        self.use_sdpa = default_use_sdpa()

    def forward(self, x: Tensor) -> Tensor:  # (B, H, W, C) -> (B, H', W', C_out)
        b, h, w, _ = x.shape
        # the last dim of qkv is laid out as [3, heads, head_dim]
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, HW, hd)
        if self.q_pool is not None:
            head_dim = q.shape[-1]
            q = q.transpose(1, 2).reshape(b, h, w, -1)  # (B, H, W, heads * hd)
            q = _pool_channels_last(q, self.q_pool)  # (B, H', W', heads * hd)
            h, w = q.shape[1:3]
            q = q.reshape(b, h * w, self.num_heads, head_dim).transpose(1, 2)
        out = attention(q, k, v, self.use_sdpa)  # (B, heads, H'W', hd)
        out = out.transpose(1, 2).reshape(b, h, w, -1)  # (B, H', W', C_out)
        return self.proj(out)


class MultiScaleBlock(nn.Module):
    """Pre-norm transformer block with optional windowing and optional Q-pooling.

    When the width changes (first block of a stage) the shortcut is ``proj`` of the *normalised*
    input, max-pooled alongside the queries; that order is what the checkpoints were trained with.
    """

    def __init__(
        self,
        dim: int,
        dim_out: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
        norm_layer: str | Callable[[int], nn.Module] = "LayerNorm",
        q_stride: tuple[int, int] | None = None,
        act_layer: type[nn.Module] = nn.GELU,
        window_size: int = 0,
    ) -> None:
        super().__init__()
        if isinstance(norm_layer, str):
            norm_layer = partial(getattr(nn, norm_layer), eps=1e-6)
        self.dim = dim
        self.dim_out = dim_out
        self.window_size = window_size
        self.q_stride = q_stride
        self.pool: nn.Module | None = None
        if q_stride:
            self.pool = nn.MaxPool2d(kernel_size=q_stride, stride=q_stride)
        self.norm1 = norm_layer(dim)
        self.attn = MultiScaleAttention(dim, dim_out, num_heads=num_heads, q_pool=self.pool)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim_out)
        self.mlp = MLP(dim_out, int(dim_out * mlp_ratio), dim_out, 2, activation=act_layer)
        if dim != dim_out:
            self.proj = nn.Linear(dim, dim_out)

    def forward(self, x: Tensor) -> Tensor:  # (B, H, W, C) -> (B, H', W', C_out)
        shortcut = x
        x = self.norm1(x)
        if self.dim != self.dim_out:
            shortcut = self.proj(x)
        if self.pool is not None:
            shortcut = _pool_channels_last(shortcut, self.pool)  # (B, H', W', C_out)

        window_size = self.window_size
        if window_size > 0:
            x, _ = window_partition(x, window_size)  # (B * nW, ws, ws, C)
        x = self.attn(x)  # windows shrink to ws // stride when the queries are pooled
        if window_size > 0:
            h, w = shortcut.shape[1:3]
            if self.q_stride:
                window_size //= self.q_stride[0]
            pad_hw = (h + -h % window_size, w + -w % window_size)
            x = window_unpartition(x, window_size, pad_hw, (h, w))  # (B, H', W', C_out)

        x = shortcut + self.drop_path(x)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class Hiera(nn.Module):
    """Hierarchical trunk returning one (B, C_i, H_i, W_i) map per stage, finest first.

    ``channel_list`` gives the output widths coarsest first, the order the FPN neck expects.
    """

    def __init__(
        self,
        embed_dim: int = 96,
        num_heads: int = 1,
        drop_path_rate: float = 0.0,
        q_pool: int = 3,
        q_stride: tuple[int, int] = (2, 2),
        stages: Sequence[int] = (2, 3, 16, 3),
        dim_mul: float = 2.0,
        head_mul: float = 2.0,
        window_pos_embed_bkg_spatial_size: Sequence[int] = (14, 14),
        window_spec: Sequence[int] = (8, 4, 14, 7),
        global_att_blocks: Sequence[int] | None = (12, 16, 20),
        return_interm_layers: bool = True,
    ) -> None:
        super().__init__()
        if len(stages) != len(window_spec):
            raise ValueError(
                f"window_spec needs one window size per stage: got {len(window_spec)} sizes "
                f"for {len(stages)} stages"
            )
        if not 0 <= q_pool < len(stages):
            raise ValueError(f"q_pool must be in [0, {len(stages) - 1}], got {q_pool}")
        self.window_spec = tuple(window_spec)
        if len(q_stride) != 2:
            raise ValueError(f"q_stride must be (sy, sx), got {q_stride}")
        self.q_stride: tuple[int, int] = (int(q_stride[0]), int(q_stride[1]))
        self.stage_ends = [sum(stages[: i + 1]) - 1 for i in range(len(stages))]
        self.q_pool_blocks = [end + 1 for end in self.stage_ends[:-1]][:q_pool]
        self.global_att_blocks = tuple(global_att_blocks or ())
        self.return_interm_layers = return_interm_layers
        self.window_pos_embed_bkg_spatial_size = tuple(window_pos_embed_bkg_spatial_size)

        self.patch_embed = PatchEmbed(embed_dim=embed_dim)
        # background embedding, resized to the token grid, plus one embedding tiled per window
        self.pos_embed = nn.Parameter(torch.zeros(1, embed_dim, *window_pos_embed_bkg_spatial_size))
        self.pos_embed_window = nn.Parameter(
            torch.zeros(1, embed_dim, self.window_spec[0], self.window_spec[0])
        )

        depth = sum(stages)
        drop_rates = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList()
        dim, stage = embed_dim, 0
        block_dims: list[int] = []
        for i in range(depth):
            # the first block of a stage still sees the previous stage's resolution, so it
            # partitions with the previous stage's window size
            window_size = 0 if i in self.global_att_blocks else self.window_spec[stage]
            dim_out = dim
            if i - 1 in self.stage_ends:
                dim_out = int(dim * dim_mul)
                num_heads = int(num_heads * head_mul)
                stage += 1
            self.blocks.append(
                MultiScaleBlock(
                    dim=dim,
                    dim_out=dim_out,
                    num_heads=num_heads,
                    drop_path=drop_rates[i],
                    q_stride=self.q_stride if i in self.q_pool_blocks else None,
                    window_size=window_size,
                )
            )
            block_dims.append(dim_out)
            dim = dim_out

        ends = self.stage_ends[::-1] if return_interm_layers else self.stage_ends[-1:]
        self.channel_list: list[int] = [block_dims[i] for i in ends]

    def _get_pos_embed(self, hw: tuple[int, int]) -> Tensor:  # (1, H, W, E)
        h, w = hw
        window = self.pos_embed_window.shape[-1]
        if h % window or w % window:
            raise ValueError(
                f"the token grid {h}×{w} must be a multiple of the first window size {window}; "
                f"use an input size divisible by {4 * window}"
            )
        pos = F.interpolate(self.pos_embed, size=(h, w), mode="bicubic")  # (1, E, H, W)
        pos = pos + self.pos_embed_window.tile(1, 1, h // window, w // window)
        return pos.permute(0, 2, 3, 1)

    def forward(self, x: Tensor) -> list[Tensor]:  # (B, 3, S, S) -> [(B, C_i, H_i, W_i)]
        x = self.patch_embed(x)  # (B, S/4, S/4, E)
        x = x + self._get_pos_embed((x.shape[1], x.shape[2]))
        outputs: list[Tensor] = []
        last = self.stage_ends[-1]
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i == last or (self.return_interm_layers and i in self.stage_ends):
                outputs.append(x.permute(0, 3, 1, 2))  # (B, C, H, W)
        return outputs
