"""A propagation run: SAM 2's video predictor in a napari worker, frames written as they come.

The model runs in a generator worker and yields each frame's masks; they are written into the
Labels layer on the main thread at once, so the user watches the result grow, can stop at any
frame and keeps what was done. :class:`PropagationQueue` runs several stacks in turn (every z
of a TZYX stack) and makes the whole run one undo step.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np
from psygnal import Signal

from napari_sam2.axes import describe_plane, layer_array
from napari_sam2.layers import LabelsWriter
from napari_sam2.propagation import PropagationPlan

if TYPE_CHECKING:
    import napari
    from napari.layers import Image, Labels
    from napari.qt.threading import GeneratorWorker

__all__ = ["FrameMasks", "Propagation", "PropagationQueue", "run_propagation", "stack_view"]

PlaneIndex = tuple[int, ...]


class HasModel(Protocol):
    """A loaded image or video predictor: what a propagation needs is its model."""

    model: Any


ModelFactory = Callable[[], HasModel]  # e.g. napari_sam2.models.model_factory(...)


@dataclass(frozen=True)
class FrameMasks:
    """One frame's result, from the worker: (N, H, W) bool masks of ``obj_ids``."""

    frame: int
    obj_ids: list[int]
    masks: np.ndarray


@dataclass(frozen=True)
class _Failure:
    message: str


def stack_view(data: Any, line: PlaneIndex, axis: int) -> Any:
    """The (T, H, W[, C]) frames of ``line`` along ``axis``, as a view (numpy) or lazily."""
    key = tuple(slice(None) if a == axis else i for a, i in enumerate(line))
    return data[key]


def run_propagation(
    factory: ModelFactory,
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

    def start(self, factory: ModelFactory, limits: tuple[float, float]) -> None:
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


class PropagationQueue:
    """Runs plans one after another into one Labels layer, as a single undo step.

    Stopping (or an error) ends the whole queue; frames already written stay.
    """

    status = Signal(str)
    finished = Signal()

    def __init__(self, viewer: napari.viewer.Viewer, image: Image) -> None:
        self.viewer = viewer
        self.image = image
        self.current: Propagation | None = None
        self._plans: list[PropagationPlan] = []
        self._history = contextlib.ExitStack()
        self._factory: ModelFactory | None = None

    @property
    def running(self) -> bool:
        return self.current is not None and self.current.running

    def start(
        self, plans: list[PropagationPlan], labels: Labels, factory: ModelFactory
    ) -> Propagation:
        if self.running:
            raise RuntimeError("a propagation is already running")
        self._history.enter_context(labels.block_history())
        self._plans = list(plans[1:])
        self._factory = factory
        return self._start(plans[0], labels)

    def stop(self) -> None:
        """Stop after the frame in flight; the remaining stacks are not started."""
        self._plans.clear()
        if self.current is not None:
            self.current.stop()

    def _start(self, plan: PropagationPlan, labels: Labels) -> Propagation:
        assert self._factory is not None
        run = Propagation(self.viewer, self.image, labels, plan, group_history=False)
        run.status.connect(self._relay_status)
        run.finished.connect(self._on_run_finished)
        self.current = run
        low, high = self.image.contrast_limits
        run.start(self._factory, (float(low), float(high)))
        return run

    def _relay_status(self, text: str) -> None:
        self.status.emit(text)

    def _on_run_finished(self) -> None:
        run = self.current
        if run is not None and self._plans and not run.stopped and run.error is None:
            self._start(self._plans.pop(0), run.labels)
            return
        self._plans.clear()
        self._history.close()
        self.finished.emit()
