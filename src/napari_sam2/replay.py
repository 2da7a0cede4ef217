"""Redo a saved segmentation without the viewer: a session file's prompts on a stack.

The same planning (:mod:`napari_sam2.propagation`) and the same worker body
(:func:`napari_sam2.propagation_job.run_propagation`) as the widget, so a session saved in
napari and replayed on a cluster gives the widget's result. Every stack position with prompts
is tracked through the whole video axis, in both directions from its first prompted frame.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from napari_sam2.models import ModelLoader
from napari_sam2.propagation_job import FrameMasks, run_propagation
from napari_sam2.session_file import Session

__all__ = ["replay_session"]


def replay_session(
    stack: Any,
    session: Session,
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
    keeping the frames done.
    """
    from napari.layers import Image

    from napari_sam2.axes import stack_axis
    from napari_sam2.layers import LabelsWriter
    from napari_sam2.propagation import NoPromptsError, plan_propagation, prompted_lines

    shape = tuple(int(n) for n in stack.shape)
    if shape != session.image_shape:
        raise ValueError(
            f"the session was saved for an image of shape {session.image_shape} "
            f"({session.image_name!r}), but the stack has shape {shape}"
        )
    limits = session.contrast_limits
    image = Image(stack, contrast_limits=limits, name=session.image_name)
    axis = session.video_axis if session.video_axis is not None else stack_axis(image)
    if axis is None:
        raise ValueError("a 2D image has no stack axis to propagate along")
    points, shapes, labels = session.to_layers(image)
    if labels is None:
        from napari.layers import Labels

        labels = Labels(np.zeros(shape, np.uint32) if out is None else out)
    elif out is not None:
        out[...] = labels.data
        labels = type(labels)(out)
    writer = LabelsWriter(labels)
    starts = [p.coords for p in session.points] + [(*b.plane, 0, 0) for b in session.boxes]
    if not starts:
        raise ValueError("the session has no prompts to replay")
    first = min(round(float(c[axis])) for c in starts)
    line = tuple(first if a == axis else 0 for a in range(len(shape) - 2))
    plans = []
    for position in prompted_lines(image, points, shapes, None, line, axis):
        try:
            plans.append(plan_propagation(image, points, position, axis, "both", None, shapes))
        except NoPromptsError:
            continue
    total = sum(plan.total for plan in plans)
    done = 0
    low, high = (float(v) for v in image.contrast_limits)
    for plan in plans:
        for item in run_propagation(factory, image.data, (low, high), plan):
            if not isinstance(item, FrameMasks):
                raise ValueError(item.message)
            plane = plan.plane(item.frame)
            for object_id, mask in zip(item.obj_ids, item.masks):
                writer.write(plane, object_id, mask)
            done += 1
            if progress is not None:
                progress(done, total)
            if should_stop is not None and should_stop():
                return labels.data
    return labels.data
