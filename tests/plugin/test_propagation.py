"""Propagation from the widget: SAM 2's video predictor through a stack, written into Labels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from napari.utils.notifications import notification_manager

from napari_sam2.segment.propagation_job import PropagationRun
from tests.plugin.session import WAIT_MS, Session, errors_after, on_frame

pytestmark = pytest.mark.gui


def _propagate(session: Session, direction: str = "forward", **kwargs: Any) -> PropagationRun:
    run = session.controller.propagate(direction, **kwargs)  # type: ignore[arg-type]
    assert run is not None, "propagation did not start"
    return run


def _wait_done(session: Session) -> None:
    session.qtbot.waitUntil(lambda: not session.controller.propagating, timeout=4 * WAIT_MS)


def _reference_masks(
    predictor: Any,
    frames: np.ndarray,
    limits: tuple[float, float],
    prompts: dict,
    start: int,
    last: int | None = None,
) -> dict[int, dict[int, np.ndarray]]:
    """Object masks per frame from SAM2VideoPredictor called directly, as the plugin should.

    ``prompts`` maps (frame, object) to (xy, labels), to ("box", box) or to ("mask", mask).
    """
    from sam2.sam2_video_predictor import SAM2VideoPredictor
    from sam2.video.options import TrackingOptions

    # The video builder's post-processing (holes filled, click masks binarised into memory),
    # corrections kept as conditioning frames.
    options = TrackingOptions.postprocessed(add_all_frames_to_correct_as_cond=True)
    video = SAM2VideoPredictor(predictor.model, options)
    state = video.init_state(frames, contrast_limits=limits)
    for (frame, obj), (a, b) in prompts.items():
        if isinstance(a, str) and a == "box":
            video.add_new_points_or_box(state, frame, obj, box=b)
        elif isinstance(a, str):
            video.add_new_mask(state, frame, obj, b)
        else:
            video.add_new_points_or_box(state, frame, obj, points=a, labels=b)
    out = {}
    span = None if last is None else last - start
    for frame, ids, logits in video.propagate_in_video(
        state, start_frame_idx=start, max_frame_num_to_track=span
    ):
        out[frame] = {int(i): (logits[k, 0] > 0).numpy() for k, i in enumerate(ids)}
    return out


def test_forward_propagation_writes_what_the_video_predictor_gives(
    open_session: Callable[..., Session], fast_predictor: Any
) -> None:
    """Two objects clicked on frame 3, propagated forward: frames 4..23 hold exactly the video
    predictor's masks, frames 0..2 stay empty, and the whole run is one undo step. (Frame 3
    already holds the live clicks' masks, which the run may only extend into empty pixels.)"""
    session = open_session()
    on_frame(session, 3)
    session.click(3, 128, 128)
    session.widget._on_new_object()
    session.click(3, 60, 190)
    before = session.labels.data.copy()
    run = _propagate(session)
    assert session.widget._stop_button.isEnabled()
    _wait_done(session)
    assert run.error is None and run.frames_done == 21
    assert not session.widget._stop_button.isEnabled()
    labels = session.labels.data
    assert not labels[:3].any()
    image = session.controller.image_layer
    limits = tuple(float(v) for v in image.contrast_limits)
    prompts = {
        (3, 1): (np.array([[128.0, 128.0]], np.float32), np.array([1], np.int32)),
        (3, 2): (np.array([[190.0, 60.0]], np.float32), np.array([1], np.int32)),
    }
    expected = _reference_masks(fast_predictor, image.data, limits, prompts, start=3)
    assert sorted(expected) == list(range(3, 24))
    for frame, masks in expected.items():
        if frame == 3:
            assert set(np.unique(labels[3])) <= {0, 1, 2}
            continue
        want = np.zeros((256, 256), np.uint32)
        want[masks[1]] = 1
        want[masks[2] & ~masks[1]] = 2  # object 1 was written first: 2 never overwrites it
        np.testing.assert_array_equal(labels[frame], want, err_msg=f"frame {frame}")
    assert "propagation done: 21 frame(s)" in session.widget._status_label.text()
    session.labels.undo()
    np.testing.assert_array_equal(session.labels.data, before)


