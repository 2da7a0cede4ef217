"""The "Model" group both dock widgets share: which SAM 2 model, where it runs, how precise.

It turns its controls into a :class:`~napari_sam2.models.ModelChoice` and a load-once
:data:`~napari_sam2.models.ModelLoader`; nothing is loaded and torch is not imported until a
widget calls the loader (or opens the device list). Models fine-tuned in this session
(:data:`~napari_sam2.models.USER_MODELS`) are listed before "local checkpoint…" as soon as
they are registered.
"""

from __future__ import annotations

import sys
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QStandardItemModel
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)

from napari_sam2.models import (
    DEMO_MODEL,
    DEMO_MODEL_LABEL,
    LOCAL_CHECKPOINT,
    USER_MODELS,
    ModelChoice,
    ModelLoader,
    UserModel,
    available_devices,
    config_for_checkpoint,
    default_model,
    model_ids,
    model_loader,
)
from napari_sam2.widgets._layout import row

if TYPE_CHECKING:
    from sam2.precision import PrecisionChoice

__all__ = ["DEVICES", "PRECISIONS", "ModelControls"]

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS: tuple[PrecisionChoice, ...] = ("auto", "fp32", "bf16")  # sam2's, without torch
FROM_FILE_NAME = "from file name"


class ModelControls(QGroupBox):
    """Model, local checkpoint (+ config), device and precision, as one model loader.

    ``changed`` is emitted after any control changes (the loader is rebuilt on the next
    :meth:`factory` call); ``hint`` carries a sentence for the owner's status line.
    ``choose_config`` adds the config choice for local checkpoints; ``compact`` puts device and
    precision on one "Run on" line.
    """

    changed = Signal()
    hint = Signal(str)

    def __init__(
        self, parent: QWidget | None = None, *, choose_config: bool = True, compact: bool = False
    ) -> None:
        super().__init__("Model", parent)
        self._factory: ModelLoader | None = None
        self.model_combo = QComboBox()
        for model_id in model_ids():  # shown by label, carried by id
            self.model_combo.addItem(_model_label(model_id), model_id)
        self.model_combo.addItem(LOCAL_CHECKPOINT, None)
        for user_model in USER_MODELS:
            self._add_user_model(user_model)
        self.model_combo.setCurrentIndex(self.model_combo.findData(default_model()))
        self.model_combo.setToolTip(
            "Released models are downloaded once into the Hugging Face cache (tiny is fastest, "
            "large most accurate); the demo model ships with the plugin, for trying it offline"
        )
        self.checkpoint_edit = QLineEdit()
        self.checkpoint_edit.setPlaceholderText("path to a .pt or .safetensors file")
        self.browse_button = QPushButton("Browse…")
        self.config_combo: QComboBox | None = None
        self.device_combo = _DeviceCombo()
        self.device_combo.addItems(list(DEVICES))
        self.device_combo.setToolTip("auto: CUDA, then Apple MPS, then the CPU")
        self.precision_combo = QComboBox()
        self.precision_combo.addItems(list(PRECISIONS))
        self.precision_combo.setToolTip(
            "auto: bf16 where the CPU or GPU has bfloat16 units, else fp32. fp32: the "
            "reference's numbers. bf16: about 3× faster with bfloat16 units (masks agree with "
            "fp32's to IoU ~0.99), several times slower on CPUs without them"
        )

        form = QFormLayout(self)
        form.addRow("Model", self.model_combo)
        checkpoint_label = QLabel("Checkpoint")
        checkpoint_row = row(self.checkpoint_edit, self.browse_button)
        form.addRow(checkpoint_label, checkpoint_row)
        self._local_widgets: list[QWidget] = [checkpoint_label, checkpoint_row]
        if choose_config:
            self.config_combo = QComboBox()
            self.config_combo.addItems([FROM_FILE_NAME, *_config_names()])
            config_label = QLabel("Config")
            form.addRow(config_label, self.config_combo)
            self._local_widgets += [config_label, self.config_combo]
            self.config_combo.currentTextChanged.connect(self._on_control_changed)
        if compact:
            form.addRow("Run on", row(self.device_combo, self.precision_combo))
        else:
            form.addRow("Device", self.device_combo)
            form.addRow("Precision", self.precision_combo)
        self._show_local_controls(False)
        self.refresh_devices()

        self.model_combo.currentTextChanged.connect(self._on_control_changed)
        self.checkpoint_edit.editingFinished.connect(self._on_control_changed)
        self.device_combo.currentIndexChanged.connect(self._on_control_changed)
        self.precision_combo.currentIndexChanged.connect(self._on_control_changed)
        self.browse_button.clicked.connect(self._on_browse)
        _follow_user_models(self)

    def choice(self) -> ModelChoice:
        """The model the controls describe."""
        device = DEVICES[max(self.device_combo.currentIndex(), 0)]
        precision = PRECISIONS[max(self.precision_combo.currentIndex(), 0)]
        chosen = self.model_combo.currentData()
        if isinstance(chosen, UserModel):  # its config is the JSON beside it
            return ModelChoice(
                hub_id=None,
                checkpoint=chosen.checkpoint,
                device=None if device == "auto" else device,
                precision=precision,
            )
        config = None
        if self.config_combo is not None and self.config_combo.currentIndex() > 0:
            config = self.config_combo.currentText()
        return ModelChoice(
            hub_id=self.model_combo.currentData(),
            checkpoint=self.checkpoint_edit.text().strip() or None,
            config=config,
            device=None if device == "auto" else device,
            precision=precision,
        )

    def factory(self) -> ModelLoader:
        """The chosen model's loader: built on first call, the same one until a control
        changes (so every image shares one model in memory)."""
        if self._factory is None:
            self._factory = model_loader(self.choice())
        return self._factory

    def set_factory(self, factory: ModelLoader) -> None:
        """Return ``factory`` (tests, scripts, custom models) until a control changes."""
        self._factory = factory

    def refresh_devices(self) -> None:
        """Mark unavailable devices, if torch is already loaded (this never imports it)."""
        if "torch" in sys.modules:
            _mark_devices(self.device_combo)

    def _index_of(self, data: UserModel | str | None) -> int:
        """The model entry carrying ``data`` (compared in Python: Qt's findData cannot
        compare Python objects), or -1."""
        combo = self.model_combo
        return next((i for i in range(combo.count()) if combo.itemData(i) == data), -1)

    def _add_user_model(self, model: UserModel) -> None:
        """List ``model`` just before "local checkpoint…" (once; its path as tooltip)."""
        combo = self.model_combo
        if self._index_of(model) < 0:
            index = self._index_of(None)  # the local checkpoint entry
            blocked = combo.blockSignals(True)
            combo.insertItem(index, model.label, model)
            combo.setItemData(index, model.checkpoint, Qt.ItemDataRole.ToolTipRole)
            combo.blockSignals(blocked)

    def _on_user_model_added(self, model: UserModel) -> None:
        listed = self._index_of(model) >= 0
        self._add_user_model(model)
        if listed and self.model_combo.currentData() == model:
            self._on_control_changed()  # retrained in place: load the new weights

    def _on_user_model_removed(self, model: UserModel) -> None:
        index = self._index_of(model)
        if index >= 0:
            self.model_combo.removeItem(index)  # emits a change if it was chosen

    def _on_control_changed(self, *_: Any) -> None:
        self._show_local_controls(self.model_combo.currentData() is None)
        self._factory = None
        self.changed.emit()

    def _show_local_controls(self, visible: bool) -> None:
        for widget in self._local_widgets:
            widget.setVisible(visible)

    def _on_browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "SAM 2 checkpoint", "", "Checkpoints (*.pt *.pth *.safetensors)"
        )
        if path:
            self.checkpoint_edit.setText(path)
            config_combo = self.config_combo
            if (
                config_combo is not None
                and config_combo.currentIndex() == 0
                and config_for_checkpoint(path) is None
            ):
                self.hint.emit(
                    f"Choose the config of {Path(path).name}: its name is not an official one."
                )
            self._on_control_changed()


