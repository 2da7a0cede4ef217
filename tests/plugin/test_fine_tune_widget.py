"""The "SAM 2 fine-tuning" dock widget, end to end in a real viewer.

A random-weight demo-architecture model at 128 px is the base, trained for a few decoder
steps on a small synthetic stack; the result must land on disk, in the status line and in
the model lists of the other widgets opened in the same viewer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from napari.layers import Image, Labels
from napari.utils.notifications import notification_manager
from qtpy.QtWidgets import QMessageBox

from napari_sam2.fine_tune.widget import TRAINABLE_TEXT, FineTuneWidget
from napari_sam2.models import LOCAL_CHECKPOINT, USER_MODELS, ModelChoice
from napari_sam2.segment.widget import SegmentWidget
from napari_sam2.tracking.napari.widget import TrackWidget
from napari_sam2.widgets._model_controls import ModelControls
from sam2.synthetic import SyntheticTimelapse, make_timelapse
from tests.plugin.session import WAIT_MS, errors_after

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight demo-cells model at 128 px, saved as a trained model is."""
    import torch

    from sam2.build_sam import build_model
    from sam2.configs import resolve_config
    from sam2.training.checkpoints import save_weights

    torch.manual_seed(0)
    model = build_model(resolve_config("demo-cells").replace(image_size=128))
    return save_weights(model, tmp_path_factory.mktemp("base") / "base.safetensors")


@pytest.fixture(scope="module")
def cells() -> SyntheticTimelapse:
    """4 frames of 128² with 4 cells and their labels, no division."""
    return make_timelapse(n_frames=4, shape=(128, 128), n_cells=4, division_frames=(), seed=5)


@pytest.fixture(autouse=True)
def forget_user_models() -> Iterator[None]:
    """Models registered by a test are unlisted after it (other tests count the list)."""
    yield
    for model in USER_MODELS:
        USER_MODELS.remove(model)


@dataclass
class FineTuning:
    """A viewer with the stack, its labels and the widget added through the manifest."""

    viewer: Any
    widget: FineTuneWidget
    image: Image
    labels: Labels
    qtbot: Any

    def wait(self) -> None:
        self.qtbot.waitUntil(lambda: not self.widget.running, timeout=2 * WAIT_MS)

    def status(self) -> str:
        return str(self.widget._status_label.text())


@pytest.fixture
def open_fine_tuning(
    make_napari_viewer: Callable[..., Any], qtbot: Any, base: Path, cells: SyntheticTimelapse
) -> Iterator[Callable[[Path], FineTuning]]:
    """Open the stack and labels; the base model is ``base`` as a local checkpoint, on CPU."""
    opened: list[FineTuning] = []

    def factory(out: Path) -> FineTuning:
        viewer = make_napari_viewer()
        image = viewer.add_image(cells.image, name="cells")
        labels = viewer.add_labels(cells.labels.astype(np.uint32), name="corrected")
        _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2 fine-tuning")
        assert isinstance(widget, FineTuneWidget)
        box = widget._model_box
        box.checkpoint_edit.setText(str(base))
        box.model_combo.setCurrentText(LOCAL_CHECKPOINT)
        box.device_combo.setCurrentIndex(1)  # cpu
        widget._out_edit.setText(str(out))
        widget._steps_spin.setValue(4)
        widget._validate_every_spin.setValue(2)
        widget.validation_batches = 1
        opened.append(FineTuning(viewer, widget, image, labels, qtbot))
        return opened[-1]

    yield factory
    for tuning in opened:  # never leave a worker running into the viewer's teardown
        tuning.widget._on_stop()
        tuning.wait()


def _model_texts(controls: ModelControls) -> list[str]:
    combo = controls.model_combo
    return [combo.itemText(i) for i in range(combo.count())]


def test_trainable_choices_are_sam2s_with_decoder_first() -> None:
    """The "Train" combo offers exactly sam2's TRAINABLE_CHOICES, "decoder" by default."""
    from sam2.training.trainable import TRAINABLE_CHOICES

    assert sorted(c for c, _ in TRAINABLE_TEXT) == sorted(TRAINABLE_CHOICES)
    assert TRAINABLE_TEXT[0][0] == "decoder"