def test_backward_and_range(open_session: Callable[..., Session]) -> None:
    """Backward from frame 10 within frames 6..15 touches frames 6..10 only; 'both' within
    the range covers 6..15 and counts the start frame once per pass."""
    session = open_session()
    on_frame(session, 10)
    session.click(10, 128, 128)
    run = _propagate(session, "backward", frame_range=(6, 15))
    _wait_done(session)
    assert run.frames_done == 5 and run.plan.total == 5
    touched = {t for t in range(24) if session.labels.data[t].any()}
    assert touched <= set(range(6, 11)) and 10 in touched
    assert (session.labels.data[10] == 1).any()  # the prompted frame is rewritten, not lost
    run = _propagate(session, "both", frame_range=(6, 15))
    _wait_done(session)
    assert run.frames_done == run.plan.total == 6 + 5
    assert not session.labels.data[:6].any() and not session.labels.data[16:].any()


def test_a_box_segments_live_and_propagates(
    open_session: Callable[..., Session], fast_predictor: Any
) -> None:
    """Add box + a rectangle on frame 2 segments object 1 there at once; propagating frames
    2..6 gives the video predictor's masks for that box."""
    session = open_session()
    session.viewer.dims.set_current_step(0, 2)
    session.widget._on_add_box()
    shapes = session.controller.shapes_layer
    assert shapes is not None and shapes.mode == "add_rectangle"
    assert session.viewer.layers.selection.active is shapes
    session.wait()
    corners = np.array([[2, 100, 90], [2, 100, 170], [2, 160, 170], [2, 160, 90]], dtype=float)
    shapes.add_rectangles(corners)
    session.wait()
    assert session.labels.data[2].any()
    assert not np.delete(session.labels.data, 2, axis=0).any()
    run = _propagate(session, frame_range=(2, 6))
    _wait_done(session)
    assert run.error is None and run.frames_done == 5
    image = session.controller.image_layer
    limits = tuple(float(v) for v in image.contrast_limits)
    box = np.array([90, 100, 170, 160], np.float32)
    expected = _reference_masks(
        fast_predictor, image.data, limits, {(2, 1): ("box", box)}, start=2, last=6
    )
    for frame in range(3, 7):
        np.testing.assert_array_equal(session.labels.data[frame] == 1, expected[frame][1])
    assert not session.labels.data[7:].any()


def test_objects_of_a_labels_layer_are_mask_prompts(
    open_session: Callable[..., Session], fast_predictor: Any
) -> None:
    """Objects 7 and 9 of a user's Labels layer on frame 4 are tracked with their own ids into
    a new output layer; the user's layer is not changed."""
    session = open_session()
    yy, xx = np.mgrid[:256, :256]
    seeds = np.zeros((24, 256, 256), np.uint16)
    seeds[4][(yy - 80) ** 2 + (xx - 80) ** 2 < 400] = 7
    seeds[4][(yy - 170) ** 2 + (xx - 160) ** 2 < 600] = 9
    user = session.viewer.add_labels(seeds.copy(), name="cellpose")
    session.widget._masks_combo.set_layer(user)
    session.viewer.dims.set_current_step(0, 4)
    run = _propagate(session, frame_range=(4, 8), mask_layer=user)
    _wait_done(session)
    assert run.error is None and run.frames_done == 5
    output = session.labels
    assert output is not user
    np.testing.assert_array_equal(user.data, seeds)
    image = session.controller.image_layer
    limits = tuple(float(v) for v in image.contrast_limits)
    prompts = {(4, 7): ("mask", seeds[4] == 7), (4, 9): ("mask", seeds[4] == 9)}
    expected = _reference_masks(fast_predictor, image.data, limits, prompts, start=4, last=8)
    for frame in range(4, 9):
        want = np.zeros((256, 256), np.uint32)
        want[expected[frame][7]] = 7
        want[expected[frame][9] & ~expected[frame][7]] = 9
        np.testing.assert_array_equal(output.data[frame], want, err_msg=f"frame {frame}")
    assert set(np.unique(output.data)) <= {0, 7, 9}


def test_mask_prompts_into_a_layer_holding_their_ids_are_refused(
    open_session: Callable[..., Session],
) -> None:
    """Cellpose ids are per frame: tracking cell 7 of frame 4 into that same layer would
    erase frame 6's (other) cell 7, so the run does not start and nothing changes."""
    session = open_session()
    seeds = np.zeros((24, 256, 256), np.uint16)
    seeds[4, 60:100, 60:100] = 7
    seeds[6, 200:230, 10:40] = 7  # another cell, with the same per-frame id
    user = session.viewer.add_labels(seeds.copy(), name="cellpose")
    session.widget._labels_combo.set_layer(user)
    session.widget._on_labels_changed()
    session.viewer.dims.set_current_step(0, 4)
    start = len(notification_manager.records)
    assert session.controller.propagate(frame_range=(4, 8), mask_layer=user) is None
    errors = errors_after(start)
    assert any("'cellpose' already holds object id(s) 7 for pixels" in m for m in errors)
    np.testing.assert_array_equal(user.data, seeds)


