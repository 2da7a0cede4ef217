"""One :class:`SegmentController` per image layer: the model, the embeddings, the writes.

Embedding a slice is the slow step (seconds on a CPU), so it runs in a napari thread worker
and is cached per slice; a click then costs only the prompt encoder and the mask decoder and
runs on the main thread, where layers may be touched. torch and ``sam2`` are imported inside
the functions that need them so that opening napari and the widget stays instant.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.utils.notifications import show_error
from psygnal import Signal

from napari_sam2.axes import PlaneIndex, axis_name, describe_plane, layer_array, plane_index
from napari_sam2.layers import (
    OBJECT_ID,
    LabelsWriter,
    new_labels_layer,
    prepare_points_layer,
    set_point_defaults,
    toggle_polarity,
)
from napari_sam2.models import ModelLoader
from napari_sam2.segment.embeddings import EmbeddingCache
from napari_sam2.segment.layer_prompts import box_planes, point_planes, point_rows, read_prompts
from napari_sam2.segment.prompt_events import PromptEdits
from napari_sam2.segment.propagation import (
    Direction,
    NoPromptsError,
    plan_propagation,
    prompted_lines,
)
from napari_sam2.segment.propagation_job import PropagationRun

if TYPE_CHECKING:
    import napari
    from napari.layers import Image, Labels, Points, Shapes

    from sam2.sam2_image_predictor import SAM2ImagePredictor

__all__ = ["SegmentController"]


# ------------------------------------------------------------------------------ controller
class SegmentController:
    """Segments objects on the viewer's current slice of one image layer.

    Prompts come from a Points layer (``positive`` and ``object_id`` features); masks go to a
    Labels layer through :class:`~napari_sam2.layers.LabelsWriter`. ``segment`` predicts at
    once when the slice's embedding is cached, otherwise it queues the request and embeds
    the slice in a thread worker first. With ``live`` on, every point added, moved or removed
    re-segments the objects it belongs to.
    """

    status = Signal(str)
    busy_changed = Signal(bool)
    layers_changed = Signal()

    def __init__(
        self,
        viewer: napari.viewer.Viewer,
        image_layer: Image,
        factory: ModelLoader,
        *,
        cache_size: int = 8,
    ) -> None:
        self.viewer = viewer
        self.image_layer = image_layer
        self.cache_size = cache_size
        self.live = True
        self.object_id = 1
        self._factory = factory
        self._embeddings = EmbeddingCache(image_layer, factory, cache_size)
        self._embeddings.ready.connect(self._on_embedded)
        self._embeddings.failed.connect(self._fail)
        self._embeddings.status.connect(self._relay_status)
        self._embeddings.busy_changed.connect(self._relay_busy)
        self._written: set[tuple[PlaneIndex, int]] = set()  # (slice, object) we wrote
        self.accepted: set[int] = set()  # objects whose masks propagations leave alone
        self._point_edits = PromptEdits(image_layer, point_planes, lambda: self.object_id)
        self._box_edits = PromptEdits(image_layer, box_planes, lambda: self.object_id)
        self._points: Points | None = None
        self._shapes: Shapes | None = None
        self._labels: Labels | None = None
        self._writer: LabelsWriter | None = None
        self._propagation: PropagationRun | None = None  # the current (or last) run

    # -------------------------------------------------------------- state
    @property
    def busy(self) -> bool:
        """True while a model load or slice embedding runs in a worker."""
        return self._embeddings.busy

    @property
    def propagating(self) -> bool:
        """True while a propagation worker runs."""
        return self._propagation is not None and self._propagation.running

    @property
    def points_layer(self) -> Points | None:
        return self._points if self._in_viewer(self._points) else None

    @points_layer.setter
    def points_layer(self, layer: Points | None) -> None:
        """Use ``layer`` for prompts; refuses layers that cannot hold (…, y, x) points."""
        if layer is self._points:
            return
        if layer is not None and not 2 <= layer.ndim <= self.image_layer.ndim:
            raise ValueError(
                f"points layer {layer.name!r} has {layer.ndim} dimension(s), but prompts for "
                f"{self.image_layer.name!r} need 2 to {self.image_layer.ndim} (…, y, x); "
                "choose another layer or let the widget create one"
            )
        self._disconnect_points()
        self._points = layer
        if layer is not None:
            prepare_points_layer(layer, self.object_id)
            layer.events.data.connect(self._on_points_data)
            layer.bind_key("t", self._on_toggle_key, overwrite=True)
            self._show_object_points()

    @property
    def shapes_layer(self) -> Shapes | None:
        return self._shapes if self._in_viewer(self._shapes) else None

    @shapes_layer.setter
    def shapes_layer(self, layer: Shapes | None) -> None:
        """Use ``layer``'s rectangles as box prompts; refuses layers of too many dimensions."""
        from napari_sam2.segment.boxes import prepare_shapes_layer

        if layer is self._shapes:
            return
        if layer is not None and not 2 <= layer.ndim <= self.image_layer.ndim:
            raise ValueError(
                f"Shapes layer {layer.name!r} has {layer.ndim} dimension(s), but boxes for "
                f"{self.image_layer.name!r} need 2 to {self.image_layer.ndim} (…, y, x); "
                "choose another layer or let the widget create one"
            )
        if self._shapes is not None:
            self._shapes.events.data.disconnect(self._on_shapes_data)
        self._shapes = layer
        if layer is not None:
            prepare_shapes_layer(layer, self.object_id)
            layer.events.data.connect(self._on_shapes_data)

    @property
    def labels_layer(self) -> Labels | None:
        return self._labels if self._in_viewer(self._labels) else None

    @labels_layer.setter
    def labels_layer(self, layer: Labels | None) -> None:
        """Write into ``layer`` (None: a new one on the first write); refuses other shapes."""
        if layer is not None and tuple(layer.data.shape) != self._labels_shape():
            raise ValueError(
                f"Labels layer {layer.name!r} has shape {tuple(layer.data.shape)}, but image "
                f"{self.image_layer.name!r} needs {self._labels_shape()}; choose another "
                "output or let the widget create one"
            )
        self._labels = layer
        self._writer = LabelsWriter(layer) if layer is not None else None
        if layer is not None:
            layer.selected_label = self.object_id

    def set_factory(self, factory: ModelLoader) -> None:
        """Use another model: embeddings of the old one are dropped, labels stay."""
        self._factory = factory
        self._embeddings.set_factory(factory)

    def set_object_id(self, object_id: int) -> None:
        """Make ``object_id`` the object that new points prompt and that is shown."""
        self.object_id = int(object_id)
        if self.points_layer is not None:
            self._show_object_points()
            set_point_defaults(self.points_layer, object_id=self.object_id)
        if self.shapes_layer is not None:
            from napari_sam2.segment.boxes import set_box_defaults

            set_box_defaults(self.shapes_layer, self.object_id)
        if self.labels_layer is not None:
            self.labels_layer.selected_label = self.object_id

    def next_object_id(self) -> int:
        """One more than any id in the Labels layer or the prompts: never reuses an object."""
        highest = 0
        if self.labels_layer is not None and self._writer is not None:
            highest = self._writer.max_id()
        if self.points_layer is not None and len(self.points_layer.data):
            highest = max(highest, int(np.max(self.points_layer.features[OBJECT_ID])))
        return highest + 1

    def ensure_points_layer(self) -> Points:
        """The prompt layer, created (aligned with the image) and added when there is none."""
        if self.points_layer is None:
            from napari_sam2.layers import new_points_layer

            layer = new_points_layer(self.image_layer, self.object_id)
            self.viewer.add_layer(layer)
            self.points_layer = layer
            self.layers_changed.emit()
        assert self.points_layer is not None
        return self.points_layer

    def ensure_shapes_layer(self) -> Shapes:
        """The box layer, created (aligned with the image) and added when there is none."""
        if self.shapes_layer is None:
            from napari_sam2.segment.boxes import new_shapes_layer

            layer = new_shapes_layer(self.image_layer, self.object_id)
            self.viewer.add_layer(layer)
            self.shapes_layer = layer
            self.layers_changed.emit()
        assert self.shapes_layer is not None
        return self.shapes_layer

    def ensure_labels_layer(self) -> Labels:
        """The output layer; a new uint32 one is added just above the image when there is none.

        The active layer stays active, so the user's next click still adds a point.
        """
        if self.labels_layer is None:
            layer = new_labels_layer(self.image_layer)
            active = self.viewer.layers.selection.active
            index = self.viewer.layers.index(self.image_layer) + 1
            self.viewer.layers.insert(index, layer)
            if active is not None:
                self.viewer.layers.selection.active = active
            self.labels_layer = layer
            self.layers_changed.emit()
        assert self.labels_layer is not None
        return self.labels_layer

    # -------------------------------------------------------------- actions
    def prefetch(self) -> None:
        """Start embedding the current slice, so the first click is answered at once."""
        try:
            plane = plane_index(self.image_layer, self.viewer.dims)
        except ValueError:
            return
        self._embeddings.request(plane)

    def segment(
        self, obj_ids: Iterable[int] | None = None, plane: PlaneIndex | None = None
    ) -> None:
        """Segment objects (default: the current one) on a slice (default: the current one)."""
        try:
            if plane is None:
                plane = plane_index(self.image_layer, self.viewer.dims)
            self._check_plane(plane)
            if self.points_layer is None and self.shapes_layer is None:
                raise ValueError(
                    "there are no prompts yet: press 'Add points' and click on the object, "
                    "or 'Add box' and draw a rectangle around it"
                )
            self.ensure_labels_layer()
        except ValueError as exc:
            self._fail(str(exc))
            return
        ids = {self.object_id} if obj_ids is None else {int(i) for i in obj_ids}
        predictor = self._embeddings.get(plane)
        if predictor is None:
            self._embeddings.request(plane, ids)
            return
        for object_id in sorted(ids):
            self._predict_and_write(predictor, plane, object_id)

    def propagate(
        self,
        direction: Direction = "forward",
        frame_range: tuple[int, int] | None = None,
        axis: int | None = None,
        mask_layer: Labels | None = None,
        every_position: bool = False,
    ) -> PropagationRun | None:
        """Track every prompted object from the current frame through the stack.

        ``axis`` is the video axis (default: T, else Z, else the first leading axis). Objects
        of ``mask_layer`` on the current frame (e.g. from Cellpose) are mask prompts. With
        ``every_position`` every position of the other leading axes that holds prompts is
        tracked in turn (each z of a TZYX stack), else only the one on screen. Frames are
        written into the output layer as they are done; :meth:`stop` keeps them.
        """
        from napari_sam2.axes import stack_axis

        if self.propagating:
            self._fail("a propagation is already running: stop it first")
            return None
        try:
            line = plane_index(self.image_layer, self.viewer.dims)
            axis = stack_axis(self.image_layer) if axis is None else int(axis)
            axis = -1 if axis is None else axis
            image = self.image_layer
            prompts = read_prompts(image, self.points_layer, self.shapes_layer, mask_layer)
            names = [axis_name(image, a) for a in range(image.ndim - 2)]
            lines = [line]
            if every_position and axis >= 0:
                lines = prompted_lines(prompts, line, axis)
            plans = []
            for position in lines:
                try:
                    plans.append(
                        plan_propagation(
                            prompts,
                            position,
                            axis,
                            direction,
                            frame_range,
                            skip=frozenset(self.accepted),
                            axis_names=names,
                        )
                    )
                except NoPromptsError:
                    if len(lines) == 1:
                        raise
            labels = self.ensure_labels_layer()
        except ValueError as exc:
            self._fail(str(exc))
            return None
        run = PropagationRun(self.viewer, self.image_layer, labels, plans)
        run.status.connect(self._relay_status)
        run.finished.connect(self._on_propagation_finished)
        self._propagation = run
        run.run(self._factory)
        self.busy_changed.emit(True)
        return run

    def _relay_status(self, text: str) -> None:
        self.status.emit(text)

    def _on_propagation_finished(self) -> None:
        self.busy_changed.emit(self.busy)

    def stop(self) -> None:
        """Stop a running propagation after the frame in flight; finished frames stay."""
        if self._propagation is not None:
            self._propagation.stop()

    def accept_object(self) -> int:
        """Keep the current object's masks as they are and move on to a new object.

        Later propagations leave an accepted object alone (faster, and its corrected frames
        stay exactly as accepted); editing its prompts makes it editable again. Returns the
        new object id.
        """
        accepted = self.object_id
        self.accepted.add(accepted)
        self.set_object_id(self.next_object_id())
        self.status.emit(
            f"object {accepted} accepted: propagations leave it as it is; now object "
            f"{self.object_id}"
        )
        return self.object_id

    def save_session(self, path: str, video_axis: int | None = None) -> str:
        """Save prompts, boxes and labels beside the data; returns the session file's path."""
        from napari_sam2.prompts import save_prompts

        session = read_prompts(
            self.image_layer,
            self.points_layer,
            self.shapes_layer,
            labels=self.labels_layer,
            video_axis=video_axis,
        )
        saved = save_prompts(session, path)
        n_boxes = sum(b.plane is not None for b in session.boxes)
        self.status.emit(
            f"saved {len(session.points)} point(s), {n_boxes} box(es) and "
            f"{'the labels' if session.labels is not None else 'no labels'} to {saved.name}"
        )
        return str(saved)

    def open_session(self, path: str) -> None:
        """Add the session's prompts and labels as new layers and make them this image's."""
        from napari_sam2.prompts import load_prompts
        from napari_sam2.segment.layer_prompts import prompt_layers

        session = load_prompts(path)
        points, shapes, labels = prompt_layers(session, self.image_layer)
        live, self.live = self.live, False  # loading is not an edit: do not re-segment
        try:
            for layer in (points, shapes, labels):
                if layer is not None:
                    self.viewer.add_layer(layer)
            self.points_layer = points
            self.shapes_layer = shapes
            if labels is not None:
                self.labels_layer = labels
        finally:
            self.live = live
        ids = session.object_ids
        if ids:
            self.set_object_id(ids[0])
        self.layers_changed.emit()
        self.status.emit(
            f"opened {len(session.points)} point(s), {len(session.boxes)} box(es) for "
            f"object(s) {', '.join(map(str, ids)) or 'none'}"
        )

    def clear_object(self) -> None:
        """Remove the current object's mask and prompts from the current slice only."""
        try:
            plane = plane_index(self.image_layer, self.viewer.dims)
        except ValueError as exc:
            self._fail(str(exc))
            return
        points = self.points_layer
        if points is not None:
            rows = point_rows(points, plane, self.image_layer, self.object_id)
            if rows.size:
                with points.events.data.blocker(self._on_points_data):
                    points.selected_data = set(rows.tolist())
                    points.remove_selected()
        shapes = self.shapes_layer
        if shapes is not None and len(shapes.data):
            ids = np.asarray(shapes.features[OBJECT_ID])
            planes = box_planes(shapes, range(len(shapes.data)), self.image_layer)
            boxes = {
                i for i, where in enumerate(planes) if ids[i] == self.object_id and where == plane
            }
            if boxes:
                with shapes.events.data.blocker(self._on_shapes_data):
                    shapes.selected_data = boxes
                    shapes.remove_selected()
        cleared = 0
        if self.labels_layer is not None and self._writer is not None:
            cleared = self._writer.clear(plane, self.object_id)
        self._written.discard((plane, self.object_id))
        where = describe_plane(self.image_layer, plane)
        self.status.emit(f"object {self.object_id} cleared on {where} ({cleared} px)")

    def close(self) -> None:
        """Stop listening to layers and any propagation; a running embedding finishes but is
        ignored."""
        self.stop()
        self.live = False
        self._disconnect_points()
        self._embeddings.close()

    # -------------------------------------------------------------- internals
    def _in_viewer(self, layer: Any) -> bool:
        return layer is not None and layer in self.viewer.layers

    def _check_plane(self, plane: PlaneIndex) -> None:
        shape = layer_array(self.image_layer).shape[: len(plane)]
        if any(not 0 <= index < size for index, size in zip(plane, shape)):
            raise ValueError(
                f"a point lies on {describe_plane(self.image_layer, plane)}, outside image "
                f"{self.image_layer.name!r} (size {shape} along those axes); move or delete it"
            )

    def _labels_shape(self) -> tuple[int, ...]:
        shape = layer_array(self.image_layer).shape
        return tuple(shape[:-1] if self.image_layer.rgb else shape)

    def _fail(self, message: str) -> None:
        show_error(message)
        self.status.emit(message)

    def _show_object_points(self) -> None:
        """Show (and keep selectable) only the current object's points, so T and drags act
        on the object being edited."""
        points = self.points_layer
        if points is not None and len(points.data):
            mine = np.asarray(points.features[OBJECT_ID]) == self.object_id
            points.selected_data = {i for i in points.selected_data if mine[i]}
            points.shown = mine

    def _disconnect_points(self) -> None:
        if self._shapes is not None:
            self._shapes.events.data.disconnect(self._on_shapes_data)
        if self._points is not None:
            self._points.events.data.disconnect(self._on_points_data)
            from napari.utils.key_bindings import KeyBinding

            if self._points.keymap.get(KeyBinding.from_str("T")) == self._on_toggle_key:
                self._points.bind_key("t", None)

    def _predict_and_write(
        self, predictor: SAM2ImagePredictor, plane: PlaneIndex, object_id: int
    ) -> None:
        """Main-thread step: prompts → masks → Labels slice. Failures keep earlier labels."""
        start = time.perf_counter()
        where = describe_plane(self.image_layer, plane)
        writer = self._writer
        if writer is None:
            return
        try:
            coords, labels, box = self._prompts(plane, object_id)
            if not (labels == 1).any() and box is None:
                self._no_positive_points(plane, object_id, where, bool(labels.size))
                return
            masks, ious, _ = predictor.predict(
                point_coords=coords if labels.size else None,
                point_labels=labels if labels.size else None,
                box=box,
                multimask_output=labels.size == 1 and box is None,
            )
            best = int(np.argmax(ious))  # one click is ambiguous: keep the most confident mask
            result = writer.write(plane, object_id, masks[best] > 0.5)
        except ValueError as exc:
            self._fail(f"object {object_id} on {where}: {exc}")
            return
        self._written.add((plane, object_id))
        ms = 1000 * (time.perf_counter() - start)
        note = f", {result.blocked} px left to other objects" if result.blocked else ""
        self.status.emit(
            f"object {object_id} on {where}: {result.pixels} px "
            f"(score {float(ious[best]):.2f}) in {ms:.0f} ms{note}"
        )

    def _prompts(
        self, plane: PlaneIndex, object_id: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The object's points ((N, 2) x, y and (N,) labels) and box (or None) on a plane."""
        prompts = read_prompts(self.image_layer, self.points_layer, self.shapes_layer)
        prompt = prompts.frame_prompt(plane, object_id)
        return prompt.xy, prompt.labels, prompt.box

    def _no_positive_points(
        self, plane: PlaneIndex, object_id: int, where: str, has_negative: bool
    ) -> None:
        """Without a positive point there is no object: undo our own mask, keep anyone else's."""
        if (plane, object_id) in self._written and self._writer is not None:
            self._writer.clear(plane, object_id)
            self._written.discard((plane, object_id))
            self.status.emit(f"object {object_id} removed from {where} (no positive point left)")
        elif has_negative:
            self._fail(
                f"object {object_id} on {where} has only negative points; add a positive "
                "(green) point on the object (press T to switch polarity)"
            )
        else:
            self.status.emit(f"no points for object {object_id} on {where}")

    def _on_embedded(self, plane: PlaneIndex, ids: set[int]) -> None:
        self.segment(ids, plane)

    def _relay_busy(self, busy: bool) -> None:
        self.busy_changed.emit(busy)

    def _on_points_data(self, event: Any) -> None:
        """Live mode: re-segment the objects whose points were added, moved or removed, on
        the slices those points lie on."""
        points = self.points_layer
        if points is not None:
            self._resegment(self._point_edits.on_event(points, event))

    def _on_shapes_data(self, event: Any) -> None:
        """Live mode: re-segment the objects whose boxes were drawn, edited or removed."""
        shapes = self.shapes_layer
        if shapes is not None:
            self._resegment(self._box_edits.on_event(shapes, event))

    def _resegment(self, by_plane: dict[PlaneIndex | None, set[int]]) -> None:
        for ids in by_plane.values():
            self.accepted -= ids  # its prompts were edited: no longer as accepted
        if self.live:
            for plane, ids in by_plane.items():
                self.segment(ids, plane)

    def _on_toggle_key(self, layer: Points) -> None:
        positive, changed = toggle_polarity(layer)
        if changed and self.live:
            self.segment(changed)
        kind = "positive (green)" if positive else "negative (red)"
        self.status.emit(f"next point: {kind}")
