"""Redo a saved segmentation without the viewer: a session file's prompts on a stack.

The same planning and the same worker body as the widget
(:mod:`napari_sam2.segment.propagation`), on a napari-free
:class:`~napari_sam2.prompts.PromptSet`, so a session saved in napari and replayed on a cluster
gives the widget's result and imports no napari at all. Every stack position with prompts is
tracked through the whole video axis, in both directions from its first prompted frame.
:func:`run_segment` is ``napari-sam2 segment``: files in, a labels TIFF out, written so that
no input is touched and no half-done file gets the output's name.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from napari_sam2.layers import merge_mask
from napari_sam2.models import ModelChoice, ModelLoader, model_loader
from napari_sam2.prompts import PromptSet
from napari_sam2.safe_files import (
    check_new_file,
    keep_partial_file,
    move_into_place,
    partial_name,
    read_array,
    remove_path,
    running_name,
    saying_kept,
)
from napari_sam2.segment.propagation import (
    FrameMasks,
    NoPromptsError,
    plan_propagation,
    prompted_lines,
    run_propagation,
)

__all__ = ["check_session_labels", "replay_session", "run_segment"]


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
    check_session_labels(session, shape)
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


def check_session_labels(
    session: PromptSet, shape: tuple[int, ...], where: str = "the labels saved with the session"
) -> None:
    """ValueError unless the session's saved labels (if any) have the stack's ``shape``:
    2D labels for a 3D stack would otherwise be broadcast into every frame. ``where`` names
    the labels in the message."""
    if session.labels is not None and tuple(session.labels.shape) != shape:
        raise ValueError(
            f"{where} have shape {tuple(session.labels.shape)}, but the stack has shape "
            f"{shape}; they were saved for another image"
        )


# ---------------------------------------------------------------------------------- command
def run_segment(
    stack: str | os.PathLike[str],
    session: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    model: ModelChoice | None = None,
    overwrite: bool = False,
    progress: IO[str] | None = None,
) -> Path:
    """Replay a saved session's prompts on ``stack`` and write the labels as a TIFF.

    The stack is read as saved (any number of leading axes), read-only; the session's labels
    must have its shape. The labels are written frame by frame into a hidden
    ``.<name>.running.tif`` beside ``out``, renamed to ``out`` when the run completes; a run
    stopped by an error or Ctrl-C keeps the frames done as ``<name>.partial.tif`` (an earlier
    ``out`` stays as it was). No output may be, or link to, an input.
    """
    import tifffile

    from napari_sam2.headless import model_choice
    from napari_sam2.prompts import load_prompts

    saved = load_prompts(session)
    path = Path(stack)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    data = read_array(path)
    if tuple(data.shape) != saved.image_shape:
        raise ValueError(
            f"{path.name} has shape {tuple(data.shape)} but {Path(session).name} was saved for "
            f"{saved.image_shape}"
        )
    labels_file = _session_labels(Path(session))
    if labels_file is not None:
        where = f"the labels of {Path(session).name} ({labels_file.name})"
        check_session_labels(saved, tuple(data.shape), where)
    target = Path(out) if out else path.with_name(f"{path.stem}_sam2_labels.tif")
    inputs = {"the stack": path, "the session file": Path(session)}
    check_new_file(target, {**inputs, "the session's labels": labels_file}, overwrite)
    loader = model_loader(model or model_choice())
    loaded = loader()  # load before any output file is created
    if progress is not None:
        progress.write(f"precision {loaded.precision_reason}\n")
    running, labels = running_name(target), None
    start, done = time.perf_counter(), [0, 0]

    def report(finished: int, total: int) -> None:
        done[:] = [finished, total]
        if progress is not None:
            per_frame = (time.perf_counter() - start) / finished
            progress.write(
                f"\rsegmenting {finished}/{total} frames · {per_frame:.1f} s/frame · "
                f"ETA {per_frame * (total - finished):.0f} s "
            )
            progress.flush()

    try:
        labels = tifffile.memmap(
            running, shape=data.shape, dtype=np.uint32, photometric="minisblack"
        )
        replay_session(data, saved, loader, out=labels, progress=report)
        labels.flush()
    except BaseException as exc:
        if labels is not None:
            labels.flush()
        kept = keep_partial_file(running, target, *done)
        error = saying_kept(exc, kept, "segmenting", any_kept=bool(done[0]))
        if error is exc:
            raise
        raise error from exc
    finally:
        if progress is not None:
            progress.write("\n")
    move_into_place(running, target)
    remove_path(partial_name(target))  # an earlier stopped run's, now superseded
    return target


def _session_labels(session: Path) -> Path | None:
    """The labels file a session file names (load_prompts has read it, so it parses)."""
    document = json.loads(session.read_text(encoding="utf-8"))
    return session.with_name(str(document["labels"])) if document.get("labels") else None