def test_mask_layer_of_another_shape_is_refused(open_session: Callable[..., Session]) -> None:
    session = open_session()
    wrong = session.viewer.add_labels(np.zeros((24, 128, 128), np.uint8), name="small")
    start = len(notification_manager.records)
    session.viewer.dims.set_current_step(0, 0)
    assert session.controller.propagate(mask_layer=wrong) is None
    assert any("'small' has shape (24, 128, 128)" in m for m in errors_after(start))


def test_stop_keeps_the_frames_done(open_session: Callable[..., Session]) -> None:
    """Stop after two frames: those frames are kept, later ones never written, the widget can
    propagate again."""
    session = open_session()
    on_frame(session, 0)
    session.click(0, 128, 128)
    run = _propagate(session)
    session.qtbot.waitUntil(lambda: run.frames_done >= 2, timeout=2 * WAIT_MS)
    session.widget._on_stop()
    _wait_done(session)
    assert run.stopped and 2 <= run.frames_done < 24
    written = [t for t in range(24) if session.labels.data[t].any()]
    assert max(written) < run.frames_done  # only frames that were done
    assert "stopped after" in session.widget._status_label.text()
    assert session.widget._propagate_button.isEnabled()


def test_removing_the_output_layer_stops_and_says_so(open_session: Callable[..., Session]) -> None:
    """The output layer removed mid-run: the run stops with a notification, nothing raises."""
    session = open_session()
    on_frame(session, 0)
    session.click(0, 128, 128)
    start = len(notification_manager.records)
    run = _propagate(session)
    labels = session.labels
    session.qtbot.waitUntil(lambda: run.frames_done >= 1, timeout=2 * WAIT_MS)
    session.viewer.layers.remove(labels)
    _wait_done(session)
    assert run.stopped and run.frames_done < 24
    assert any("output Labels layer" in m and "was removed" in m for m in errors_after(start))


def test_nothing_to_propagate_is_a_notification(open_session: Callable[..., Session]) -> None:
    """No prompts, a 2D image, or a start frame outside the range: a message, no worker."""
    session = open_session()
    on_frame(session, 4)
    start = len(notification_manager.records)
    session.widget._on_propagate()
    assert any("there are no prompts yet" in m for m in errors_after(start))
    session.click(4, 128, 128)
    session.widget._range_check.setChecked(True)
    session.widget._first_spin.setValue(8)
    session.widget._on_propagate()
    assert any("current t=4 is outside the range 8..23" in m for m in errors_after(start))
    assert not session.controller.propagating

    flat = open_session("cells_2d")
    assert not flat.widget._propagate_box.isEnabled()
    start = len(notification_manager.records)
    on_frame(flat, 0)
    flat.click(128, 128)
    flat.controller.propagate()
    assert any("single 2D image" in m for m in errors_after(start))


def test_4d_stack_propagates_through_t_at_the_current_z(
    open_session: Callable[..., Session],
) -> None:
    """A TZYX stack: the video axis is T (chosen from the axis labels), z stays where it is."""
    session = open_session(None)
    rng = np.random.default_rng(0)
    data = rng.integers(0, 1000, size=(5, 3, 64, 64), dtype=np.uint16)
    session.viewer.add_image(data, name="tzyx", axis_labels=("t", "z", "y", "x"))
    session.widget._on_image_changed()
    assert session.widget._axis_combo.currentData() == 0
    assert session.widget._axis_combo.count() == 2
    session.viewer.dims.set_current_step(1, 2)
    session.viewer.dims.set_current_step(0, 1)
    session.widget._on_add_points()
    session.wait()
    session.click(1, 2, 32, 32)
    run = _propagate(session, axis=0)
    _wait_done(session)
    assert run.error is None and run.frames_done == 4
    assert [run.plan.plane(t) for t in (1, 4)] == [(1, 2), (4, 2)]
    assert not np.delete(session.labels.data, 2, axis=1).any()  # other z untouched

    # a second object on z=0; "every position" tracks z=0 and z=2 (not z=1: no prompts)
    session.widget._on_new_object()
    session.viewer.dims.set_current_step(1, 0)
    session.wait()
    session.click(1, 0, 20, 40)
    before = session.labels.data.copy()
    assert not session.widget._every_check.isHidden()
    session.widget._every_check.setChecked(True)
    session.widget._on_propagate()
    _wait_done(session)
    run = session.controller._propagation
    assert run is not None and run.error is None and run.plan.line == (1, 2)  # the last run
    assert not session.labels.data[:, 1].any()
    assert set(np.unique(session.labels.data[2:, 0])) <= {0, 2}
    session.labels.undo()  # the whole every-position run is one undo step
    np.testing.assert_array_equal(session.labels.data, before)


