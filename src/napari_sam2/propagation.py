"""Propagating prompts through a stack with SAM 2's video predictor, in a napari worker.

The stack's video axis (T or Z) becomes SAM 2's video; every other leading axis stays at the
plane the user is looking at (a TZYX stack is tracked through T at the current z). Prompts are
read from the Points layer on the main thread, the model runs in a generator worker, and each
frame's masks are written into the Labels layer on the main thread as soon as they arrive, so
the user watches the result grow, can stop at any frame, and keeps what was done. A whole run is
one undo step.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
from psygnal import Signal

from napari_sam2.axes import axis_name, describe_plane, layer_array
from napari_sam2.layers import (
    OBJECT_ID,
    LabelsWriter,
    points_to_prompts,
    prompt_planes,
)
from napari_sam2.models import PredictorFactory

if TYPE_CHECKING:
    import napari
    from napari.layers import Image, Labels, Points, Shapes
    from napari.qt.threading import GeneratorWorker

__all__ = [
    "DIRECTIONS",
    "Direction",
    "FrameMasks",
    "FramePrompt",
    "NoPromptsError",
    "Propagation",
    "PropagationPlan",
    "plan_propagation",
    "prompted_lines",
    "run_propagation",
    "stack_view",
]

PlaneIndex = tuple[int, ...]
Direction = Literal["forward", "backward", "both"]
DIRECTIONS: tuple[Direction, ...] = ("forward", "backward", "both")


@dataclass(frozen=True)
class FramePrompt:
    """One object's prompts on one frame: (N, 2) x, y points, (N,) labels 1/0, a box or None,
    or a (H, W) bool mask (which replaces points and box)."""

    xy: np.ndarray
    labels: np.ndarray
    box: np.ndarray | None = None
    mask: np.ndarray | None = None

    @property
    def has_object(self) -> bool:
        """A positive point, a box or a non-empty mask: something SAM 2 can segment."""
        if self.mask is not None:
            return bool(self.mask.any())
        return bool((self.labels == 1).any()) or self.box is not None


Prompts = dict[int, dict[int, FramePrompt]]  # object -> frame -> prompt


@dataclass(frozen=True)
class PropagationPlan:
    """What one run does: which frames, in which order, from which prompts.

    ``line`` is the plane the user is on; its entry on ``axis`` is the start frame. Frames
    ``first..last`` (inclusive) are the allowed range.
    """

    axis: int
    line: PlaneIndex
    first: int
    last: int
    direction: Direction
    prompts: Prompts = field(repr=False)

    @property
    def start(self) -> int:
        return self.line[self.axis]

    @property
    def passes(self) -> tuple[bool, ...]:
        """``reverse`` flags of the passes, in order."""
        return {"forward": (False,), "backward": (True,), "both": (False, True)}[self.direction]

    def span(self, reverse: bool) -> int:
        """Frames tracked after the start frame in one pass."""
        return self.start - self.first if reverse else self.last - self.start

    @property
    def total(self) -> int:
        """Frames the run yields (the start frame once per pass)."""
        return sum(self.span(reverse) + 1 for reverse in self.passes)

    def plane(self, frame: int) -> PlaneIndex:
        return tuple(frame if a == self.axis else i for a, i in enumerate(self.line))


class NoPromptsError(ValueError):
    """Nothing to propagate on a stack: no object has a positive point, a box or a mask."""


@dataclass(frozen=True)
class FrameMasks:
    """One frame's result, from the worker: (N, H, W) bool masks of ``obj_ids``."""

    frame: int
    obj_ids: list[int]
    masks: np.ndarray


@dataclass(frozen=True)
class _Failure:
    message: str


