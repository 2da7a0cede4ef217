"""The SAM 2 segmentation dock widget, end to end in a real viewer with a small random model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from napari.layers import Points
from napari.utils.key_bindings import KeyBinding
from napari.utils.notifications import notification_manager

from napari_sam2.models import (
    DEMO_MODEL,
    DEMO_MODEL_LABEL,
    LOCAL_CHECKPOINT,
    default_model,
    hub_model_ids,
)
from tests.plugin.session import Session, errors_after, on_frame

pytestmark = pytest.mark.gui


def test_widget_lists_models_and_devices(open_session: Callable[..., Session]) -> None:
    """The manifest widget offers the demo model, the 8 hub models and a local checkpoint
    (the default as :func:`default_model` says), and device choices."""
    session = open_session()
    combo = session.widget._model_combo
    items = [combo.itemText(i) for i in range(combo.count())]
    assert len(items) == 10 and items[-1] == LOCAL_CHECKPOINT
    assert items[0] == DEMO_MODEL_LABEL and combo.itemData(0) == DEMO_MODEL
    assert items[1:9] == hub_model_ids()
    assert combo.currentData() == default_model()
    assert "t (24 planes)" in session.widget._stack_label.text()
    devices = session.widget._device_combo
    assert [devices.itemText(i).split()[0] for i in range(devices.count())] == [
        "auto",
        "cpu",
        "cuda",
        "mps",
    ]


def test_click_segments_only_the_current_frame(open_session: Callable[..., Session]) -> None:
    """A click on frame 5 writes object 1 into a new uint32 Labels layer on frame 5 only."""
    session = open_session()
    on_frame(session, 5)
    assert session.viewer.layers.selection.active is session.points
    assert session.points.mode == "add"
    session.click(5, 128, 128)
    labels = session.labels.data
    assert labels.dtype == np.uint32 and labels.shape == (24, 256, 256)
    assert set(np.unique(labels[5])) == {0, 1}
    assert not np.delete(labels, 5, axis=0).any()
    assert session.viewer.layers.selection.active is session.points  # still clicking
    assert "object 1 on t=5" in session.widget._status_label.text()


def test_second_object_leaves_the_first_untouched(open_session: Callable[..., Session]) -> None:
    """After "New object" a click writes id 2 and never changes a pixel of object 1."""
    session = open_session()
    on_frame(session, 3)
    session.click(3, 128, 128)
    first = session.labels.data == 1
    session.widget._on_new_object()
    assert session.widget._object_spin.value() == 2
    session.click(3, 120, 136)
    assert np.array_equal(session.labels.data == 1, first)
    assert (session.labels.data == 2).any()
    assert set(np.unique(session.labels.data)) == {0, 1, 2}
    assert session.points.features["object_id"].tolist() == [1, 2]
    assert session.points.shown.tolist() == [False, True]  # only the current object's points


def test_cached_frame_answers_a_click_without_a_worker(
    open_session: Callable[..., Session],
) -> None:
    """Once a frame is embedded, a click is segmented at once on the main thread."""
    session = open_session()
    on_frame(session, 2)
    session.points.add([2, 100, 100])
    assert not session.controller.busy
    assert (session.labels.data[2] == 1).any()


def test_moving_and_removing_points_update_the_mask(open_session: Callable[..., Session]) -> None:
    """Live mode re-segments when a point moves, and removes our mask when none is left."""
    session = open_session("cells_2d")
    on_frame(session, 0)
    session.click(128, 128)
    before = session.labels.data.copy()
    session.points.data = np.array([[40.0, 200.0]])  # a drag ends with a "changed" event
    assert not np.array_equal(session.labels.data, before)
    session.points.selected_data = {0}
    session.points.remove_selected()
    assert not session.labels.data.any()


def test_a_point_on_another_frame_segments_that_frame(
    open_session: Callable[..., Session],
) -> None:
    """Live mode segments the frame a point lies on, even when another frame is shown."""
    session = open_session()
    on_frame(session, 2)
    session.click(9, 128, 128)
    assert session.labels.data[9].any()
    assert not np.delete(session.labels.data, 9, axis=0).any()


def test_removing_the_dock_stops_live_segmentation(open_session: Callable[..., Session]) -> None:
    """After the widget is closed, new points no longer write masks."""
    session = open_session()
    on_frame(session, 2)
    session.click(2, 128, 128)
    before = session.labels.data.copy()
    points, labels = session.points, session.labels
    session.viewer.window.remove_dock_widget(session.widget)
    points.add([2, 40, 40])
    np.testing.assert_array_equal(labels.data, before)
    assert session.widget._controllers == {}
    assert KeyBinding.from_str("T") not in points.keymap


def test_undo_takes_back_one_segmentation(open_session: Callable[..., Session]) -> None:
    """Labels undo restores the mask before the last click, then the empty slice, even after
    the viewer moved to another frame."""
    session = open_session()
    on_frame(session, 7)
    session.click(7, 128, 128)
    first = session.labels.data.copy()
    session.click(7, 60, 60)
    assert not np.array_equal(session.labels.data, first)
    session.viewer.dims.set_current_step(0, 12)
    session.labels.undo()
    np.testing.assert_array_equal(session.labels.data, first)
    session.labels.undo()
    assert not session.labels.data.any()


def test_toggle_key_makes_negative_points(open_session: Callable[..., Session]) -> None:
    """Pressing T on the prompt layer makes the next point negative (red) and says so."""
    session = open_session()
    on_frame(session, 0)
    session.click(0, 128, 128)
    session.points.selected_data = set()
    session.points.keymap[KeyBinding.from_str("T")](session.points)
    assert "negative" in session.widget._status_label.text()
    session.click(0, 30, 30)
    assert session.points.features["positive"].tolist() == [True, False]


def test_clear_object_empties_only_this_frame(open_session: Callable[..., Session]) -> None:
    """Clear object removes the object's mask and points on the current frame only."""
    session = open_session()
    for t in (4, 6):
        on_frame(session, t)
        session.click(t, 128, 128)
    session.widget._on_clear_object()
    assert not session.labels.data[6].any() and session.labels.data[4].any()
    assert session.points.data[:, 0].tolist() == [4.0]


