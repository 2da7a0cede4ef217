"""The "SAM 2 segmentation" dock widget: controls and status only.

Every action is forwarded to the :class:`~napari_sam2.segment.controller.SegmentController` of the
chosen image; the widget holds no model, no tensors and imports no torch. Controls are private
attributes so tests (and scripts) can set them and call the handlers directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.layers import Image, Labels, Points, Shapes
from napari.utils.notifications import show_error
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from napari_sam2.axes import axis_name, layer_array, stack_axis
from napari_sam2.models import ModelLoader
from napari_sam2.segment.controller import SegmentController
from napari_sam2.segment.propagation import DIRECTIONS
from napari_sam2.widgets._layer_combo import LayerCombo
from napari_sam2.widgets._layout import DockWidget, row
from napari_sam2.widgets._model_controls import ModelControls

if TYPE_CHECKING:
    import napari

__all__ = ["SegmentWidget"]

HELP = (
    "Click on an object to add a <b style='color:#00e000'>positive</b> point; press <b>T</b> "
    "to switch to <b style='color:#ff4040'>negative</b>. The mask follows every click. "
    "<b>New object</b> starts the next id; other objects are never overwritten."
)


class SegmentWidget(DockWidget):
    """Interactive SAM 2 segmentation of the current slice of an image, one object at a time."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self._viewer = viewer
        self._controllers: dict[int, SegmentController] = {}
        self._build()
        viewer.layers.events.removed.connect(self._on_layer_removed)
        self._on_image_changed()

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        self._model_box = ModelControls()
        # the controls tests and scripts set directly
        self._model_combo = self._model_box.model_combo
        self._checkpoint_edit = self._model_box.checkpoint_edit
        self._device_combo = self._model_box.device_combo
        self._precision_combo = self._model_box.precision_combo
        self._image_combo = LayerCombo(self._viewer, Image)
        self._stack_label = QLabel()
        self._points_combo = LayerCombo(self._viewer, Points, "new prompt layer")
        self._add_points_button = QPushButton("Add points")
        self._shapes_combo = LayerCombo(self._viewer, Shapes, "new box layer")
        self._add_box_button = QPushButton("Add box")
        self._add_box_button.setToolTip("Draw a rectangle around the current object")
        self._save_button = QPushButton("Save session…")
        self._save_button.setToolTip("Prompts, boxes and labels, saved beside the data")
        self._open_button = QPushButton("Open session…")
        self._masks_combo = LayerCombo(self._viewer, Labels, "none")
        self._masks_combo.setToolTip(
            "Objects of this Labels layer on the current frame (e.g. from Cellpose or "
            "StarDist) are tracked too, each with its own id"
        )
        self._labels_combo = LayerCombo(self._viewer, Labels, "new Labels layer")
        self._object_spin = QSpinBox()
        self._object_spin.setRange(1, 2**31 - 1)
        self._new_object_button = QPushButton("New object")
        self._accept_button = QPushButton("Accept")
        self._accept_button.setToolTip(
            "Keep this object's masks as they are (later propagations leave it alone) and "
            "start the next object"
        )
        self._clear_object_button = QPushButton("Clear object")
        self._clear_object_button.setToolTip("Remove this object's mask and points on this slice")
        self._live_check = QCheckBox("Segment on every point change")
        self._live_check.setChecked(True)
        self._segment_button = QPushButton("Segment")
        self._axis_combo = QComboBox()
        self._axis_combo.setToolTip("The stack axis SAM 2 tracks through (its video axis)")
        self._direction_combo = QComboBox()
        self._direction_combo.addItems(list(DIRECTIONS))
        self._direction_combo.setToolTip(
            "From the frame on screen towards the end, the start, or both"
        )
        self._every_check = QCheckBox("At every position of the other axes")
        self._every_check.setToolTip(
            "4D and up: track each position (e.g. each z) that has prompts, one after another"
        )
        self._range_check = QCheckBox("Only frames")
        self._first_spin = QSpinBox()
        self._last_spin = QSpinBox()
        for spin in (self._first_spin, self._last_spin):
            spin.setEnabled(False)
        self._propagate_button = QPushButton("Propagate")
        self._propagate_button.setToolTip(
            "Track every object with points on this stack through the frames; masks appear as "
            "frames are done"
        )
        self._stop_button = QPushButton("Stop")
        self._stop_button.setEnabled(False)
        self._stop_button.setToolTip("Stop after the current frame; finished frames are kept")
        self._status_label = QLabel("Choose an image, press Add points, click on an object.")
        help_label = QLabel(HELP)
        for label in (self._stack_label, self._status_label, help_label):
            label.setWordWrap(True)
        help_label.setTextFormat(Qt.TextFormat.RichText)

        layers_box = QGroupBox("Layers")
        layers_form = QFormLayout(layers_box)
        layers_form.addRow("Image", self._image_combo)
        layers_form.addRow("", self._stack_label)
        layers_form.addRow("Prompts", row(self._points_combo, self._add_points_button))
        layers_form.addRow("Boxes", row(self._shapes_combo, self._add_box_button))
        layers_form.addRow("Output", self._labels_combo)
        layers_form.addRow(row(self._save_button, self._open_button))

        object_box = QGroupBox("Object")
        object_form = QFormLayout(object_box)
        object_form.addRow("Object id", self._object_spin)
        object_form.addRow(
            row(self._new_object_button, self._accept_button, self._clear_object_button)
        )
        object_form.addRow(self._live_check)
        object_form.addRow(self._segment_button)

        self._propagate_box = QGroupBox("Propagate through the stack")
        propagate_form = QFormLayout(self._propagate_box)
        self._axis_label = QLabel("Video axis")
        propagate_form.addRow(self._axis_label, self._axis_combo)
        propagate_form.addRow(self._every_check)
        propagate_form.addRow("Direction", self._direction_combo)
        propagate_form.addRow("Mask prompts", self._masks_combo)
        range_row = row(self._range_check, self._first_spin, QLabel("to"), self._last_spin)
        propagate_form.addRow(range_row)
        propagate_form.addRow(row(self._propagate_button, self._stop_button))

        layout = QVBoxLayout(self)
        for widget in (
            self._model_box,
            layers_box,
            object_box,
            self._propagate_box,
            help_label,
            self._status_label,
        ):
            layout.addWidget(widget)
        layout.addStretch(1)

        self._model_box.changed.connect(self._on_model_changed)
        self._model_box.hint.connect(self._on_status)
        self._image_combo.currentIndexChanged.connect(self._on_image_changed)
        self._points_combo.currentIndexChanged.connect(self._on_points_changed)
        self._add_points_button.clicked.connect(self._on_add_points)
        self._shapes_combo.currentIndexChanged.connect(self._on_shapes_changed)
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
            controller.status.connect(self._on_status)
            controller.busy_changed.connect(self._on_busy)
            controller.layers_changed.connect(self._sync_layers)
            self._controllers[id(image)] = controller
        return controller

    def _on_image_changed(self, *_: Any) -> None:
        controller = self._controller(notify=False)
        image = self._image_combo.layer
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

    def _on_points_changed(self, *_: Any) -> None:
        controller = self._controller(notify=False)
        if controller is None:
            return
        try:
            controller.points_layer = self._points_combo.layer
        except ValueError as exc:
            show_error(str(exc))
            self._points_combo.set_layer(controller.points_layer)
        self._shapes_combo.set_layer(controller.shapes_layer)

    def _on_shapes_changed(self, *_: Any) -> None:
        controller = self._controller(notify=False)
        if controller is None:
            return
        try:
            controller.shapes_layer = self._shapes_combo.layer
        except ValueError as exc:
            show_error(str(exc))
            self._shapes_combo.set_layer(controller.shapes_layer)

    def _on_add_box(self) -> None:
        controller = self._controller()
        if controller is None:
            return
        shapes = controller.ensure_shapes_layer()
        self._viewer.layers.selection.active = shapes
        shapes.mode = "add_rectangle"
        controller.prefetch()

    def _session_dir(self) -> str:
        """Beside the image's file when napari knows it, else the working directory."""
        image = self._image_combo.layer
        source = getattr(getattr(image, "source", None), "path", None)
        return str(Path(source).parent) if source else ""

    def _on_save_session(self, path: str | None = None) -> None:
        controller = self._controller()
        if controller is None:
            return
        if not path:
            name = f"{controller.image_layer.name}.sam2.json"
            path, _ = QFileDialog.getSaveFileName(
                self,
                "Save SAM 2 session",
                str(Path(self._session_dir()) / name),
                "SAM 2 sessions (*.sam2.json)",
            )
        if path:
            try:
                controller.save_session(path, self._axis_combo.currentData())
            except (ValueError, OSError) as exc:
                show_error(f"Could not save the session: {exc}")

    def _on_open_session(self, path: str | None = None) -> None:
        controller = self._controller()
        if controller is None:
            return
        if not path:
            path, _ = QFileDialog.getOpenFileName(
                self, "Open SAM 2 session", self._session_dir(), "SAM 2 sessions (*.sam2.json)"
            )
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

    def _on_busy(self, busy: bool) -> None:
        controller = self._controller(notify=False)
        propagating = controller is not None and controller.propagating
        self._propagate_button.setEnabled(not propagating)
        self._stop_button.setEnabled(propagating)
        embedding = controller is not None and controller.busy
        self._segment_button.setText("Segment (embedding…)" if embedding else "Segment")
        if not busy:
            self._model_box.refresh_devices()