def plan_propagation(
    image: Image,
    points: Points | None,
    line: PlaneIndex,
    axis: int,
    direction: Direction = "forward",
    frame_range: tuple[int, int] | None = None,
    shapes: Shapes | None = None,
    masks: Labels | None = None,
) -> PropagationPlan:
    """Read every object's prompts on the frames of ``line`` and check the request.

    Raises ValueError with a sentence for the user when there is nothing to propagate.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    if not 0 <= axis < len(line):
        raise ValueError(
            f"{image.name!r} has no stack axis to propagate along: it is a single 2D image"
        )
    n_frames = int(layer_array(image).shape[axis])
    first, last = (0, n_frames - 1) if frame_range is None else map(int, frame_range)
    name = axis_name(image, axis)
    if not 0 <= first <= last < n_frames:
        raise ValueError(
            f"frame range {first}..{last} is not within {name}=0..{n_frames - 1}; pick "
            "first ≤ last inside the stack"
        )
    if not first <= line[axis] <= last:
        raise ValueError(
            f"the current {name}={line[axis]} is outside the range {first}..{last}; move the "
            "slider into the range (propagation starts from the frame on screen)"
        )
    n_points = 0 if points is None else len(points.data)
    n_boxes = 0 if shapes is None else len(shapes.data)
    if n_points == 0 and n_boxes == 0 and masks is None:
        raise ValueError(
            "there are no prompts yet: press 'Add points' and click on an object, or "
            "'Add box' and draw a rectangle around it"
        )
    prompts = _prompts_on_line(image, points, shapes, line, axis)
    if masks is not None:
        _add_mask_prompts(prompts, masks, image, line, axis)
    if not prompts:
        where = ", ".join(f"{axis_name(image, a)}={i}" for a, i in enumerate(line) if a != axis)
        raise NoPromptsError(
            "no object has a positive point, a box or a mask on this stack"
            + (f" ({where})" if where else "")
            + ": click on an object on some frame first"
        )
    return PropagationPlan(axis, tuple(line), first, last, direction, prompts)


def _prompts_on_line(
    image: Image, points: Points | None, shapes: Shapes | None, line: PlaneIndex, axis: int
) -> Prompts:
    """Objects with a positive point or a box on the frames of ``line``, and their prompts."""
    from napari_sam2.boxes import box_planes, shapes_to_box

    groups: set[tuple[int, int]] = set()  # (object, frame)
    for layer, planes_of in ((points, prompt_planes), (shapes, box_planes)):
        if layer is None or len(layer.data) == 0:
            continue
        rows = list(range(len(layer.data)))
        ids = np.asarray(layer.features[OBJECT_ID], dtype=np.int64)
        for row, plane in zip(rows, planes_of(layer, rows, image)):
            if plane is None:  # a (y, x) prompt layer prompts the frame on screen
                groups.add((int(ids[row]), line[axis]))
            elif all(p == q for a, (p, q) in enumerate(zip(plane, line)) if a != axis):
                groups.add((int(ids[row]), plane[axis]))
    n_frames = int(layer_array(image).shape[axis])
    prompts: Prompts = {}
    for object_id, frame in sorted(groups):
        if not 0 <= frame < n_frames:
            raise ValueError(
                f"object {object_id} has a prompt at {axis_name(image, axis)}={frame}, beyond "
                f"the stack (0..{n_frames - 1}); move or delete it"
            )
        plane = tuple(frame if a == axis else i for a, i in enumerate(line))
        xy, labels = np.zeros((0, 2), np.float32), np.zeros(0, np.int32)
        if points is not None:
            xy, labels = points_to_prompts(points, plane, image, object_id)
        box = None if shapes is None else shapes_to_box(shapes, plane, image, object_id)
        prompts.setdefault(object_id, {})[frame] = FramePrompt(xy, labels, box)
    return {k: v for k, v in prompts.items() if any(p.has_object for p in v.values())}


def _add_mask_prompts(
    prompts: Prompts, masks: Labels, image: Image, line: PlaneIndex, axis: int
) -> None:
    """Every object of ``masks`` on the frame on screen becomes a mask prompt there, unless
    the user clicked or boxed that object on that frame (those prompts win)."""
    from napari_sam2.axes import plane_shape

    expected = (*layer_array(image).shape[: len(line)], *plane_shape(image))
    if tuple(masks.data.shape) != expected:
        raise ValueError(
            f"Labels layer {masks.name!r} has shape {tuple(masks.data.shape)}, but image "
            f"{image.name!r} needs {expected}; choose a mask layer of the image's shape"
        )
    frame = line[axis]
    on_frame = np.asarray(masks.data[line])  # (H, W)
    for object_id in (int(i) for i in np.unique(on_frame) if i > 0):
        if frame in prompts.get(object_id, {}):
            continue
        empty = (np.zeros((0, 2), np.float32), np.zeros(0, np.int32))
        prompts.setdefault(object_id, {})[frame] = FramePrompt(*empty, mask=on_frame == object_id)


def prompted_lines(
    image: Image,
    points: Points | None,
    shapes: Shapes | None,
    masks: Labels | None,
    line: PlaneIndex,
    axis: int,
) -> list[PlaneIndex]:
    """Every stack through ``line``'s frame along ``axis`` that holds a prompt: the positions of
    the other leading axes (e.g. each z of a TZYX stack tracked through T), in order."""
    from napari_sam2.boxes import box_planes

    found: set[PlaneIndex] = set()
    for layer, planes_of in ((points, prompt_planes), (shapes, box_planes)):
        if layer is not None and len(layer.data):
            rows = list(range(len(layer.data)))
            for plane in planes_of(layer, rows, image):
                if plane is not None:
                    found.add(tuple(line[axis] if a == axis else i for a, i in enumerate(plane)))
    if masks is not None and masks.ndim == len(line) + 2:
        frame = np.asarray(masks.data[(slice(None),) * axis + (line[axis],)])  # other axes
        for position in np.argwhere(frame.reshape(*frame.shape[:-2], -1).any(axis=-1)):
            index = [int(i) for i in position]
            index.insert(axis, line[axis])
            found.add(tuple(index))
    return sorted(found) or [tuple(line)]


def stack_view(data: Any, line: PlaneIndex, axis: int) -> Any:
    """The (T, H, W[, C]) frames of ``line`` along ``axis``, as a view (numpy) or lazily."""
    key = tuple(slice(None) if a == axis else i for a, i in enumerate(line))
    return data[key]


def run_propagation(
    factory: PredictorFactory,
    data: Any,
    limits: tuple[float, float],
    plan: PropagationPlan,
) -> Generator[FrameMasks | _Failure, None, None]:
    """Worker body: yields each frame's masks as it is tracked; never touches a layer.

    Expected failures (model load, unreadable data) are yielded as a message, once.
    """
    from sam2.checkpoint import CheckpointError
    from sam2.hub import CheckpointDownloadError
    from sam2.sam2_video_predictor import SAM2VideoPredictor

    try:
        base = factory()
    except (CheckpointError, CheckpointDownloadError, ValueError, OSError, RuntimeError) as exc:
        yield _Failure(f"Could not load the SAM 2 model: {exc}")
        return
    # corrections are added as conditioning frames, so re-propagation keeps them
    video = SAM2VideoPredictor(
        base.model,
        fill_hole_area=8,
        add_all_frames_to_correct_as_cond=True,
        precision=getattr(base, "precision", "fp32"),
    )
    try:
        state = video.init_state(stack_view(data, plan.line, plan.axis), contrast_limits=limits)
    except (ValueError, TypeError, OSError, MemoryError) as exc:
        yield _Failure(f"SAM 2 could not read the stack: {exc}")
        return
    try:
        for object_id, frames in plan.prompts.items():
            for frame, prompt in sorted(frames.items()):
                if prompt.mask is not None:
                    video.add_new_mask(state, frame, object_id, prompt.mask)
                    continue
                has_points = prompt.labels.size > 0
                video.add_new_points_or_box(
                    state,
                    frame,
                    object_id,
                    points=prompt.xy if has_points else None,
                    labels=prompt.labels if has_points else None,
                    box=prompt.box,
                )
        for reverse in plan.passes:
            for frame, obj_ids, logits in video.propagate_in_video(
                state,
                start_frame_idx=plan.start,
                max_frame_num_to_track=plan.span(reverse),
                reverse=reverse,
            ):
                masks = (logits[:, 0] > 0).cpu().numpy()
                yield FrameMasks(int(frame), [int(cast(int, i)) for i in obj_ids], masks)
    finally:
        close = getattr(state.frames, "close", None)  # stop its prefetch thread now
        if close is not None:
            close()


class Propagation:
    """One run: a generator worker whose frames are written into a Labels layer as they come.

    ``stop`` asks the worker to quit after the frame in flight; frames already written stay.
    All writes of a run are grouped into one undo step of the Labels layer.
    """

    status = Signal(str)
    finished = Signal()

    def __init__(
        self,
        viewer: napari.viewer.Viewer,
        image: Image,
        labels: Labels,
        plan: PropagationPlan,
        group_history: bool = True,
    ) -> None:
        self.viewer = viewer
        self.image = image
        self.labels = labels
        self.plan = plan
        self.frames_done = 0
        self.stopped = False
        self.error: str | None = None
        self._writer = LabelsWriter(labels)
        self._group_history = group_history
        self._history = contextlib.ExitStack()
        self._worker: GeneratorWorker[Any, Any, Any] | None = None
        self._started = 0.0

    @property
    def running(self) -> bool:
        return self._worker is not None

    def start(self, factory: PredictorFactory, limits: tuple[float, float]) -> None:
        from napari.qt.threading import create_worker

        plan = self.plan
        objects = ", ".join(str(i) for i in plan.prompts)
        desc = f"SAM 2: propagating object(s) {objects} {plan.direction}"
        worker = create_worker(
            run_propagation,
            factory,
            layer_array(self.image),
            limits,
            plan,
            _progress={"total": plan.total, "desc": desc},
        )
        worker.yielded.connect(self._on_yielded)
        worker.errored.connect(self._on_errored)
        worker.finished.connect(self._on_finished)
        if self._group_history:
            self._history.enter_context(self.labels.block_history())
        self._worker = worker
        self._started = time.perf_counter()
        self.status.emit(f"propagating object(s) {objects} {plan.direction}: loading frames…")
        worker.start()

    def stop(self) -> None:
        """Stop after the frame being tracked; what was written stays."""
        if self._worker is not None and not self.stopped:
            self.stopped = True
            self._worker.quit()
            self.status.emit("stopping after the current frame…")

    def _layers_gone(self) -> str | None:
        for role, layer in (("output Labels", self.labels), ("image", self.image)):
            if layer not in self.viewer.layers:
                return (
                    f"propagation stopped: the {role} layer {layer.name!r} was removed; "
                    f"{self.frames_done} frame(s) were done"
                )
        return None

    def _on_yielded(self, item: FrameMasks | _Failure) -> None:
        if isinstance(item, _Failure):
            self._fail(item.message)
            return
        gone = self._layers_gone()
        if gone is not None:
            self._fail(gone)
            return
        plane = self.plan.plane(item.frame)
        blocked = 0
        try:
            for object_id, mask in zip(item.obj_ids, item.masks):
                blocked += self._writer.write(plane, object_id, mask).blocked
        except ValueError as exc:
            self._fail(f"propagation stopped at {describe_plane(self.image, plane)}: {exc}")
            return
        self.frames_done += 1
        elapsed = time.perf_counter() - self._started
        left = self.plan.total - self.frames_done
        eta = elapsed / self.frames_done * left
        note = f"; {blocked} px left to other objects" if blocked else ""
        self.status.emit(
            f"propagated {describe_plane(self.image, plane)} ({self.frames_done}/"
            f"{self.plan.total}, ~{eta:.0f} s left){note}"
        )

    def _on_errored(self, exc: BaseException) -> None:
        self._fail(f"propagation failed: {type(exc).__name__}: {exc}")

    def _fail(self, message: str) -> None:
        from napari.utils.notifications import show_error

        if self.error is None:
            self.error = message
            show_error(message)
            self.status.emit(message)
        self.stop()

    def _on_finished(self) -> None:
        self._history.close()  # one undo step for the whole run
        self._worker = None
        if self.error is None:
            seconds = time.perf_counter() - self._started
            verb = "stopped after" if self.stopped else "done:"
            self.status.emit(f"propagation {verb} {self.frames_done} frame(s) in {seconds:.1f} s")
        self.finished.emit()