def test_train_saves_reports_and_lists_the_model(
    open_fine_tuning: Callable[[Path], FineTuning], tmp_path: Path
) -> None:
    """Four decoder steps: model.safetensors in the folder, IoU before → after in the
    status, the curves plotted, and the model in the segment and tracking widgets' lists
    (one opened before the run, one after), loading from the checkpoint chosen."""
    tuning = open_fine_tuning(tmp_path / "tuned")
    _, track = tuning.viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2 cell tracking")
    assert isinstance(track, TrackWidget)
    tuning.widget._on_train()
    assert tuning.widget.running
    tuning.wait()
    weights = tmp_path / "tuned" / "model.safetensors"
    assert weights.is_file() and (tmp_path / "tuned" / "model.json").is_file()
    status = tuning.status()
    assert "4 steps: validation click IoU" in status and "→" in status
    assert str(weights) in status
    plot = tuning.widget._plot
    assert [s for s, _ in plot.losses] == [1, 2, 3, 4]
    assert [s for s, _ in plot.ious] == [0, 2, 4]

    label = "fine-tuned: tuned"
    assert label in _model_texts(track._model_box)  # listed at once in an open widget
    _, segment = tuning.viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2 segmentation")
    assert isinstance(segment, SegmentWidget)
    texts = _model_texts(segment._model_box)
    assert texts.index(label) == len(texts) - 2  # just before "local checkpoint…"
    segment._model_box.model_combo.setCurrentText(label)
    choice = segment._model_box.choice()
    assert choice.hub_id is None and choice.checkpoint == str(weights.resolve())
    assert ModelChoice(hub_id=None, checkpoint=choice.checkpoint, device="cpu").load()


def test_stop_keeps_a_loadable_checkpoint(
    open_fine_tuning: Callable[[Path], FineTuning], tmp_path: Path
) -> None:
    """Stop pressed after the first of 50 steps: the run ends early, says so, and the
    folder holds a model that loads; it is listed like a finished one."""
    tuning = open_fine_tuning(tmp_path / "stopped")
    widget = tuning.widget
    widget._steps_spin.setValue(50)
    widget._validate_every_spin.setValue(1)
    widget._job.step.connect(lambda log: widget._on_stop())
    widget._on_train()
    tuning.wait()
    assert tuning.status().startswith("Stopped after")
    weights = tmp_path / "stopped" / "model.safetensors"
    model = ModelChoice(hub_id=None, checkpoint=str(weights), device="cpu").load()
    assert model.model.image_size == 128
    assert [m.checkpoint for m in USER_MODELS] == [str(weights.resolve())]
    assert len(widget._plot.losses) < 50


def _mismatched_labels(tuning: FineTuning) -> None:
    """Labels 'corrected' have shape (4, 64, 64) but image 'cells' has (4, 128, 128)"""
    tuning.labels.data = np.ones((4, 64, 64), dtype=np.uint32)


def _empty_labels(tuning: FineTuning) -> None:
    """Labels 'corrected' are empty (all 0)"""
    tuning.labels.data = np.zeros_like(tuning.labels.data)


def _no_labels_layer(tuning: FineTuning) -> None:
    """Choose the Labels layer with your corrected cells on 'cells'"""
    tuning.viewer.layers.remove(tuning.labels)


def _no_layers(tuning: FineTuning) -> None:
    """Choose an Image layer to train on"""
    tuning.viewer.layers.clear()


def _one_plane(tuning: FineTuning) -> None:
    """has one labelled plane, which cannot be split into training and validation"""
    data = tuning.labels.data.copy()
    data[1:] = 0
    tuning.labels.data = data


def _too_short_for_clips(tuning: FineTuning) -> None:
    """leaves 3 frame(s) to train on, too few for clips of 4 frames"""
    tuning.widget._clips_check.setChecked(True)


def _no_output_folder(tuning: FineTuning) -> None:
    """Choose an output folder for the trained model"""
    tuning.widget._out_edit.setText("  ")