def _choose_users_labels(session: Session) -> tuple[Any, np.ndarray]:
    """Add the user's Labels layer (object 5 on the left half) and choose it as output."""
    user = np.zeros((256, 256), np.uint16)
    user[:, :128] = 5
    layer = session.viewer.add_labels(user.copy(), name="my labels")
    session.widget._labels_combo.set_layer(layer)
    session.widget._on_labels_changed()
    return layer, user


def test_existing_labels_layer_only_gets_empty_pixels(
    open_session: Callable[..., Session],
) -> None:
    """Choosing a user's Labels layer starts a fresh id and leaves every labelled pixel as is."""
    session = open_session("cells_2d")
    layer, user = _choose_users_labels(session)
    assert session.widget._object_spin.value() == 6
    on_frame(session, 0)
    session.click(128, 130)
    assert np.array_equal(layer.data[:, :128], user[:, :128])
    assert set(np.unique(layer.data[:, 128:])) <= {0, 6}


def test_a_typed_id_of_the_users_labels_is_refused(
    open_session: Callable[..., Session],
) -> None:
    """Typing an id the chosen layer already holds (the user's object 5) and clicking is an
    error notification that names a free id; object 5's pixels all stay."""
    session = open_session("cells_2d")
    layer, user = _choose_users_labels(session)
    session.widget._object_spin.setValue(5)
    on_frame(session, 0)
    start = len(notification_manager.records)
    session.click(128, 130)
    errors = errors_after(start)
    assert any("already holds object id(s) 5" in m and "free id (6)" in m for m in errors)
    np.testing.assert_array_equal(layer.data, user)
    assert "already holds object id(s) 5" in session.widget._status_label.text()


def test_contrast_limits_reach_the_model(
    open_session: Callable[..., Session], fast_predictor: Any
) -> None:
    """The image's contrast limits are what embed normalises with; new limits re-embed."""
    from napari_sam2.models import LoadedModel

    seen: list[Any] = []
    base_type = type(fast_predictor)

    class Recording(base_type):  # type: ignore[misc, valid-type]
        def embed(self, image: Any, contrast_limits: Any = None) -> Any:
            seen.append(contrast_limits)
            return super().embed(image, contrast_limits=contrast_limits)

    class RecordingModel(LoadedModel):
        def image_predictor(self) -> Any:
            return Recording(self.model, precision=self.precision)

    session = open_session("cells_2d")
    session.widget.set_model_factory(lambda: RecordingModel(fast_predictor.model))
    image = session.controller.image_layer
    image.contrast_limits = (300.0, 2000.0)
    on_frame(session, 0)
    session.click(128, 128)
    image.contrast_limits = (0.0, 5000.0)
    session.click(100, 100)
    assert seen == [(300.0, 2000.0), (0.0, 5000.0)]


