"""Where the automatic mask generator prompts: point grids and crop boxes.

Points are (x, y) in [0, 1], x varying fastest; boxes are XYXY in pixels with exclusive
``x1, y1``. A crop layer ``i`` tiles the image with ``2**i × 2**i`` overlapping crops.
"""

from __future__ import annotations

import math
from itertools import product

import numpy as np

CropBox = tuple[int, int, int, int]  # x0, y0, x1, y1 in image pixels, x1/y1 exclusive


def build_point_grid(n_per_side: int) -> np.ndarray:
    """(n², 2) float64 cell centres of an n×n grid over the unit square, row by row."""
    if n_per_side < 1:
        raise ValueError(f"a point grid needs at least 1 point per side, got {n_per_side}")
    half_cell = 1.0 / (2 * n_per_side)
    side = np.linspace(half_cell, 1.0 - half_cell, n_per_side)
    xs, ys = np.meshgrid(side, side)  # (n, n) each, x along columns
    return np.stack([xs.ravel(), ys.ravel()], axis=-1)


def build_all_layer_point_grids(
    n_per_side: int, n_layers: int, scale_per_layer: int
) -> list[np.ndarray]:
    """One grid per crop layer 0..n_layers; layer i has ``int(n / scale**i)`` points per side."""
    return [build_point_grid(int(n_per_side / (scale_per_layer**i))) for i in range(n_layers + 1)]


def generate_crop_boxes(
    im_size: tuple[int, int], n_layers: int, overlap_ratio: float
) -> tuple[list[CropBox], list[int]]:
    """Crop boxes of all layers and the layer of each; the first box is the whole image.

    Crops of layer i overlap by ``overlap_ratio`` of the short side scaled by ``2 / 2**i`` and
    are listed column by column (x origin outer, y origin inner).
    """
    im_h, im_w = im_size
    boxes: list[CropBox] = [(0, 0, im_w, im_h)]
    layers = [0]
    short_side = min(im_h, im_w)
    for layer in range(1, n_layers + 1):
        n_side = 2**layer
        overlap = int(overlap_ratio * short_side * (2 / n_side))
        crop_w = _crop_length(im_w, n_side, overlap)
        crop_h = _crop_length(im_h, n_side, overlap)
        x_origins = [int((crop_w - overlap) * k) for k in range(n_side)]
        y_origins = [int((crop_h - overlap) * k) for k in range(n_side)]
        for x0, y0 in product(x_origins, y_origins):
            boxes.append((x0, y0, min(x0 + crop_w, im_w), min(y0 + crop_h, im_h)))
            layers.append(layer)
    return boxes, layers


def _crop_length(length: int, n_crops: int, overlap: int) -> int:
    """Side of each of ``n_crops`` crops that cover ``length`` with ``overlap`` between them."""
    return math.ceil((overlap * (n_crops - 1) + length) / n_crops)
