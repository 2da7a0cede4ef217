"""Image encoder: the Hiera trunk plus a light FPN neck that maps every level to ``d_model``.

Module names follow the released checkpoints (``image_encoder.trunk.*``, ``image_encoder.neck.*``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypedDict

import torch.nn.functional as F
from torch import Tensor, nn


class ImageEncoderOutput(TypedDict):
    """What :class:`ImageEncoder` returns; lists run from high to low resolution."""

    vision_features: Tensor  # (B, d_model, H, W), the coarsest level kept
    vision_pos_enc: list[Tensor]  # (B, d_model, H_i, W_i) per level
    backbone_fpn: list[Tensor]  # (B, d_model, H_i, W_i) per level


class FpnNeck(nn.Module):
    """Feature pyramid without output convs: 1×1 lateral convs, top-down sums on chosen levels.

    Levels are numbered like the trunk's outputs, 0 = finest. ``convs[0]`` takes the coarsest
    trunk map (``backbone_channel_list`` is coarsest first), matching the checkpoints.
    Only levels in ``fpn_top_down_levels`` receive the upsampled coarser level; the released
    models use ``[2, 3]``, so the two finest levels are lateral features only.
    """

    def __init__(
        self,
        position_encoding: nn.Module,
        d_model: int,
        backbone_channel_list: Sequence[int],
        kernel_size: int = 1,
        stride: int = 1,
        padding: int = 0,
        fpn_interp_model: str = "bilinear",
        fuse_type: Literal["sum", "avg"] = "sum",
        fpn_top_down_levels: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if fuse_type not in ("sum", "avg"):
            raise ValueError(f"fuse_type must be 'sum' or 'avg', got {fuse_type!r}")
        self.position_encoding = position_encoding
        self.d_model = d_model
        self.backbone_channel_list = list(backbone_channel_list)
        self.convs = nn.ModuleList()
        for channels in self.backbone_channel_list:
            lateral = nn.Sequential()
            lateral.add_module(
                "conv",
                nn.Conv2d(channels, d_model, kernel_size, stride=stride, padding=padding),
            )
            self.convs.append(lateral)
        self.fpn_interp_model = fpn_interp_model
        self.fuse_type = fuse_type
        levels = range(len(self.convs)) if fpn_top_down_levels is None else fpn_top_down_levels
        self.fpn_top_down_levels = list(levels)

    def forward(self, xs: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Trunk maps (finest first) -> (features, position encodings), both finest first."""
        n = len(self.convs)
        if len(xs) != n:
            raise ValueError(f"FpnNeck was built for {n} levels but got {len(xs)} feature maps")
        out: list[Tensor | None] = [None] * n
        pos: list[Tensor | None] = [None] * n
        prev: Tensor | None = None
        for i in reversed(range(n)):  # coarse to fine
            lateral = self.convs[n - 1 - i](xs[i])  # (B, d_model, H_i, W_i)
            if i in self.fpn_top_down_levels and prev is not None:
                # upsampled in float32 (the released model does so even under autocast)
                top_down = F.interpolate(
                    prev.float(),
                    scale_factor=2.0,
                    mode=self.fpn_interp_model,
                    align_corners=None if self.fpn_interp_model == "nearest" else False,
                    antialias=False,
                )
                prev = lateral + top_down
                if self.fuse_type == "avg":
                    prev = prev / 2
            else:
                prev = lateral
            out[i] = prev
            pos[i] = self.position_encoding(prev).to(prev.dtype)
        return [t for t in out if t is not None], [t for t in pos if t is not None]


class ImageEncoder(nn.Module):
    """Trunk → neck, then drop the ``scalp`` coarsest levels (the released models drop one)."""

    def __init__(self, trunk: nn.Module, neck: FpnNeck, scalp: int = 0) -> None:
        super().__init__()
        trunk_channels = list(getattr(trunk, "channel_list", []))
        if trunk_channels != list(neck.backbone_channel_list):
            raise ValueError(
                f"trunk output channels {trunk_channels} (coarsest first) do not match the "
                f"neck's backbone_channel_list {list(neck.backbone_channel_list)}"
            )
        if scalp < 0:
            raise ValueError(f"scalp must be >= 0, got {scalp}")
        self.trunk = trunk
        self.neck = neck
        self.scalp = scalp

    def forward(self, sample: Tensor) -> ImageEncoderOutput:  # sample: (B, 3, S, S)
        features, pos = self.neck(self.trunk(sample))
        if self.scalp > 0:
            features, pos = features[: -self.scalp], pos[: -self.scalp]
        return {"vision_features": features[-1], "vision_pos_enc": pos, "backbone_fpn": features}
