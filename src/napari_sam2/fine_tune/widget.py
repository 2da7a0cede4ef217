"""The "SAM 2 fine-tuning" dock widget: train a model on the labels the user corrected.

Controls, checks and a live plot only: training is :func:`napari_sam2.fine_tune.run.run_fine_tuning`
(the same run as ``napari-sam2 train``) in a worker thread, so the viewer never freezes. Stop
is checked between steps and keeps the best checkpoint so far. When a run ends the model is
registered in :data:`~napari_sam2.models.USER_MODELS`, and every widget's model list shows it
at once. Controls are private attributes so tests and scripts can set them and call the
handlers directly.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.layers import Image, Labels
from napari.utils.notifications import show_error
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
)

from napari_sam2.fine_tune.job import (
    CLIP_FRAMES,
    VALIDATION_BATCHES,
    FineTuneJob,
    FineTuneSettings,
)
from napari_sam2.fine_tune.plot import TrainingPlot
from napari_sam2.fine_tune.training_data import TrainingPair, check_pairs, make_pair
from napari_sam2.models import ModelChoice
from napari_sam2.widgets._layer_combo import LayerCombo
from napari_sam2.widgets._layout import DockWidget, form_box, row, spin_box
from napari_sam2.widgets._model_controls import ModelControls

if TYPE_CHECKING:
    import napari

    from napari_sam2.fine_tune.run import Validation
    from sam2.training.trainable import Trainable
    from sam2.training.trainer import StepLog

__all__ = ["FineTuneSettings", "FineTuneWidget"]

#: (choice, what it trains), in the order offered; the choices are sam2's TRAINABLE_CHOICES
#: (spelled here so that opening the widget does not import torch).
TRAINABLE_TEXT: tuple[tuple[Trainable, str], ...] = (
    ("decoder", "mask decoder only: fastest, safest on a few images"),
    ("lora", "low-rank adapters on the attention layers: small, gentle"),
    ("no_image_encoder", "everything but the image encoder"),
    ("all", "the whole model: slowest, needs the most data"),
)


class FineTuneWidget(DockWidget):
    """Fine-tune a SAM 2 model on corrected (Image, Labels) pairs and list the result."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self._viewer = viewer
        self._pairs: list[TrainingPair] = []
        #: Batches per validation; not a control (scripts and tests lower it for speed).
        self.validation_batches = VALIDATION_BATCHES
        self._job = FineTuneJob(self)
        self._build()
        viewer.layers.events.removed.connect(self._on_layer_removed)
        self._on_running(False)

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        self._model_box = ModelControls(compact=True)
        self._model_box.setTitle("Base model")
        self._image_combo = LayerCombo(self._viewer, Image)
        self._labels_combo = LayerCombo(self._viewer, Labels)
        self._labels_combo.setToolTip("Your corrected cells on this image, one label id per cell")
        self._add_pair_button = QPushButton("Add pair")
        self._add_pair_button.setToolTip("Train on several images: add each (Image, Labels) pair")
        self._remove_pair_button = QPushButton("Remove")
        self._pairs_list = QListWidget()
        self._pairs_list.setMaximumHeight(80)
        self._pairs_list.setToolTip("With no pair listed, the pair chosen above is used")

        self._trainable_combo = QComboBox()
        for choice, text in TRAINABLE_TEXT:
            self._trainable_combo.addItem(f"{choice}: {text}", choice)
        self._steps_spin = spin_box(1, 100_000, 300, " steps")
        self._lr_spin = QDoubleSpinBox()
        self._lr_spin.setDecimals(5)
        self._lr_spin.setRange(1e-5, 1e-2)
        self._lr_spin.setSingleStep(1e-5)
        self._lr_spin.setValue(1e-4)
        self._val_spin = QDoubleSpinBox()
        self._val_spin.setRange(0.05, 0.5)
        self._val_spin.setSingleStep(0.05)
        self._val_spin.setValue(0.2)
        self._val_spin.setSuffix(" held out")
        self._val_spin.setToolTip(
            "Share held out to score the model (one click per cell): whole pairs when there "
            "are several, else the last planes of the stack"
        )
        self._validate_every_spin = spin_box(1, 100_000, 50, " steps")
        self._clips_check = QCheckBox(f"also train on {CLIP_FRAMES}-frame clips (video memory)")
        self._clips_check.setToolTip("Off: single labelled planes only (unlabelled planes skipped)")

        self._out_edit = QLineEdit()
        self._out_edit.setPlaceholderText("folder for model.safetensors + model.json")
        self._browse_button = QPushButton("Browse…")
        self._overwrite_check = QCheckBox("replace a model already there")

        self._train_button = QPushButton("Train")
        self._stop_button = QPushButton("Stop")
        self._stop_button.setToolTip("Stop after the current step; the best model so far is kept")
        self._status_label = QLabel("Choose an image and the labels you corrected on it.")
        self._status_label.setWordWrap(True)
        self._plot = TrainingPlot()

        data_box = form_box(
            "Training data",
            ("Image", self._image_combo),
            ("Labels", self._labels_combo),
            ("", row(self._add_pair_button, self._remove_pair_button)),
            ("Pairs", self._pairs_list),
        )
        training_box = form_box(
            "Training",
            ("Train", self._trainable_combo),
            ("Steps", self._steps_spin),
            ("Learning rate", self._lr_spin),
            ("Validation", self._val_spin),
            ("Validate every", self._validate_every_spin),
            ("", self._clips_check),
        )
        output_box = form_box(
            "Output",
            ("Folder", row(self._out_edit, self._browse_button)),
            ("", self._overwrite_check),
        )

        layout = QVBoxLayout(self)
        for widget in (self._model_box, data_box, training_box, output_box):
            layout.addWidget(widget)
        layout.addWidget(row(self._train_button, self._stop_button))
        layout.addWidget(self._status_label)
        layout.addWidget(self._plot)
        layout.addStretch(1)

        self._model_box.hint.connect(self._set_status)
        self._add_pair_button.clicked.connect(self._on_add_pair)
        self._remove_pair_button.clicked.connect(self._on_remove_pair)
        self._browse_button.clicked.connect(self._on_browse)
        self._train_button.clicked.connect(self._on_train)
        self._stop_button.clicked.connect(self._on_stop)
        self._job.state.events.status.connect(self._set_status)
        self._job.failed.connect(self._refuse)
        self._job.step.connect(self._on_step)
        self._job.validation.connect(self._on_validation)
        self._job.state.events.running.connect(self._on_running)

    # ------------------------------------------------------------------ inputs
    @property
    def running(self) -> bool:
        return self._job.running

    def base_choice(self) -> ModelChoice:
        """The model training starts from (loaded afresh in the worker: never shared)."""
        return self._model_box.choice()

    def settings(self) -> FineTuneSettings:
        """The controls as settings; ValueError names a missing or unusable output folder."""
        text = self._out_edit.text().strip()
        if not text:
            raise ValueError("Choose an output folder for the trained model (Browse…).")
        out = Path(text).expanduser()
        if out.exists() and not out.is_dir():
            raise ValueError(f"{out} is a file; choose a folder for the trained model.")
        return FineTuneSettings(
            out_dir=out,
            trainable=self._trainable_combo.currentData(),
            steps=self._steps_spin.value(),
            lr=self._lr_spin.value(),
            val_fraction=round(self._val_spin.value(), 3),
            validate_every=self._validate_every_spin.value(),
            clips=self._clips_check.isChecked(),
            overwrite=self._overwrite_check.isChecked(),
            validation_batches=self.validation_batches,
        )

    def pairs(self) -> list[TrainingPair]:
        """The listed pairs, or the pair chosen in the combos when none is listed."""
        if self._pairs:
            return list(self._pairs)
        return [make_pair(self._image_combo.layer, self._labels_combo.layer)]

    def _on_add_pair(self) -> None:
        try:
            pair = make_pair(self._image_combo.layer, self._labels_combo.layer)
        except ValueError as exc:
            self._refuse(str(exc))
            return
        if any(pair.same_layers(p) for p in self._pairs):
            self._set_status(f"{pair.name} is already listed.")
            return
        self._pairs.append(pair)
        self._pairs_list.addItem(pair.name)

    def _on_remove_pair(self) -> None:
        index = self._pairs_list.currentRow()
        if 0 <= index < len(self._pairs):
            del self._pairs[index]
            self._pairs_list.takeItem(index)

    def _on_layer_removed(self, event: Any) -> None:
        """Forget the pairs of a removed layer (a running job already holds its arrays)."""
        for index in reversed(range(len(self._pairs))):
            if event.value in (self._pairs[index].image, self._pairs[index].labels):
                del self._pairs[index]
                self._pairs_list.takeItem(index)

    def _on_browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the fine-tuned model")
        if folder:
            self._out_edit.setText(folder)

    # ------------------------------------------------------------------ running
    def _on_train(self) -> None:
        """Check everything on the main thread, then start the worker (or say what is wrong)."""
        if self._closed or self.running:
            return
        try:
            settings = self.settings()
            pairs = self.pairs()
            clips = CLIP_FRAMES if settings.clips else None
            check_pairs(pairs, val_fraction=settings.val_fraction, clip_frames=clips)
        except ValueError as exc:
            self._refuse(str(exc))
            return
        confirmed = self._confirm_overwrite(settings)
        if confirmed is not None:
            self._start(pairs, confirmed)

    def _confirm_overwrite(self, settings: FineTuneSettings) -> FineTuneSettings | None:
        """``settings``, with overwrite on if the user agrees to replace a model in the
        folder; None if they decline."""
        from sam2.training.trainer import STATE_NAME, WEIGHTS_NAME

        names = (WEIGHTS_NAME, STATE_NAME)  # what run_fine_tuning refuses to replace
        if settings.overwrite or not any((settings.out_dir / n).exists() for n in names):
            return settings
        answer = QMessageBox.question(
            self,
            "Replace the trained model?",
            f"{settings.out_dir} already holds a trained model.\n\nReplace it?",
        )
        if answer != QMessageBox.StandardButton.Yes:
            self._set_status("Not started: choose another output folder, or replace the model.")
            return None
        return dataclasses.replace(settings, overwrite=True)

    def _start(self, pairs: list[TrainingPair], settings: FineTuneSettings) -> None:
        self._plot.reset(settings.steps)
        # the arrays are taken here, on the main thread, and read in the worker
        self._job.start([pair.arrays() for pair in pairs], settings, self.base_choice())

    def _on_stop(self) -> None:
        self._job.stop()

    def _on_validation(self, validation: Validation) -> None:
        self._plot.add_iou(validation.step, validation.click_iou)

    def _on_step(self, log: StepLog) -> None:
        self._plot.add_loss(log.step, log.loss["total"])

    def _on_running(self, running: bool) -> None:
        self._train_button.setEnabled(not running)
        self._stop_button.setEnabled(running)
        for widget in (self._model_box, self._add_pair_button, self._remove_pair_button):
            widget.setEnabled(not running)

    def _set_status(self, text: str) -> None:
        self._status_label.setText(text)

    def _refuse(self, message: str) -> None:
        """Say what is wrong, once, as a notification and in the status line."""
        show_error(message)
        self._set_status(message)

    def _shutdown(self) -> None:
        self._job.stop()  # the run ends after its step; the best model is still listed
        self._viewer.layers.events.removed.disconnect(self._on_layer_removed)
