"""Redo a saved segmentation without the viewer: a session file's prompts on a stack.

The same planning and the same worker body as the widget
(:mod:`napari_sam2.segment.propagation`), on a napari-free
:class:`~napari_sam2.prompts.PromptSet`, so a session saved in napari and replayed on a cluster
gives the widget's result and imports no napari at all. Every stack position with prompts is
tracked through the whole video axis, in both directions from its first prompted frame.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from napari_sam2.layers import merge_mask
from napari_sam2.models import ModelLoader
from napari_sam2.prompts import PromptSet
from napari_sam2.segment.propagation import (
    FrameMasks,
    NoPromptsError,
    plan_propagation,
    prompted_lines,
    run_propagation,
)

__all__ = ["replay_session"]


def replay_session(
    stack: Any,
    session: PromptSet,
    factory: ModelLoader,
    *,
    out: Any | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Any:
    """Track the session's objects through ``stack`` (..., H, W); returns the labels.

    ``out`` (a numpy array or memmap of the stack's shape) receives the labels frame by
    frame; by default a new uint32 array. Labels saved in the session are the start: replayed
    masks fill only pixels that are empty or already the object's, as in the widget.
    ``progress(done, total)`` is called after each frame; ``should_stop()`` ends the run early,
    keeping the frames done. The video axis is the saved one, else the first leading axis.
    """
    shape = tuple(int(n) for n in stack.shape)
    if shape != session.image_shape:
        raise ValueError(
            f"the session was saved for an image of shape {session.image_shape} "
            f"({session.image_name!r}), but the stack has shape {shape}"
        )
    n_leading = len(shape) - 2
    axis = session.video_axis if session.video_axis is not None else (0 if n_leading else None)
    if axis is None:
        raise ValueError("a 2D image has no stack axis to propagate along")
    labels = np.zeros(shape, np.uint32) if out is None else out
    if session.labels is not None:
        labels[...] = session.labels
    starts = [p.coords for p in session.points] + [
        (*b.plane, 0, 0) for b in session.boxes if b.plane is not None
    ]
    if not starts:
        raise ValueError("the session has no prompts to replay")
    first = min(round(float(c[axis])) for c in starts)
    line = tuple(first if a == axis else 0 for a in range(n_leading))
    plans = []
    for position in prompted_lines(session, line, axis):
        try:
            plans.append(plan_propagation(session, position, axis, "both"))
        except NoPromptsError:
            continue
    total = sum(plan.total for plan in plans)
    done = 0
    limits = session.contrast_limits or _limits(stack)
    for plan in plans:
        for item in run_propagation(factory, stack, limits, plan):
            if not isinstance(item, FrameMasks):
                raise ValueError(item.message)
            plane = plan.plane(item.frame)
            current = np.asarray(labels[plane])
            for object_id, mask in zip(item.obj_ids, item.masks):
                ys, xs, values, _ = merge_mask(current, mask, object_id)
                current[ys, xs] = values
            labels[plane] = current
            done += 1
            if progress is not None:
                progress(done, total)
            if should_stop is not None and should_stop():
                return labels
    return labels


def _limits(stack: Any) -> tuple[float, float]:
    """The data's range, as napari's Image layer picks without limits (sessions saved by the
    widget always hold the limits the model saw)."""
    data = np.asarray(stack)
    return float(np.nanmin(data)), float(np.nanmax(data))
