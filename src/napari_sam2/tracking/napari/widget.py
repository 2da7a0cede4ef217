"""The "SAM 2 cell tracking" dock widget: controls, status and the divisions list only.

Seeds (one label per cell on a frame) are followed with SAM 2 to the end of a (T, Y, X)
time-lapse, with divisions, entries and exits (:mod:`napari_sam2.tracking`). The work runs in
the :class:`~.controller.TrackingController`, whose evented state (status line, run in progress)
the widget observes; controls are private attributes so tests and scripts can set them and call
the handlers directly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from napari.layers import Image, Labels
from napari.utils.notifications import show_error
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGroupBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from napari_sam2.models import ModelLoader as PredictorFactory
from napari_sam2.tracking.lineage import Division
from napari_sam2.tracking.napari.controller import TrackingController
from napari_sam2.tracking.napari.inputs import check_image
from napari_sam2.tracking.params import TrackingParams
from napari_sam2.tracking.proposals import EntryDetector
from napari_sam2.widgets._layer_combo import LayerCombo
from napari_sam2.widgets._layout import DockWidget, form_box, fraction_box, row, spin_box
from napari_sam2.widgets._model_controls import ModelControls

if TYPE_CHECKING:
    import napari

__all__ = ["TrackWidget"]

#: (shown text, detector) for the "New cells" combo; the CLI's --entries names the same three.
ENTRY_CHOICES: tuple[tuple[str, EntryDetector], ...] = (
    ("bright regions (threshold)", "threshold"),
    ("SAM 2 automatic masks", "sam2"),
    ("off", "none"),
)
CURRENT_FRAME = -1  # the seed-frame spin box's "current frame" value


class TrackWidget(DockWidget):
    """Track seeded cells through a time-lapse, then review divisions and export."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self._viewer = viewer
        self._build()
        self._controller = TrackingController(viewer, self._model_factory())
        self._controller.state.events.status.connect(self._on_status)
        self._controller.state.events.running.connect(self._on_running)
        self._controller.lineage_changed.connect(self._refresh_divisions)
        self._on_image_changed()
        self._on_running(False)

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        # no config choice: a local checkpoint's config comes from its file name
        self._model_box = ModelControls(choose_config=False, compact=True)
        input_box = self._build_input_box()
        rules_box = self._build_rules_box()
        self._track_button = QPushButton("Track")
        self._track_button.setToolTip("Follow every seed cell from the seed frame to the end")
        self._stop_button = QPushButton("Stop")
        self._stop_button.setToolTip("Stop after the current frame; finished frames are kept")
        self._status_label = QLabel("Choose a time-lapse and a Labels layer with seed cells.")
        self._status_label.setWordWrap(True)
        divisions_box = self._build_divisions_box()
        self._export_ctc_button = QPushButton("Export CTC…")
        self._export_ctc_button.setToolTip("mask###.tif + res_track.txt (Cell Tracking Challenge)")
        self._export_geff_button = QPushButton("Export GEFF…")
        self._export_geff_button.setToolTip("Lineage graph (GEFF zarr): a node per cell and frame")
        self._measure_button = QPushButton("Measurements CSV…")
        self._measure_button.setToolTip("Area, centroid, mean intensity per cell and frame")

        layout = QVBoxLayout(self)
        for widget in (self._model_box, input_box, rules_box):
            layout.addWidget(widget)
        layout.addWidget(row(self._track_button, self._stop_button))
        layout.addWidget(self._status_label)
        layout.addWidget(divisions_box)
        layout.addWidget(row(self._export_ctc_button, self._export_geff_button))
        layout.addWidget(self._measure_button)
        layout.addStretch(1)
        self._connect()

    def _build_input_box(self) -> QGroupBox:
        self._image_combo = LayerCombo(self._viewer, Image)
        self._image_label = QLabel()
        self._image_label.setWordWrap(True)
        self._seeds_combo = LayerCombo(self._viewer, Labels)
        self._seeds_combo.setToolTip(
            "One label per cell on the seed frame: painted, or from Cellpose/StarDist; "
            "a (T, Y, X) or a (Y, X) Labels layer"
        )
        self._seed_frame_spin = QSpinBox()
        self._seed_frame_spin.setRange(CURRENT_FRAME, 0)
        self._seed_frame_spin.setSpecialValueText("current frame")
        self._seed_frame_spin.setValue(CURRENT_FRAME)
        self._seed_frame_spin.setToolTip("Tracking starts here and runs to the last frame")
        box = form_box(
            "Input",
            ("Image", self._image_combo),
            ("", self._image_label),
            ("Seeds", self._seeds_combo),
            ("Seed frame", self._seed_frame_spin),
        )
        return box

    def _build_rules_box(self) -> QGroupBox:
        defaults = TrackingParams()
        self._entries_combo = QComboBox()
        self._entries_combo.addItems([text for text, _ in ENTRY_CHOICES])
        self._entries_combo.setToolTip("How cells that enter the field are found")
        self._entry_every_spin = spin_box(1, 1000, max(defaults.entry_every, 1), " frame(s)")
        self._entry_every_spin.setToolTip("Look for new cells on every K-th frame")
        self._exit_after_spin = spin_box(1, 1000, defaults.exit_after, " frame(s) missing")
        self._exit_after_spin.setToolTip(
            "A cell missing this many frames in a row has left; shorter gaps keep its track"
        )
        self._division_spin = fraction_box(
            0.05, 0.5, defaults.division_min_fraction, "each piece ≥ ", " of the cell"
        )
        self._division_spin.setToolTip(
            "A mask splits into daughters when each of its two largest pieces holds at least "
            "this fraction of its area"
        )
        self._waist_spin = fraction_box(0.0, 0.99, defaults.division_waist, "waist < ")
        self._waist_spin.setSpecialValueText("off")
        self._waist_spin.setToolTip(
            "Touching daughters: a mask with two lobes whose waist is narrower than this "
            "fraction of the smaller lobe divides (0: only masks that fall apart)"
        )
        self._min_area_spin = spin_box(1, 10**6, defaults.min_area, " px")
        self._min_area_spin.setToolTip("Smaller masks count as 'cell absent'")
        self._fast_check = QCheckBox("each cell in a window around it")
        self._fast_check.setToolTip(
            "Fast tracking: SAM 2 looks at a window around where each cell was, so small cells "
            "in large frames cost much less; masks agree closely with full SAM 2, not exactly"
        )
        box = form_box(
            "Rules",
            ("New cells", self._entries_combo),
            ("Look every", self._entry_every_spin),
            ("Exit when", self._exit_after_spin),
            ("Division", self._division_spin),
            ("", self._waist_spin),
            ("Min cell area", self._min_area_spin),
            ("Fast", self._fast_check),
        )
        return box

    def _build_divisions_box(self) -> QGroupBox:
        self._divisions_list = QListWidget()
        self._divisions_list.setMaximumHeight(120)
        self._divisions_list.setToolTip("Select a division to go to its frame")
        self._confirm_button = QPushButton("Confirm")
        self._undo_button = QPushButton("Undo")
        self._undo_button.setToolTip("No division: the daughters become the mother again")
        self._mother_spin = spin_box(1, 2**31 - 1, 1, "", "mother ")
        self._sister_spin = spin_box(1, 2**31 - 1, 1, "", "sister ")
        self._add_division_button = QPushButton("Add here")
        self._add_division_button.setToolTip(
            "The mother divides on the current frame into its own continuation and the sister "
            "track (which must start on this frame or later)"
        )
        box = QGroupBox("Divisions")
        layout = QVBoxLayout(box)
        layout.addWidget(self._divisions_list)
        layout.addWidget(row(self._confirm_button, self._undo_button))
        layout.addWidget(row(self._mother_spin, self._sister_spin, self._add_division_button))
        return box

    def _connect(self) -> None:
        self._model_box.changed.connect(self._on_model_changed)
        self._model_box.hint.connect(self._on_status)
        self._image_combo.currentIndexChanged.connect(self._on_image_changed)
        self._entries_combo.currentIndexChanged.connect(self._on_entries_changed)
        self._track_button.clicked.connect(self._on_track)
        self._stop_button.clicked.connect(self._on_stop)
        self._divisions_list.currentRowChanged.connect(self._on_division_selected)
        self._confirm_button.clicked.connect(self._on_confirm)
        self._undo_button.clicked.connect(self._on_undo)
        self._add_division_button.clicked.connect(self._on_add_division)
        self._export_ctc_button.clicked.connect(lambda: self._on_export_ctc())
        self._export_geff_button.clicked.connect(lambda: self._on_export_geff())
        self._measure_button.clicked.connect(lambda: self._on_measurements())

    # ------------------------------------------------------------------ model
    @property
    def controller(self) -> TrackingController:
        return self._controller

    def set_model_factory(self, factory: PredictorFactory) -> None:
        """Track with ``factory``'s model (tests, scripts) until the model controls change."""
        self._model_box.set_factory(factory)
        self._controller.set_factory(factory)

    def _model_factory(self) -> PredictorFactory:
        return self._model_box.factory()

    def _on_model_changed(self, *_: Any) -> None:
        self.set_model_factory(self._model_factory())

    # ------------------------------------------------------------------ inputs
    def _on_image_changed(self, *_: Any) -> None:
        image = self._image_combo.layer
        try:
            frames = check_image(image)
        except ValueError as exc:
            self._image_label.setText(str(exc))
            return
        n, height, width = (int(s) for s in frames.shape)
        self._image_label.setText(f"{n} frames of {height}×{width} pixels")
        self._seed_frame_spin.setMaximum(n - 1)

    def _on_entries_changed(self, index: int) -> None:
        self._entry_every_spin.setEnabled(ENTRY_CHOICES[index][1] != "none")

    def _seed_frame(self) -> int:
        """The chosen seed frame; "current frame" is the frame the viewer shows."""
        value = self._seed_frame_spin.value()
        if value != CURRENT_FRAME:
            return value
        image = self._image_combo.layer
        if image is None:
            return 0
        dims = self._viewer.dims
        axis = dims.ndim - image.ndim  # the image's first axis in the viewer
        return round(float(image.world_to_data(dims.point)[0])) if axis >= 0 else 0

    def _params(self) -> tuple[TrackingParams, EntryDetector]:
        entries = ENTRY_CHOICES[self._entries_combo.currentIndex()][1]
        params = dataclasses.replace(
            TrackingParams(),
            entry_every=0 if entries == "none" else self._entry_every_spin.value(),
            exit_after=self._exit_after_spin.value(),
            division_min_fraction=round(self._division_spin.value(), 3),
            division_waist=round(self._waist_spin.value(), 3),
            min_area=self._min_area_spin.value(),
        )
        return params, entries

    # ------------------------------------------------------------------ running
    def _on_track(self) -> None:
        if self._closed:
            return
        try:
            params, entries = self._params()
        except ValueError as exc:
            show_error(str(exc))
            return
        self._controller.track(
            self._image_combo.layer,
            self._seeds_combo.layer,
            self._seed_frame(),
            params,
            entries,
            fast=self._fast_check.isChecked(),
        )

    def _on_stop(self) -> None:
        self._controller.stop()

    def _on_status(self, text: str) -> None:
        self._status_label.setText(text)

    def _on_running(self, running: bool) -> None:
        self._track_button.setEnabled(not running)
        self._stop_button.setEnabled(running)
        self._update_buttons()
        if not running:
            self._model_box.refresh_devices()

    # ------------------------------------------------------------------ divisions
    def _refresh_divisions(self) -> None:
        """List the lineage's divisions, keeping the selected one selected."""
        selected = self._selected_mother()
        divisions = self._controller.divisions()
        blocked = self._divisions_list.blockSignals(True)
        self._divisions_list.clear()
        for division in divisions:
            item = QListWidgetItem(_describe(division))
            item.setData(Qt.ItemDataRole.UserRole, division.mother)
            self._divisions_list.addItem(item)
            if division.mother == selected:
                self._divisions_list.setCurrentItem(item)
        self._divisions_list.blockSignals(blocked)
        self._update_buttons()

    def _selected_mother(self) -> int | None:
        item = self._divisions_list.currentItem()
        return None if item is None else int(item.data(Qt.ItemDataRole.UserRole))

    def _update_buttons(self) -> None:
        idle = not self._controller.running
        has_result = idle and self._controller.lineage is not None
        chosen = has_result and self._selected_mother() is not None
        self._confirm_button.setEnabled(chosen)
        self._undo_button.setEnabled(chosen)
        self._add_division_button.setEnabled(has_result)
        self._export_ctc_button.setEnabled(has_result)
        self._export_geff_button.setEnabled(has_result)
        self._measure_button.setEnabled(has_result)

    def _on_division_selected(self, row: int) -> None:
        """Go to the division's frame, where the daughters first appear."""
        self._update_buttons()
        mother = self._selected_mother()
        division = next((d for d in self._controller.divisions() if d.mother == mother), None)
        labels = self._controller.labels_layer
        if division is None or labels is None:
            return
        axis = self._viewer.dims.ndim - labels.ndim
        if axis >= 0:
            self._viewer.dims.set_current_step(axis, division.frame)

    def _on_confirm(self) -> None:
        mother = self._selected_mother()
        if mother is not None:
            self._controller.confirm_division(mother)

    def _on_undo(self) -> None:
        mother = self._selected_mother()
        if mother is not None:
            self._controller.undo_division(mother)

    def _on_add_division(self) -> None:
        labels = self._controller.labels_layer
        if labels is None:
            show_error("Track cells first: there is no lineage to edit.")
            return
        dims = self._viewer.dims
        axis = dims.ndim - labels.ndim
        frame = int(dims.current_step[axis]) if axis >= 0 else 0
        self._controller.add_division(self._mother_spin.value(), frame, self._sister_spin.value())

    # ------------------------------------------------------------------ export
    def _on_export_ctc(self, folder: str | None = None) -> None:
        if not folder:
            folder = QFileDialog.getExistingDirectory(self, "Export a CTC result folder")
        if folder:
            self._export_asking("Replace CTC result?", partial(self._controller.export_ctc, folder))

    def _on_export_geff(self, path: str | None = None) -> None:
        if not path:
            path, _ = QFileDialog.getSaveFileName(
                self, "Export the lineage as GEFF", "lineage.geff"
            )
        if path:
            self._export_asking("Replace GEFF store?", partial(self._controller.export_geff, path))

    def _export_asking(self, title: str, export: Callable[..., None]) -> None:
        """Export; where an earlier export of ours is in the way, ask before replacing it."""
        try:
            export()
        except FileExistsError as exc:
            answer = QMessageBox.question(self, title, f"{exc}\n\nReplace it?")
            if answer == QMessageBox.StandardButton.Yes:
                export(overwrite=True)

    def _on_measurements(self, path: str | None = None) -> None:
        if not path:
            path, _ = QFileDialog.getSaveFileName(
                self, "Save measurements", "measurements.csv", "CSV (*.csv)"
            )
        if path:
            self._controller.export_measurements(path)

    # ------------------------------------------------------------------ closing
    def _shutdown(self) -> None:
        self._controller.close()


def _describe(division: Division) -> str:
    """``t=5: 3 → 7, 8 (split) ✓``: frame, mother, daughters, rule, checked."""
    daughters = ", ".join(str(d) for d in division.daughters)
    mark = " ✓" if division.confirmed else ""
    return f"t={division.frame}: {division.mother} → {daughters} ({division.rule}){mark}"