def test_save_session_asks_before_replacing_the_labels_file(
    open_session: Callable[..., Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An existing ``<name>.labels.tif`` is replaced only after a Yes to a question that
    names it; after a No both files are as before."""
    import tifffile
    from qtpy.QtWidgets import QMessageBox

    session = open_session("cells_2d")
    on_frame(session, 0)
    session.click(128, 128)
    corrected = np.full((256, 256), 9, np.uint16)
    tifffile.imwrite(tmp_path / "cells.labels.tif", corrected)
    questions: list[str] = []
    answer = QMessageBox.StandardButton.No

    def ask(_parent: Any, _title: str, text: str) -> QMessageBox.StandardButton:
        questions.append(text)
        return answer

    monkeypatch.setattr(QMessageBox, "question", ask)
    session.widget._on_save_session(str(tmp_path / "cells"))
    assert len(questions) == 1 and "cells.labels.tif" in questions[0]
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "cells.labels.tif"), corrected)
    assert not (tmp_path / "cells.sam2.json").exists()
    answer = QMessageBox.StandardButton.Yes
    session.widget._on_save_session(str(tmp_path / "cells"))
    assert len(questions) == 2
    np.testing.assert_array_equal(
        tifffile.imread(tmp_path / "cells.labels.tif"), session.labels.data
    )
    assert "saved 1 point(s)" in session.widget._status_label.text()


# ---------------------------------------------------------------------- bad input
def test_no_image_layer_is_a_notification(open_session: Callable[..., Session]) -> None:
    """Segment without any image shows an error notification instead of raising."""
    session = open_session(None)
    start = len(notification_manager.records)
    session.widget._on_segment()
    session.widget._on_add_points()
    assert any("Open an image first" in m for m in errors_after(start))


def test_point_outside_the_image_is_a_notification(open_session: Callable[..., Session]) -> None:
    """A point off the image is reported and the existing mask is kept."""
    session = open_session()
    on_frame(session, 1)
    session.click(1, 128, 128)
    kept = session.labels.data.copy()
    start = len(notification_manager.records)
    session.click(1, 300, 20)
    assert any("lies outside the image (256×256" in m for m in errors_after(start))
    np.testing.assert_array_equal(session.labels.data, kept)


def test_point_beyond_the_last_frame_is_a_notification(
    open_session: Callable[..., Session],
) -> None:
    """A point on a frame the image does not have is reported, not segmented."""
    session = open_session()
    on_frame(session, 0)
    start = len(notification_manager.records)
    session.click(30, 128, 128)
    assert any("a point lies on t=30, outside image" in m for m in errors_after(start))


def test_prompt_layers_of_the_wrong_dimension_are_refused(
    open_session: Callable[..., Session],
) -> None:
    """1D prompt layers (napari cannot even show them) and 4D ones for a TYX image are refused."""
    session = open_session()
    with pytest.raises(ValueError, match="'line' has 1 dimension"):
        session.controller.points_layer = Points(np.zeros((2, 1)), ndim=1, name="line")
    cube = session.viewer.add_points(np.zeros((1, 4)), ndim=4, name="4d points")
    start = len(notification_manager.records)
    session.widget._points_combo.set_layer(cube)
    session.widget._on_prompt_layer_changed()
    assert any("'4d points' has 4 dimension(s)" in m for m in errors_after(start))
    assert session.controller.points_layer is None
    assert session.widget._points_combo.layer is None


def test_truncated_safetensors_is_reported_once_not_reloaded(
    open_session: Callable[..., Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cut-off .safetensors checkpoint is read once: one notification naming it (and the
    status line), no reload loop, no re-read on the next click; picking it again retries."""
    import torch
    from safetensors.torch import save_file

    import sam2.build_sam

    path = tmp_path / "sam2.1_hiera_tiny.safetensors"
    save_file({"w": torch.zeros(64, 64)}, str(path))
    path.write_bytes(path.read_bytes()[:-100])
    reads: list[str] = []
    read = sam2.build_sam.read_state_dict

    def counted(where: Any) -> Any:
        reads.append(str(where))
        return read(where)

    monkeypatch.setattr(sam2.build_sam, "read_state_dict", counted)
    session = open_session("cells_2d")
    widget = session.widget
    widget._checkpoint_edit.setText(str(path))
    widget._model_combo.setCurrentText(LOCAL_CHECKPOINT)
    start = len(notification_manager.records)
    on_frame(session, 0)
    session.qtbot.wait(1000)  # a reload loop would read the file again and again meanwhile
    session.wait()
    errors = errors_after(start)
    assert reads == [str(path)]
    assert len(errors) == 1 and "Could not load the SAM 2 model" in errors[0]
    assert "sam2.1_hiera_tiny.safetensors: " in errors[0] and "download" in errors[0]
    assert "Could not load the SAM 2 model" in widget._status_label.text()
    session.click(128, 128)  # the next click reports it again, without reading the file
    assert len(errors_after(start)) == 2 and reads == [str(path)]
    widget._checkpoint_edit.editingFinished.emit()  # the user picks the file again
    session.click(100, 100)
    assert len(reads) == 2


def test_missing_checkpoint_is_a_notification(open_session: Callable[..., Session]) -> None:
    """A local checkpoint that does not exist is reported from the worker, not raised."""
    session = open_session("cells_2d")
    widget = session.widget
    widget._checkpoint_edit.setText("/nonexistent/sam2.1_hiera_tiny.pt")
    widget._model_combo.setCurrentText(LOCAL_CHECKPOINT)
    assert not widget._checkpoint_edit.isHidden()
    start = len(notification_manager.records)
    on_frame(session, 0)
    session.click(128, 128)
    errors = errors_after(start)
    assert any("Could not load the SAM 2 model" in m and "not found" in m for m in errors)
    assert not session.labels.data.any()
