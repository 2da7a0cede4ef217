"""Checks on what a tracking run is given: the stack, the seed labels and the output array.

They run before anything slow (a model load) and raise ValueErrors that say what is wrong and
how to fix it, so the widget can show them as notifications and the command line as messages.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["check_fits", "check_inputs", "output_array", "stack_shape"]


def check_inputs(
    frames: Any, seed_labels: Any, seed_frame: int, has_prompts: bool = False
) -> tuple[tuple[int, int, int], np.ndarray]:
    """The stack's (T, Y, X) shape and the seed frame's labels, or a ValueError that says
    what is wrong (so a caller can check before loading a model)."""
    shape = stack_shape(frames)
    if not 0 <= int(seed_frame) < shape[0]:
        raise ValueError(f"seed frame {seed_frame} is outside the stack's frames 0..{shape[0] - 1}")
    seed = _seed_image(seed_labels, shape, int(seed_frame))
    if not seed.any() and not has_prompts:
        raise ValueError(
            f"the seed labels on frame {seed_frame} contain no objects: paint or load at least "
            "one cell (or give click/box prompts) before tracking"
        )
    return shape, seed


def output_array(out: Any, shape: tuple[int, int, int]) -> Any:
    """``out`` after checking that it can hold the stack's labels: (T, Y, X) and integer."""
    out_shape = tuple(int(s) for s in out.shape)
    if out_shape != shape:
        raise ValueError(f"the output labels have shape {out_shape}, but the stack is {shape}")
    if not np.issubdtype(np.dtype(out.dtype), np.integer):
        raise ValueError(f"the output labels must be an integer array, got dtype {out.dtype}")
    return out


def check_fits(frame: np.ndarray, dtype: Any) -> None:
    """A ValueError when a frame's track ids overflow ``dtype`` (numpy would wrap silently)."""
    top = int(frame.max(initial=0))
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer) and top > np.iinfo(dtype).max:
        raise ValueError(
            f"track id {top} does not fit the output's {dtype} labels; use a wider integer "
            "type (e.g. int32)"
        )


def stack_shape(frames: Any) -> tuple[int, int, int]:
    """The (T, Y, X) shape of a stack (or of a shape tuple), or a ValueError naming the fix."""
    shape = tuple(int(s) for s in (frames if isinstance(frames, tuple) else frames.shape))
    if len(shape) != 3:
        hint = (
            " (one channel of a multichannel stack, or one z-plane of a 3D+t stack)"
            if len(shape) == 4
            else ""
        )
        raise ValueError(
            f"cell tracking needs a (T, Y, X) stack, got shape {shape}; pass a 2D+t stack{hint}"
        )
    if shape[0] < 1 or shape[1] < 1 or shape[2] < 1:
        raise ValueError(f"the stack of shape {shape} has no frames or empty frames")
    return shape


def _seed_image(seed: Any, shape: tuple[int, int, int], seed_frame: int) -> np.ndarray:
    """The seed frame's labels as int64 (Y, X), after checking shape and type."""
    seed_shape = tuple(int(s) for s in getattr(seed, "shape", np.shape(seed)))
    if seed_shape == shape:
        image = np.asarray(seed[seed_frame])
    elif seed_shape == shape[1:]:
        image = np.asarray(seed)
    else:
        raise ValueError(
            f"seed labels of shape {seed_shape} fit neither a frame {shape[1:]} nor the stack "
            f"{shape}; draw the seed layer on the image being tracked"
        )
    if image.dtype == bool:
        return image.astype(np.int64)
    if not np.issubdtype(image.dtype, np.integer):
        raise ValueError(f"seed labels must be integer (a Labels layer), got dtype {image.dtype}")
    if image.size and image.min() < 0:
        raise ValueError("seed labels must not be negative (0 is background)")
    return image.astype(np.int64)
