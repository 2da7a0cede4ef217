"""Checking user prompts before they reach the model, with messages that say how to fix them."""

from __future__ import annotations

from typing import Any

import numpy as np

VALID_LABELS = (-1, 0, 1)  # padding, negative click, positive click (boxes go through `box=`)


def _as_float_array(value: Any, name: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric, got {value!r}") from exc
    bad = ~np.isfinite(array)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} contains NaN or infinite values ({array[where]} at index {list(where)}); "
            f"every entry of {name} must be a finite number"
        )
    return array


def _bounds(hw: tuple[int, int], normalized: bool) -> tuple[float, float]:
    return (1.0, 1.0) if not normalized else (float(hw[1]), float(hw[0]))


def validate_points(
    coords: Any,
    labels: Any,
    hw: tuple[int, int],
    normalize_coords: bool = True,
    *,
    names: tuple[str, str] = ("point_coords", "point_labels"),
    image: str = "the image given to set_image",
) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) or (B, N, 2) (x, y) points with (N,) or (B, N) labels in {1, 0, -1}.

    Points must lie inside the image of size ``hw`` (H, W) in pixels, or inside [0, 1] when
    ``normalize_coords`` is False. ``names`` and ``image`` are how the caller's API calls the
    two arguments and the picture, so that messages use the words the user typed.
    """
    coords_name, labels_name = names
    if (coords is None) != (labels is None):
        raise ValueError(f"{coords_name} and {labels_name} must be given together")
    xy = _as_float_array(coords, coords_name)
    lab = np.asarray(labels)
    if xy.ndim not in (2, 3) or xy.shape[-1] != 2:
        hint = "; one click is [[x, y]], not [x, y]" if xy.shape == (2,) else ""
        raise ValueError(f"{coords_name} must have shape (N, 2) or (B, N, 2), got {xy.shape}{hint}")
    if lab.shape != xy.shape[:-1]:
        raise ValueError(
            f"{labels_name} must have shape {xy.shape[:-1]} to match {coords_name} "
            f"{xy.shape}, got {lab.shape}: one label per point"
        )
    if lab.size and not np.isin(lab, VALID_LABELS).all():
        bad = sorted(set(np.unique(lab).tolist()) - set(VALID_LABELS))
        raise ValueError(
            f"{labels_name} must be 1 (positive), 0 (negative) or -1 (padding), got {bad}; "
            "pass boxes with box=[x0, y0, x1, y1]"
        )
    width, height = _bounds(hw, normalize_coords)
    outside = (xy[..., 0] < 0) | (xy[..., 0] > width) | (xy[..., 1] < 0) | (xy[..., 1] > height)
    outside &= lab != -1
    if outside.any():
        index = tuple(int(i) for i in np.argwhere(outside)[0])
        x, y = xy[index]
        if normalize_coords:
            where = f"{image} ({hw[0]}×{hw[1]} pixels, H×W)"
            units = "points are (x, y) in pixels, x along the width"
        else:
            where = "[0, 1]²"
            units = "with normalize_coords=False points are (x, y) in [0, 1]"
        raise ValueError(f"point {index[-1]} at (x={x:g}, y={y:g}) lies outside {where}; {units}")
    return xy.astype(np.float32), lab.astype(np.int32)


def validate_box(box: Any, hw: tuple[int, int], normalize_coords: bool = True) -> np.ndarray:
    """(4,) or (B, 4) boxes [x0, y0, x1, y1] with x0 ≤ x1 and y0 ≤ y1, inside the image."""
    boxes = _as_float_array(box, "box")
    if boxes.ndim not in (1, 2) or boxes.shape[-1] != 4:
        raise ValueError(
            f"box must have shape (4,) or (B, 4) as [x0, y0, x1, y1], got {boxes.shape}"
        )
    flat = boxes.reshape(-1, 4)
    for i, (x0, y0, x1, y1) in enumerate(flat):
        if x1 < x0 or y1 < y0:
            raise ValueError(
                f"box {i} [{x0:g}, {y0:g}, {x1:g}, {y1:g}] has x1 < x0 or y1 < y0; boxes are "
                "[x0, y0, x1, y1] with the top-left corner first"
            )
    width, height = _bounds(hw, normalize_coords)
    if (
        (flat[:, [0, 2]] < 0).any()
        or (flat[:, [0, 2]] > width).any()
        or ((flat[:, [1, 3]] < 0).any() or (flat[:, [1, 3]] > height).any())
    ):
        raise ValueError(
            f"box {flat.tolist()} reaches outside the image of size {hw[0]}×{hw[1]} (H×W)"
        )
    return boxes.astype(np.float32)


def validate_mask_input(mask_input: Any, low_res_size: int) -> np.ndarray:
    """Low-res logits (1, h, w) or (B, 1, h, w), h = w = S/4 (a previous predict's 3rd output)."""
    mask = _as_float_array(mask_input, "mask_input")
    if mask.ndim == 3:
        mask = mask[None]
    if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[-2:] != (low_res_size, low_res_size):
        raise ValueError(
            f"mask_input must be low-resolution logits of shape (1, {low_res_size}, {low_res_size})"
            f" or (B, 1, {low_res_size}, {low_res_size}) (the third output of predict, one mask), "
            f"got {np.shape(mask_input)}"
        )
    return mask.astype(np.float32)