def _follow_user_models(controls: ModelControls) -> None:
    """Connect ``controls`` to the registry until its Qt object is destroyed.

    psygnal holds bound methods weakly, which covers a garbage-collected widget; a widget
    whose C++ side napari deleted while Python still holds it is disconnected here, so the
    registry never calls into a deleted widget.
    """
    slots = (
        (USER_MODELS.added, weakref.WeakMethod(controls._on_user_model_added)),
        (USER_MODELS.removed, weakref.WeakMethod(controls._on_user_model_removed)),
    )
    for signal, ref in slots:
        method = ref()
        if method is not None:
            signal.connect(method)

    def disconnect(*_: Any) -> None:
        for signal, ref in slots:
            method = ref()
            if method is not None:
                signal.disconnect(method, missing_ok=True)

    controls.destroyed.connect(disconnect)


class _DeviceCombo(QComboBox):
    """Marks unavailable devices when opened (importing torch only then, if not yet loaded)."""

    def showPopup(self) -> None:
        _mark_devices(self)
        super().showPopup()


def _mark_devices(combo: QComboBox) -> None:
    """Grey out the devices this machine lacks and say what "auto" picks (imports torch)."""
    available = available_devices()
    best = next((d for d in ("cuda", "mps") if available[d]), "cpu")
    model = combo.model()
    if not isinstance(model, QStandardItemModel):
        return
    for index, name in enumerate(DEVICES):
        item = model.item(index)
        if item is None:
            continue
        if name == "auto":
            item.setText(f"auto ({best})")
        else:
            item.setEnabled(available[name])
            item.setText(name if available[name] else f"{name} (not available)")


def _model_label(model_id: str) -> str:
    return DEMO_MODEL_LABEL if model_id == DEMO_MODEL else model_id


def _config_names() -> list[str]:
    from sam2.hub import HF_MODEL_ID_TO_FILENAMES

    return [Path(config).name for config, _ in HF_MODEL_ID_TO_FILENAMES.values()]
