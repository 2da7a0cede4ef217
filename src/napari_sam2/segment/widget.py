"""The "SAM 2 segmentation" dock widget: what its controls do.

Every action is forwarded to the :class:`~napari_sam2.segment.controller.SegmentController` of
the chosen image; the widget holds no model, no tensors and imports no torch. What it shows of
the work comes from each controller's evented
:class:`~napari_sam2.segment.state.SegmentState`, observed for every image at once: so Stop stays
enabled while any image propagates, whichever image the combo shows. The controls and their
layout are :class:`~napari_sam2.segment.widget_layout.SegmentLayout`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from napari.utils.notifications import show_error

from napari_sam2.axes import axis_name, layer_array, stack_axis
from napari_sam2.models import ModelLoader
from napari_sam2.prompts import SessionFilesExistError
from napari_sam2.segment.controller import SegmentController
from napari_sam2.segment.propagation import DIRECTIONS
from napari_sam2.segment.session_dialogs import ask_open_path, ask_save_path, confirm_replace
from napari_sam2.segment.widget_layout import SegmentLayout

if TYPE_CHECKING:
    import napari

__all__ = ["SegmentWidget"]


class SegmentWidget(SegmentLayout):
    """Interactive SAM 2 segmentation of the current slice of an image, one object at a time."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._controllers: dict[int, SegmentController] = {}
        super().__init__(viewer)
        self._connect()
        viewer.layers.events.removed.connect(self._on_layer_removed)
        self._on_image_changed()

    def _connect(self) -> None:
        self._model_box.changed.connect(self._on_model_changed)
        self._model_box.hint.connect(self._on_status)
        self._image_combo.currentIndexChanged.connect(self._on_image_changed)
        self._points_combo.currentIndexChanged.connect(self._on_prompt_layer_changed)
        self._add_points_button.clicked.connect(self._on_add_points)
        self._shapes_combo.currentIndexChanged.connect(self._on_prompt_layer_changed)
        self._add_box_button.clicked.connect(self._on_add_box)
        self._save_button.clicked.connect(self._on_save_session)
        self._open_button.clicked.connect(self._on_open_session)
        self._labels_combo.currentIndexChanged.connect(self._on_labels_changed)
        self._object_spin.valueChanged.connect(self._on_object_changed)
        self._new_object_button.clicked.connect(self._on_new_object)
        self._accept_button.clicked.connect(self._on_accept)
        self._clear_object_button.clicked.connect(self._on_clear_object)
        self._live_check.toggled.connect(self._on_live_toggled)
        self._segment_button.clicked.connect(self._on_segment)
        self._range_check.toggled.connect(self._first_spin.setEnabled)
        self._range_check.toggled.connect(self._last_spin.setEnabled)
        self._propagate_button.clicked.connect(self._on_propagate)
        self._stop_button.clicked.connect(self._on_stop)

    # ------------------------------------------------------------------ model
    def set_model_factory(self, factory: ModelLoader) -> None:
        """Use ``factory`` for every image (tests, scripts, custom models) until the model
        controls change."""
        self._model_box.set_factory(factory)
        for controller in self._controllers.values():
            controller.set_factory(factory)

    def _model_factory(self) -> ModelLoader:
        return self._model_box.factory()

    def _on_model_changed(self, *_: Any) -> None:
        self.set_model_factory(self._model_factory())

    # ------------------------------------------------------------------ layers
    def _controller(self, notify: bool = True) -> SegmentController | None:
        """The chosen image's controller, created on first use."""
        image = self._image_combo.layer
        if self._closed:
            return None
        if image is None:
            if notify:
                show_error("Open an image first (File > Open Sample > napari-sam2 has examples).")
            return None
        controller = self._controllers.get(id(image))
        if controller is None:
            controller = SegmentController(self._viewer, image, self._model_factory())
            controller.live = self._live_check.isChecked()
            events = controller.state.events
            events.status.connect(self._on_status)
            events.embedding.connect(self._on_work_changed)
            events.running.connect(self._on_work_changed)
            controller.layers_changed.connect(self._sync_layers)
            self._controllers[id(image)] = controller
        return controller

    def _on_image_changed(self, *_: Any) -> None:
        controller = self._controller(notify=False)
        image = self._image_combo.layer
        self._show_work()
        if controller is None or image is None:
            self._stack_label.setText("No image layer open.")
            return
        axis = stack_axis(image)
        shape = layer_array(image).shape
        self._axis_combo.clear()
        self._propagate_box.setEnabled(axis is not None)
        if axis is None:
            self._stack_label.setText("2D image.")
        else:
            size = shape[axis]
            self._stack_label.setText(
                f"Stack axis {axis_name(image, axis)} ({size} planes): the current slice is "
                "segmented."
            )
            for leading in range(image.ndim - 2):
                self._axis_combo.addItem(f"{axis_name(image, leading)} ({shape[leading]})", leading)
            self._axis_combo.setCurrentIndex(axis)
            self._axis_combo.setVisible(image.ndim > 3)
            self._axis_label.setVisible(image.ndim > 3)
            self._every_check.setVisible(image.ndim > 3)
            self._set_range_limits(size)
        self._sync_layers()

    def _sync_layers(self) -> None:
        """Show the controller's layers and object in the controls, without side effects."""
        controller = self._controller(notify=False)
        if controller is None:
            return
        self._points_combo.set_layer(controller.points_layer)
        self._shapes_combo.set_layer(controller.shapes_layer)
        self._labels_combo.set_layer(controller.labels_layer)
        blocked = self._object_spin.blockSignals(True)
        self._object_spin.setValue(controller.object_id)
        self._object_spin.blockSignals(blocked)

    def _on_prompt_layer_changed(self, *_: Any) -> None:
        """A Points or Shapes layer was chosen: hand it to the controller, which may refuse it
        (too many dimensions) or change the other choice; the combos then show what it uses."""
        controller = self._controller(notify=False)
        if controller is None:
            return
        try:
            controller.points_layer = self._points_combo.layer
            controller.shapes_layer = self._shapes_combo.layer
        except ValueError as exc:
            show_error(str(exc))
        self._points_combo.set_layer(controller.points_layer)
        self._shapes_combo.set_layer(controller.shapes_layer)

    def _on_add_box(self) -> None:
        controller = self._controller()
        if controller is None:
            return
        shapes = controller.ensure_shapes_layer()
        self._viewer.layers.selection.active = shapes
        shapes.mode = "add_rectangle"
        controller.prefetch()

    def _on_save_session(self, path: str | None = None) -> None:
        controller = self._controller()
        if controller is None:
            return
        path = path or ask_save_path(self, controller.image_layer)
        if not path:
            return
        axis = self._axis_combo.currentData()
        try:
            try:
                controller.save_session(path, axis)
            except SessionFilesExistError as exc:
                if confirm_replace(self, exc.paths):
                    controller.save_session(path, axis, overwrite=True)
        except (ValueError, OSError) as exc:
            show_error(f"Could not save the session: {exc}")

    def _on_open_session(self, path: str | None = None) -> None:
        controller = self._controller()
        if controller is None:
            return
        path = path or ask_open_path(self, self._image_combo.layer)
        if path:
            try:
                controller.open_session(path)
            except (ValueError, OSError) as exc:
                show_error(f"Could not open the session: {exc}")
            self._sync_layers()

    def _on_labels_changed(self, *_: Any) -> None:
        controller = self._controller(notify=False)
        if controller is None:
            return
        try:
            controller.labels_layer = self._labels_combo.layer
        except ValueError as exc:
            show_error(str(exc))
            self._labels_combo.set_layer(controller.labels_layer)
            return
        if controller.labels_layer is not None:
            # a user's layer: start a fresh id, so only empty pixels are ever written
            self._object_spin.setValue(controller.next_object_id())

    def _on_layer_removed(self, event: Any) -> None:
        controller = self._controllers.pop(id(event.value), None)
        if controller is not None:
            controller.close()
            self._show_work()

    def _on_add_points(self) -> None:
        controller = self._controller()
        if controller is None:
            return
        points = controller.ensure_points_layer()
        self._viewer.layers.selection.active = points
        points.mode = "add"
        controller.prefetch()

    # ------------------------------------------------------------------ objects
    def _on_object_changed(self, value: int) -> None:
        controller = self._controller(notify=False)
        if controller is not None:
            controller.set_object_id(value)

    def _on_new_object(self) -> None:
        controller = self._controller()
        if controller is not None:
            self._object_spin.setValue(controller.next_object_id())

    def _on_accept(self) -> None:
        controller = self._controller()
        if controller is not None:
            self._object_spin.setValue(controller.accept_object())

    def _on_clear_object(self) -> None:
        controller = self._controller()
        if controller is not None:
            controller.clear_object()

    def _on_live_toggled(self, live: bool) -> None:
        for controller in self._controllers.values():
            controller.live = live

    def _set_range_limits(self, size: int) -> None:
        for spin in (self._first_spin, self._last_spin):
            spin.setRange(0, max(size - 1, 0))
        self._first_spin.setValue(0)
        self._last_spin.setValue(max(size - 1, 0))

    def _on_propagate(self) -> None:
        controller = self._controller()
        if controller is None:
            return
        axis = self._axis_combo.currentData()
        frame_range = None
        if self._range_check.isChecked():
            frame_range = (self._first_spin.value(), self._last_spin.value())
        controller.propagate(
            DIRECTIONS[self._direction_combo.currentIndex()],
            frame_range,
            None if axis is None else int(axis),
            mask_layer=self._masks_combo.layer,
            every_position=self._every_check.isChecked() and not self._every_check.isHidden(),
        )

    def _on_stop(self) -> None:
        for controller in self._controllers.values():
            controller.stop()

    def _on_segment(self) -> None:
        controller = self._controller()
        if controller is not None:
            controller.segment()

    def _shutdown(self) -> None:
        for controller in self._controllers.values():
            controller.close()
        self._controllers.clear()

    def _on_status(self, text: str) -> None:
        self._status_label.setText(text)

    def _on_work_changed(self, busy: bool) -> None:
        """An image's embedding or propagation started or ended: redraw; once work ends,
        the devices' free memory has changed."""
        self._show_work()
        if not busy:
            self._model_box.refresh_devices()

    def _show_work(self) -> None:
        """Buttons from the states: Stop while any image propagates (Stop stops every run),
        Propagate and the Segment text from the image chosen now."""
        states = [c.state for c in self._controllers.values()]
        self._stop_button.setEnabled(any(state.running for state in states))
        controller = self._controllers.get(id(self._image_combo.layer))
        propagating = controller is not None and controller.state.running
        self._propagate_button.setEnabled(not propagating)
        embedding = controller is not None and controller.state.embedding
        self._segment_button.setText("Segment (embedding…)" if embedding else "Segment")
