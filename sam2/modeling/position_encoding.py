"""Position encodings: 2D sine maps, random-Fourier prompt encoding, 1D sine, axial RoPE."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def _sine_dim_t(n: int, temperature: float, device: torch.device | None = None) -> Tensor:
    """Frequencies ``temperature ** (2 * floor(i / 2) / n)`` for i in 0..n-1 (float32)."""
    i = torch.arange(n, dtype=torch.float32, device=device)
    return temperature ** (2 * torch.div(i, 2, rounding_mode="floor") / n)


class PositionEmbeddingSine(nn.Module):
    """Content-independent 2D sine encoding of a feature map's grid: (B, F, H, W).

    Rows and columns are numbered from 1 and normalised by the last index (+1e-6) times 2π;
    channels are the y-part then the x-part, each interleaving sin (even) and cos (odd).
    Results are cached per (H, W) as plain attributes, so nothing enters the state dict.
    """

    def __init__(
        self,
        num_pos_feats: int,
        temperature: float = 10000,
        normalize: bool = True,
        scale: float | None = None,
    ) -> None:
        super().__init__()
        if num_pos_feats % 2:
            raise ValueError(f"num_pos_feats must be even, got {num_pos_feats}")
        if scale is not None and not normalize:
            raise ValueError("scale is only used with normalize=True")
        self.num_pos_feats = num_pos_feats // 2
        self.temperature = temperature
        self.normalize = normalize
        self.scale = 2 * math.pi if scale is None else scale
        self._cache: dict[tuple[int, int, torch.device], Tensor] = {}

    def _grid(self, h: int, w: int, device: torch.device) -> Tensor:  # (F, H, W)
        key = (h, w, device)
        if key not in self._cache:
            y = torch.arange(1, h + 1, dtype=torch.float32, device=device)
            x = torch.arange(1, w + 1, dtype=torch.float32, device=device)
            if self.normalize:
                y = y / (h + 1e-6) * self.scale
                x = x / (w + 1e-6) * self.scale
            dim_t = _sine_dim_t(self.num_pos_feats, self.temperature, device)
            pos_y = self._interleave(y[:, None] / dim_t)  # (H, F/2)
            pos_x = self._interleave(x[:, None] / dim_t)  # (W, F/2)
            grid = torch.cat(
                [pos_y[:, None, :].expand(h, w, -1), pos_x[None, :, :].expand(h, w, -1)], dim=-1
            )
            self._cache[key] = grid.permute(2, 0, 1).contiguous()
        return self._cache[key]

    @staticmethod
    def _interleave(p: Tensor) -> Tensor:
        return torch.stack([p[:, 0::2].sin(), p[:, 1::2].cos()], dim=2).flatten(1)

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:  # (B, F, H, W) float32
        grid = self._grid(x.shape[-2], x.shape[-1], x.device)
        return grid.unsqueeze(0).expand(x.shape[0], -1, -1, -1)


class PositionEmbeddingRandom(nn.Module):
    """Random-Fourier encoding of (x, y) in [0, 1]² used by the prompt encoder.

    The Gaussian matrix is a persistent buffer: it is part of the checkpoint and must come from it.
    """

    positional_encoding_gaussian_matrix: Tensor

    def __init__(self, num_pos_feats: int = 64, scale: float | None = None) -> None:
        super().__init__()
        scale = 1.0 if scale is None or scale <= 0.0 else scale
        self.register_buffer(
            "positional_encoding_gaussian_matrix", scale * torch.randn((2, num_pos_feats))
        )

    def _pe_encoding(self, coords: Tensor) -> Tensor:  # (..., 2) in [0, 1] -> (..., 2 * F)
        coords = (2 * coords - 1) @ self.positional_encoding_gaussian_matrix
        coords = 2 * math.pi * coords
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)

    def forward(self, size: tuple[int, int]) -> Tensor:  # (2F, H, W), cell centres
        h, w = size
        device = self.positional_encoding_gaussian_matrix.device
        y = (torch.arange(h, dtype=torch.float32, device=device) + 0.5) / h
        x = (torch.arange(w, dtype=torch.float32, device=device) + 0.5) / w
        coords = torch.stack([x[None, :].expand(h, w), y[:, None].expand(h, w)], dim=-1)
        return self._pe_encoding(coords).permute(2, 0, 1)

    def forward_with_coords(self, coords: Tensor, image_size: tuple[int, int]) -> Tensor:
        """Encode (B, N, 2) pixel coordinates (x, y) of an image of size (H, W)."""
        coords = coords.clone().float()
        coords[..., 0] = coords[..., 0] / image_size[1]
        coords[..., 1] = coords[..., 1] / image_size[0]
        return self._pe_encoding(coords)  # (B, N, 2F)


def get_1d_sine_pe(positions: Tensor, dim: int, temperature: float = 10000) -> Tensor:
    """1D sine encoding, ``[sin (dim/2), cos (dim/2)]`` concatenated (not interleaved)."""
    dim_t = _sine_dim_t(dim // 2, temperature, positions.device)
    angles = positions.unsqueeze(-1) / dim_t
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def axial_rope_table(head_dim: int, end_x: int, end_y: int, theta: float = 10000.0) -> Tensor:
    """Unit complex rotations of 2D axial RoPE for a row-major (end_y, end_x) grid: (L, head_dim/2).

    Head-dim pairs 0..head_dim/4-1 rotate with x, the next head_dim/4 pairs with y;
    frequency j is ``theta ** (-4j / head_dim)``.
    """
    n = head_dim // 4
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 4)[:n].float() / head_dim))
    t = torch.arange(end_x * end_y, dtype=torch.float32)
    t_x = t % end_x
    t_y = torch.div(t, end_x, rounding_mode="floor")
    angles = torch.cat([torch.outer(t_x, freqs), torch.outer(t_y, freqs)], dim=-1)  # (L, hd/2)
    return torch.polar(torch.ones_like(angles), angles)


def apply_rope(x: Tensor, table: Tensor) -> Tensor:
    """Rotate consecutive pairs of the last dim of ``x`` (..., L, D) by ``table`` (L, D/2).

    One complex multiply in float32 (the rotation is precision-sensitive), cast back to ``x``'s
    dtype. ``x`` may hold several L-grids back to back (..., R * L, D): each gets the same table.
    """
    length = table.shape[0]
    pairs = x.float().unflatten(-1, (-1, 2))  # (..., R*L, D/2, 2)
    if pairs.stride(-1) != 1 or any(s % 2 for s in pairs.stride()[:-1]):
        pairs = pairs.contiguous()
    z = torch.view_as_complex(pairs)  # (..., R*L, D/2)
    if z.shape[-2] != length:
        z = z.unflatten(-2, (-1, length))  # (..., R, L, D/2)
    rotated = torch.view_as_real(z * table).flatten(-2)  # (..., [R,] L, D)
    return rotated.reshape(x.shape).to(x.dtype)