def test_session_saved_and_opened_in_a_new_viewer(
    open_session: Callable[..., Session], tmp_path: Any, fast_model: Any
) -> None:
    """Save session writes prompts and labels beside the data; opening it on the same sample
    in a fresh viewer brings back the points and the labels as new layers, nothing re-run."""
    session = open_session()
    on_frame(session, 3)
    session.click(3, 128, 128)
    session.widget._on_new_object()
    session.click(3, 60, 190)
    _propagate(session, frame_range=(3, 6))
    _wait_done(session)
    session.widget._on_save_session(str(tmp_path / "cells"))
    assert (tmp_path / "cells.sam2.json").is_file()
    assert "saved 2 point(s)" in session.widget._status_label.text()

    # replayed without a viewer: the same prompts give the widget's frames
    from napari_sam2.prompts import load_prompts
    from napari_sam2.replay import replay_session

    saved = load_prompts(tmp_path / "cells.sam2.json")
    assert saved.contrast_limits == tuple(session.controller.image_layer.contrast_limits)
    saved.labels = None
    done: list[int] = []
    replayed = replay_session(
        session.controller.image_layer.data,
        saved,
        lambda: fast_model,
        progress=lambda n, total: done.append(total),
    )
    assert done and done[-1] == 21 + 4  # forward 3..23, then back 3..0
    np.testing.assert_array_equal(replayed[4:7], session.labels.data[4:7])
    assert replayed[:3].any() or replayed[7:].any()  # beyond the widget's range too

    again = open_session()
    again.widget._on_open_session(str(tmp_path / "cells.sam2.json"))
    np.testing.assert_array_equal(again.labels.data, session.labels.data)
    np.testing.assert_array_equal(again.points.data, session.points.data)
    assert again.points.features["object_id"].tolist() == [1, 2]
    assert again.widget._points_combo.layer is again.points
    assert again.labels.name in again.viewer.layers
    assert "opened 2 point(s)" in again.widget._status_label.text()


def test_5d_stack_propagates_at_the_current_position(open_session: Callable[..., Session]) -> None:
    """A 5D (T, C, Z, Y, X) stack without axis labels: the first axis is the video axis and
    every other leading axis stays where the viewer is."""
    session = open_session(None)
    data = np.random.default_rng(1).integers(0, 255, size=(4, 2, 2, 48, 48), dtype=np.uint8)
    session.viewer.add_image(data, name="5d")
    session.widget._on_image_changed()
    session.viewer.dims.set_current_step(1, 1)
    session.viewer.dims.set_current_step(2, 1)
    session.viewer.dims.set_current_step(0, 0)
    session.widget._on_add_points()
    session.wait()
    session.click(0, 1, 1, 24, 24)
    run = _propagate(session)
    _wait_done(session)
    assert run.error is None and run.frames_done == 4
    written = np.argwhere(session.labels.data.any(axis=(-2, -1)))
    assert {tuple(int(i) for i in w[1:]) for w in written} <= {(1, 1)}


def test_accepted_objects_are_left_alone(open_session: Callable[..., Session]) -> None:
    """Accept keeps object 1 as it is and moves to object 2: the next propagation tracks only
    object 2; editing object 1's points makes it editable again."""
    session = open_session()
    on_frame(session, 3)
    session.click(3, 128, 128)
    _propagate(session, frame_range=(3, 6))
    _wait_done(session)
    first = session.labels.data == 1
    session.widget._on_accept()
    assert session.widget._object_spin.value() == 2
    assert session.controller.accepted == {1}
    assert "object 1 accepted" in session.widget._status_label.text()
    session.click(3, 60, 190)
    run = _propagate(session, frame_range=(3, 6))
    _wait_done(session)
    assert set(run.plan.prompts) == {2}
    np.testing.assert_array_equal(session.labels.data == 1, first)
    session.points.data = np.array([[3.0, 120.0, 120.0], [3.0, 60.0, 190.0]])  # drag object 1
    session.wait()
    assert session.controller.accepted == set()
