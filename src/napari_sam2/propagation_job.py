"""A propagation run: SAM 2's video predictor in a napari worker, frames written as they come.

The model runs in a generator worker and yields each frame's masks; they are written into the
Labels layer on the main thread at once, so the user watches the result grow, can stop at any
frame and keeps what was done. One run may track several stacks in turn (every z of a TZYX
stack): one worker, one progress bar, one undo step (:class:`PropagationRun`, on the shared
:class:`~napari_sam2.jobs.LayerJob` lifecycle).
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from napari_sam2.axes import describe_plane, layer_array
from napari_sam2.jobs import Failure, LayerJob, Written
from napari_sam2.layers import LabelsWriter
from napari_sam2.models import PROPAGATION_OPTIONS, ModelLoader
from napari_sam2.propagation import PropagationPlan

if TYPE_CHECKING:
    import napari
    from napari.layers import Image, Labels

__all__ = ["FrameMasks", "PropagationRun", "run_propagation", "stack_view"]

PlaneIndex = tuple[int, ...]


@dataclass(frozen=True)
class FrameMasks:
    """One frame's result, from the worker: (N, H, W) bool masks of ``obj_ids``."""

    frame: int
    obj_ids: list[int]
    masks: np.ndarray


def stack_view(data: Any, line: PlaneIndex, axis: int) -> Any:
    """The (T, H, W[, C]) frames of ``line`` along ``axis``, as a view (numpy) or lazily."""
    key = tuple(slice(None) if a == axis else i for a, i in enumerate(line))
    return data[key]


def run_propagation(
    factory: ModelLoader,
    data: Any,
    limits: tuple[float, float],
    plan: PropagationPlan,
) -> Generator[FrameMasks | Failure, None, None]:
    """Worker body: yields each frame's masks as it is tracked; never touches a layer.

    Expected failures (model load, unreadable data) are yielded as a message, once.
    """
    from sam2.checkpoint import CheckpointError
    from sam2.hub import CheckpointDownloadError

    try:
        loaded = factory()
    except (CheckpointError, CheckpointDownloadError, ValueError, OSError, RuntimeError) as exc:
        yield Failure(f"Could not load the SAM 2 model: {exc}")
        return
    video = loaded.video_predictor(PROPAGATION_OPTIONS)
    try:
        state = video.init_state(stack_view(data, plan.line, plan.axis), contrast_limits=limits)
    except (ValueError, TypeError, OSError, MemoryError) as exc:
        yield Failure(f"SAM 2 could not read the stack: {exc}")
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


def _run_plans(
    factory: ModelLoader, data: Any, limits: tuple[float, float], plans: Sequence[PropagationPlan]
) -> Generator[tuple[int, FrameMasks] | Failure, None, None]:
    """Worker body of a run: every plan in turn, each frame tagged with its plan's index."""
    for index, plan in enumerate(plans):
        for item in run_propagation(factory, data, limits, plan):
            if isinstance(item, Failure):
                yield item
                return
            yield index, item


class PropagationRun(LayerJob[tuple[int, FrameMasks]]):
    """One propagation: the plans' frames written into a Labels layer as they come.

    ``stop`` asks the worker to quit after the frame in flight (the remaining stacks are not
    started); frames already written stay. All writes of a run are one undo step.
    """

    noun = "propagation"

    def __init__(
        self,
        viewer: napari.viewer.Viewer,
        image: Image,
        labels: Labels,
        plans: Sequence[PropagationPlan],
    ) -> None:
        super().__init__(viewer, {"output Labels": labels, "image": image})
        if not plans:
            raise ValueError("a propagation needs at least one plan")
        self.image = image
        self.labels = labels
        self.plans = list(plans)
        self.plan = self.plans[0]  # the stack being written (the last one, once done)
        self._writer = LabelsWriter(labels)
        self._history = contextlib.ExitStack()

    def run(self, factory: ModelLoader) -> None:
        """Start the worker; the image's current contrast limits are what the model sees."""
        objects = ", ".join(str(i) for i in sorted({i for p in self.plans for i in p.prompts}))
        direction = self.plan.direction
        low, high = self.image.contrast_limits
        self._history.enter_context(self.labels.block_history())
        self.start(
            _run_plans,
            factory,
            layer_array(self.image),
            (float(low), float(high)),
            self.plans,
            total=sum(plan.total for plan in self.plans),
            desc=f"SAM 2: propagating object(s) {objects} {direction}",
            status=f"propagating object(s) {objects} {direction}: loading frames…",
        )

    def write(self, item: tuple[int, FrameMasks]) -> Written:
        index, masks = item
        self.plan = self.plans[index]
        plane = self.plan.plane(masks.frame)
        where = describe_plane(self.image, plane)
        blocked = 0
        try:
            for object_id, mask in zip(masks.obj_ids, masks.masks):
                blocked += self._writer.write(plane, object_id, mask).blocked
        except ValueError as exc:
            raise ValueError(f"at {where}, {exc}") from exc
        note = f"; {blocked} px left to other objects" if blocked else ""
        return Written(f"propagated {where}", note)

    def on_finished(self) -> None:
        self._history.close()  # one undo step for the whole run
