"""The controls of the "SAM 2 segmentation" dock widget and how they are laid out.

Only Qt layout: the controls are created, grouped into boxes and stacked; what they do is
:class:`~napari_sam2.segment.widget.SegmentWidget`'s. Controls are private attributes so tests
(and scripts) can set them and call the handlers directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from napari.layers import Image, Labels, Points, Shapes
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from napari_sam2.segment.propagation import DIRECTIONS
from napari_sam2.widgets._layer_combo import LayerCombo
from napari_sam2.widgets._layout import DockWidget, form_box, row
from napari_sam2.widgets._model_controls import ModelControls

if TYPE_CHECKING:
    import napari

__all__ = ["HELP", "SegmentLayout"]

HELP = (
    "Click on an object to add a <b style='color:#00e000'>positive</b> point; press <b>T</b> "
    "to switch to <b style='color:#ff4040'>negative</b>. The mask follows every click. "
    "<b>New object</b> starts the next id; other objects are never overwritten."
)


class SegmentLayout(DockWidget):
    """The segment widget's controls, laid out: model, layers, object, propagation, status."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self._viewer = viewer
        self._model_box = ModelControls()
        # the controls tests and scripts set directly
        self._model_combo = self._model_box.model_combo
        self._checkpoint_edit = self._model_box.checkpoint_edit
        self._device_combo = self._model_box.device_combo
        self._precision_combo = self._model_box.precision_combo
        self._status_label = QLabel("Choose an image, press Add points, click on an object.")
        help_label = QLabel(HELP)
        for label in (self._status_label, help_label):
            label.setWordWrap(True)
        help_label.setTextFormat(Qt.TextFormat.RichText)
        layout = QVBoxLayout(self)
        for widget in (
            self._model_box,
            self._build_layers_box(),
            self._build_object_box(),
            self._build_propagate_box(),
            help_label,
            self._status_label,
        ):
            layout.addWidget(widget)
        layout.addStretch(1)

    def _build_layers_box(self) -> QGroupBox:
        self._image_combo = LayerCombo(self._viewer, Image)
        self._stack_label = QLabel()
        self._stack_label.setWordWrap(True)
        self._points_combo = LayerCombo(self._viewer, Points, "new prompt layer")
        self._add_points_button = QPushButton("Add points")
        self._shapes_combo = LayerCombo(self._viewer, Shapes, "new box layer")
        self._add_box_button = QPushButton("Add box")
        self._add_box_button.setToolTip("Draw a rectangle around the current object")
        self._save_button = QPushButton("Save session…")
        self._save_button.setToolTip("Prompts, boxes and labels, saved beside the data")
        self._open_button = QPushButton("Open session…")
        self._labels_combo = LayerCombo(self._viewer, Labels, "new Labels layer")

        box = form_box(
            "Layers",
            ("Image", self._image_combo),
            ("", self._stack_label),
            ("Prompts", row(self._points_combo, self._add_points_button)),
            ("Boxes", row(self._shapes_combo, self._add_box_button)),
            ("Output", self._labels_combo),
            row(self._save_button, self._open_button),
        )
        return box

    def _build_object_box(self) -> QGroupBox:
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

        box = form_box(
            "Object",
            ("Object id", self._object_spin),
            row(self._new_object_button, self._accept_button, self._clear_object_button),
            self._live_check,
            self._segment_button,
        )
        return box

    def _build_propagate_box(self) -> QGroupBox:
        self._masks_combo = LayerCombo(self._viewer, Labels, "none")
        self._masks_combo.setToolTip(
            "Objects of this Labels layer on the current frame (e.g. from Cellpose or "
            "StarDist) are tracked too, each with its own id"
        )
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

        self._propagate_box = QGroupBox("Propagate through the stack")
        form = QFormLayout(self._propagate_box)
        self._axis_label = QLabel("Video axis")
        form.addRow(self._axis_label, self._axis_combo)
        form.addRow(self._every_check)
        form.addRow("Direction", self._direction_combo)
        form.addRow("Mask prompts", self._masks_combo)
        form.addRow(row(self._range_check, self._first_spin, QLabel("to"), self._last_spin))
        form.addRow(row(self._propagate_button, self._stop_button))
        return self._propagate_box