@pytest.mark.parametrize(
    "mutate",
    [
        _mismatched_labels,
        _empty_labels,
        _no_labels_layer,
        _no_layers,
        _one_plane,
        _too_short_for_clips,
        _no_output_folder,
    ],
)
def test_bad_input_is_one_notification_and_starts_nothing(
    open_fine_tuning: Callable[[Path], FineTuning],
    tmp_path: Path,
    mutate: Callable[[FineTuning], None],
) -> None:
    """Each broken input gives the error its mutator's docstring names; no worker starts."""
    tuning = open_fine_tuning(tmp_path / "never")
    mutate(tuning)
    start = len(notification_manager.records)
    tuning.widget._on_train()
    assert not tuning.widget.running
    expected = (mutate.__doc__ or "").strip()
    errors = errors_after(start)
    assert len(errors) == 1 and expected in errors[0], errors
    assert expected in tuning.status()
    assert not (tmp_path / "never").exists()


def test_existing_model_is_kept_unless_the_user_confirms(
    open_fine_tuning: Callable[[Path], FineTuning], tmp_path: Path, monkeypatch: Any
) -> None:
    """A folder holding a model: asked, answered No, nothing starts and the file stays."""
    out = tmp_path / "taken"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"keep me")
    asked: list[str] = []

    def answer_no(*args: Any) -> QMessageBox.StandardButton:
        asked.append(str(args[2]))
        return QMessageBox.StandardButton.No

    monkeypatch.setattr(QMessageBox, "question", answer_no)
    tuning = open_fine_tuning(out)
    tuning.widget._on_train()
    assert asked and "already holds a trained model" in asked[0]
    assert not tuning.widget.running and tuning.status().startswith("Not started")
    assert (out / "model.safetensors").read_bytes() == b"keep me"


def test_pairs_list_follows_adds_and_removed_layers(
    open_fine_tuning: Callable[[Path], FineTuning], tmp_path: Path
) -> None:
    """A pair is listed once however often it is added, and goes when its layer does."""
    tuning = open_fine_tuning(tmp_path / "out")
    widget = tuning.widget
    widget._on_add_pair()
    widget._on_add_pair()
    assert [p.name for p in widget.pairs()] == ["cells + corrected"]
    assert widget._pairs_list.count() == 1
    tuning.viewer.layers.remove(tuning.image)
    assert widget._pairs_list.count() == 0 and widget._pairs == []


def test_model_controls_follow_the_registry(qtbot: Any, tmp_path: Path) -> None:
    """A registered model is listed before "local checkpoint…" in controls built before or
    after it, once however often it is added, and leaves when it is removed."""
    before = ModelControls()
    qtbot.addWidget(before)
    weights = tmp_path / "mine" / "model.safetensors"
    model = USER_MODELS.add(weights)
    assert USER_MODELS.add(weights) == model and len(USER_MODELS) == 1
    after = ModelControls()
    qtbot.addWidget(after)
    for controls in (before, after):
        texts = _model_texts(controls)
        assert texts[-2:] == ["fine-tuned: mine", LOCAL_CHECKPOINT]
    after.model_combo.setCurrentText("fine-tuned: mine")
    assert after.choice() == ModelChoice(hub_id=None, checkpoint=str(weights.resolve()))
    USER_MODELS.remove(model)
    assert "fine-tuned: mine" not in _model_texts(before) + _model_texts(after)


def test_closing_mid_run_stops_and_still_lists_the_model(
    open_fine_tuning: Callable[[Path], FineTuning], tmp_path: Path
) -> None:
    """Closing the dock during a run stops it after the step in flight; the best model so
    far is saved and listed, and no progress bar is left behind."""
    from napari.utils import progress

    tuning = open_fine_tuning(tmp_path / "closed")
    widget = tuning.widget
    widget._steps_spin.setValue(50)
    widget._on_train()
    worker = widget._job._worker
    assert worker is not None
    with tuning.qtbot.waitSignal(worker.finished, timeout=2 * WAIT_MS):
        tuning.viewer.window.remove_dock_widget(widget)
    tuning.qtbot.waitUntil(lambda: len(USER_MODELS) == 1, timeout=WAIT_MS)
    assert next(iter(USER_MODELS)).label == "fine-tuned: closed"
    assert (tmp_path / "closed" / "model.safetensors").is_file()
    assert not any(p.desc == "Fine-tuning SAM 2" for p in progress._all_instances)
