"""Memory encoder: turn a frame's features and its predicted mask into a compact memory.

The mask logits are downsampled to the feature grid by strided convolutions, added to the
(projected) image features, mixed by a few ConvNeXt blocks and projected to ``out_dim`` channels
(64 in the released models), which keeps the memory bank small. The memory's position encoding
is a content-independent sine map of the same grid.
"""

from __future__ import annotations

import copy
import math
from typing import TypedDict

import torch
from torch import Tensor, nn

from sam2.modeling.common import LayerNorm2d


class MemoryEncoderOutput(TypedDict):
    """What :class:`MemoryEncoder` returns; keys as in the reference."""

    vision_features: Tensor  # (B, out_dim, H, W)
    vision_pos_enc: list[Tensor]  # one (B, out_dim, H, W) map


class MaskDownSampler(nn.Module):
    """Bring a (B, 1, S, S) mask to the feature grid (B, embed_dim, S/total_stride, ...).

    Each stage divides the side by ``stride`` and multiplies the channels by ``stride**2``, so
    no information is thrown away before the final 1×1 projection. Keys ``encoder.{i}``: conv,
    LayerNorm2d, activation per stage, then the projection.
    """

    def __init__(
        self,
        embed_dim: int = 256,
        kernel_size: int = 4,
        stride: int = 4,
        padding: int = 0,
        total_stride: int = 16,
        activation: type[nn.Module] = nn.GELU,
    ) -> None:
        super().__init__()
        num_stages = int(math.log2(total_stride) // math.log2(stride))
        if stride**num_stages != total_stride:
            raise ValueError(
                f"total_stride={total_stride} must be a power of stride={stride} "
                "(e.g. stride=2 or 4 for total_stride=16)"
            )
        stages: list[nn.Module] = []
        channels = 1
        for _ in range(num_stages):
            out_channels = channels * stride**2
            stages += [
                nn.Conv2d(channels, out_channels, kernel_size, stride=stride, padding=padding),
                LayerNorm2d(out_channels),
                activation(),
            ]
            channels = out_channels
        stages.append(nn.Conv2d(channels, embed_dim, kernel_size=1))
        self.encoder = nn.Sequential(*stages)

    def forward(self, x: Tensor) -> Tensor:  # (B, 1, S, S) -> (B, embed_dim, S/ts, S/ts)
        return self.encoder(x)


class _DropPath(nn.Module):
    """Stochastic depth: in training, drop a sample's whole residual branch with prob ``p``."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class CXBlock(nn.Module):
    """ConvNeXt block: depthwise conv, LayerNorm2d, pointwise MLP, layer scale, residual.

    The pointwise convs are Linears on a channels-last view (``pwconv1``/``pwconv2``), which is
    how the checkpoint stores them ([4·dim, dim] and [dim, 4·dim]).
    """

    def __init__(
        self,
        dim: int,
        kernel_size: int = 7,
        padding: int = 3,
        drop_path: float = 0.0,
        layer_scale_init_value: float = 1e-6,
        use_dwconv: bool = True,
    ) -> None:
        super().__init__()
        groups = dim if use_dwconv else 1
        self.dwconv = nn.Conv2d(dim, dim, kernel_size, padding=padding, groups=groups)
        self.norm = LayerNorm2d(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        # Layer scale; without it (init value <= 0) the checkpoint has no ``gamma`` key.
        self.gamma: nn.Parameter | None = (
            nn.Parameter(torch.full((dim,), float(layer_scale_init_value)))
            if layer_scale_init_value > 0
            else None
        )
        self.drop_path: nn.Module = _DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W)
        y = self.norm(self.dwconv(x))
        y = y.permute(0, 2, 3, 1)  # (B, H, W, C)
        y = self.pwconv2(self.act(self.pwconv1(y)))
        if self.gamma is not None:
            y = self.gamma * y
        y = y.permute(0, 3, 1, 2)  # (B, C, H, W)
        return x + self.drop_path(y)


class Fuser(nn.Module):
    """``num_layers`` independent copies of ``layer``, optionally after a 1×1 input projection."""

    def __init__(
        self,
        layer: nn.Module,
        num_layers: int,
        dim: int | None = None,
        input_projection: bool = False,
    ) -> None:
        super().__init__()
        self.proj: nn.Module = nn.Identity()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        if input_projection:
            if dim is None:
                raise ValueError("Fuser(input_projection=True) needs dim, the channel count")
            self.proj = nn.Conv2d(dim, dim, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W)
        x = self.proj(x)
        for layer in self.layers:
            x = layer(x)
        return x


class MemoryEncoder(nn.Module):
    """Fuse a frame's features with its mask into a ``out_dim``-channel memory and its encoding."""

    def __init__(
        self,
        out_dim: int,
        mask_downsampler: nn.Module,
        fuser: nn.Module,
        position_encoding: nn.Module,
        in_dim: int = 256,
    ) -> None:
        super().__init__()
        self.mask_downsampler = mask_downsampler
        self.pix_feat_proj = nn.Conv2d(in_dim, in_dim, kernel_size=1)
        self.fuser = fuser
        self.position_encoding = position_encoding
        self.out_proj: nn.Module = (
            nn.Identity() if out_dim == in_dim else nn.Conv2d(in_dim, out_dim, kernel_size=1)
        )

    def forward(
        self, pix_feat: Tensor, masks: Tensor, skip_mask_sigmoid: bool = False
    ) -> MemoryEncoderOutput:
        """Encode ``pix_feat`` (B, in_dim, H, W) with mask logits ``masks`` (B, 1, 16H, 16W).

        By default the logits go through a sigmoid, so that predicted masks look like the binary
        masks seen in training; the video model passes already-scaled values and skips it.
        """
        if not skip_mask_sigmoid:
            masks = torch.sigmoid(masks)
        mask_feat = self.mask_downsampler(masks)  # (B, in_dim, H, W)
        # Features may have been kept on another device (e.g. offloaded to the CPU).
        pix_feat = pix_feat.to(mask_feat.device)
        x = self.pix_feat_proj(pix_feat) + mask_feat
        x = self.out_proj(self.fuser(x))  # (B, out_dim, H, W)
        pos = self.position_encoding(x).to(x.dtype)
        return {"vision_features": x, "vision_pos_enc": [pos]}
