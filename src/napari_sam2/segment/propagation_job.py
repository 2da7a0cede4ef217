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
from typing import TYPE_CHECKING, Any

from napari_sam2.axes import describe_plane, layer_array
from napari_sam2.jobs import Failure, LayerJob, Written
from napari_sam2.layers import LabelsWriter
from napari_sam2.models import ModelLoader
from napari_sam2.segment.propagation import FrameMasks, PropagationPlan, run_propagation

if TYPE_CHECKING:
    import napari
    from napari.layers import Image, Labels

__all__ = ["PropagationRun"]


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
