"""Checking the video predictor's arguments before anything in the session changes.

The reference takes frame indices, object ids and flags as whatever Python makes of them, so
``frame_idx=1.7`` tracks frame 1, ``obj_id=True`` is object 1 and ``reverse="False"`` runs
backwards; a NaN mask becomes a full-frame object. Each check here turns one such silent
coercion into a ``TypeError`` or ``ValueError`` naming the argument, the value and the fix, raised
before a prompt is stored, so a refused call leaves the session as it was.

Shapes: P points, H×W the video's frames.
"""

from __future__ import annotations

import operator
from collections.abc import Hashable
from typing import Any

import numpy as np
import torch

from sam2.prompts import validate_box, validate_points

__all__ = [
    "FrameIndexError",
    "check_flag",
    "check_frame_index",
    "check_frame_mask",
    "check_index",
    "check_obj_id",
    "check_span",
    "check_video_prompt",
]


class FrameIndexError(IndexError, ValueError):
    """A frame index outside the video.

    An ``IndexError`` as before (and as indexing a sequence raises), and a ``ValueError`` so
    that callers that report bad user input with ``except ValueError`` catch it too.
    """


def as_numpy(value: Any) -> np.ndarray:
    """A numpy view of a tensor (any device) or anything ``np.asarray`` takes."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _is_bool(value: object) -> bool:
    return isinstance(value, bool | np.bool_) or (
        isinstance(value, torch.Tensor) and value.dtype == torch.bool
    )


def check_index(value: object, name: str) -> int:
    """An integer argument (int, numpy or 0-d tensor integer); floats are never rounded.

    ``operator.index`` is the test: it takes exactly the values that can index a list.
    """
    if _is_bool(value):
        raise TypeError(f"{name} must be an integer, got the boolean {value!r}")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        kind = type(value).__name__
        raise TypeError(
            f"{name} must be an integer, got {value!r} ({kind}); it is not rounded for you: "
            f"pass int({name}) or round({name}) if that is what you mean"
        ) from None


def check_frame_index(value: object, num_frames: int, name: str = "frame_idx") -> int:
    """A frame index in ``0 .. num_frames - 1`` (negative indices do not count from the end)."""
    index = check_index(value, name)
    if not 0 <= index < num_frames:
        raise FrameIndexError(
            f"frame index {index} is out of range for a video of {num_frames} frames: "
            f"{name} must be 0 to {num_frames - 1}"
        )
    return index


def check_span(value: object, name: str = "max_frame_num_to_track") -> int | None:
    """How many frames to track after the start frame: None (to the end) or an int ≥ 0."""
    if value is None:
        return None
    span = check_index(value, name)
    if span < 0:
        raise ValueError(
            f"{name} must be ≥ 0 (frames tracked after the start frame), got {span}; "
            "use reverse=True to track backwards"
        )
    return span


def check_obj_id(obj_id: object) -> Hashable:
    """An object id as the reference takes it (an int, a string, any hashable), but not one
    that silently means another: ``True`` is ``1`` as a dict key, and a tensor hashes by
    identity, so the same id as a new tensor would be a new object."""
    if _is_bool(obj_id):
        raise TypeError(
            f"obj_id must be an int or a string, got the boolean {obj_id!r}, which would be "
            f"merged with object {int(bool(obj_id))}; pass the integer id"
        )
    if isinstance(obj_id, torch.Tensor | np.ndarray):
        raise TypeError(
            f"obj_id must be an int or a string, got a {type(obj_id).__name__} {obj_id!r}; "
            "pass int(obj_id)"
        )
    try:
        hash(obj_id)
    except TypeError:
        raise TypeError(
            f"obj_id must be hashable (an int or a string), got {obj_id!r} "
            f"({type(obj_id).__name__})"
        ) from None
    return obj_id


def check_flag(value: object, name: str) -> bool:
    """True/False (or numpy booleans, or 0/1): a string such as ``"False"`` is truthy."""
    if isinstance(value, bool | np.bool_) or (type(value) is int and value in (0, 1)):
        return bool(value)
    raise TypeError(
        f"{name} must be True or False, got {value!r} ({type(value).__name__}); any other "
        "value would be read by its truthiness"
    )


def check_frame_mask(mask: Any, hw: tuple[int, int]) -> np.ndarray:
    """A (H, W) boolean mask from a bool or numeric array; NaN and inf are refused, since
    ``astype(bool)`` makes them True and the object would cover the whole frame."""
    if mask is None:
        raise TypeError(f"mask must be a {hw} array of the object's pixels, got None")
    array = as_numpy(mask)
    if not (array.dtype == np.bool_ or np.issubdtype(array.dtype, np.number)):
        raise TypeError(
            f"mask must hold booleans or numbers (True/1 on the object), got dtype {array.dtype}"
        )
    if np.iscomplexobj(array):
        raise TypeError(f"mask must hold real numbers, got dtype {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"mask must be a 2D (H, W) array, got shape {array.shape}")
    if array.shape != hw:
        raise ValueError(
            f"mask of shape {array.shape} does not match the video's frames {hw} (H, W); "
            "give a mask of the frame's own size"
        )
    bad = ~np.isfinite(array) if np.issubdtype(array.dtype, np.floating) else None
    if bad is not None and bad.any():
        y, x = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"mask contains NaN or infinite values ({int(bad.sum())} of {array.size} pixels, "
            f"the first {array[y, x]} at (y={y}, x={x})); they would count as the object: "
            "pass a boolean mask, e.g. np.nan_to_num(mask) > 0.5"
        )
    return array.astype(bool)


def check_video_prompt(
    points: Any,
    labels: Any,
    box: Any,
    hw: tuple[int, int],
    *,
    normalize_coords: bool,
    clear_old_points: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """One object's clicks and/or box as (P, 2) (x, y) coordinates and (P,) labels.

    A box becomes its two corners, labelled 2 and 3, before the clicks (as in the reference).
    Coordinates stay in the caller's units (video pixels, or [0, 1] without normalising).
    """
    if (points is None) != (labels is None):
        raise ValueError("points and labels must be provided together")
    if points is None and box is None:
        raise ValueError("give points with labels, a box, or both")
    if box is not None and not clear_old_points:
        raise ValueError("a box must come before any click: use clear_old_points=True with a box")
    coords = np.zeros((0, 2), np.float32)  # (P, 2) (x, y)
    labs = np.zeros((0,), np.int32)  # (P,)
    if points is not None:
        coords, labs = validate_points(
            as_numpy(points),
            as_numpy(labels),
            hw,
            normalize_coords,
            names=("points", "labels"),
            image="the video's frames",
        )
        if coords.ndim == 3 and coords.shape[0] != 1:
            raise ValueError(
                f"points must have shape (N, 2) for one object, got {coords.shape}; "
                "add each object's clicks with its own obj_id"
            )
        coords, labs = coords.reshape(-1, 2), labs.reshape(-1)
        if len(coords) == 0 and box is None:
            raise ValueError(
                "points is empty (shape (0, 2)) and no box was given: click at least one point "
                "or give a box (or pass points=None, labels=None with box=...)"
            )
    if box is not None:
        corners = validate_box(as_numpy(box), hw, normalize_coords)
        if corners.ndim == 2 and corners.shape[0] != 1:
            raise ValueError(
                f"box must be one [x0, y0, x1, y1] for one object, got shape {corners.shape}; "
                "add each box with its own obj_id"
            )
        coords = np.concatenate([corners.reshape(2, 2), coords])
        labs = np.concatenate([np.array([2, 3], np.int32), labs])
    return coords, labs
