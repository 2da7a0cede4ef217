"""Run state shared through evented models: the widgets' Stop follows every run, not the combo.

Each run is held at a frame by a gate (a wrapped propagation body, a gated mask source), so the
test acts while it is certainly still running, and knows which frames it finished.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import pytest

from napari_sam2.run_state import RunState
from napari_sam2.segment import propagation_job
from napari_sam2.segment.state import SegmentState
from napari_sam2.tracking.napari.widget import TrackWidget
from sam2.synthetic_tracking import make_tracking_timelapse
from tests.plugin.session import WAIT_MS, Session, on_frame
from tests.tracking.ground_truth import GatedMaskSource

HOLD = 2  # frames a held run finishes before it waits for the gate


def _choose(combo: Any, name: str) -> None:
    """What the user does: pick a layer in a LayerCombo (emits currentIndexChanged)."""
    index = combo.findText(name)
    assert index >= 0, f"{name!r} is not in the combo"
    combo.setCurrentIndex(index)


def test_status_fires_on_every_assignment_flags_only_on_change() -> None:
    """A repeated status sentence is shown again (another image may have written the line in
    between); running and embedding fire only when they change."""
    state = SegmentState()
    seen: list[tuple[str, Any]] = []

    def record(name: str) -> Callable[[Any], None]:
        return lambda value: seen.append((name, value))

    for name in ("status", "running", "embedding"):
        getattr(state.events, name).connect(record(name))
    state.status = "embedded t=3"
    state.status = "embedded t=3"
    state.running = True
    state.running = True
    state.embedding = True
    state.embedding = False
    assert seen == [
        ("status", "embedded t=3"),
        ("status", "embedded t=3"),
        ("running", True),
        ("embedding", True),
        ("embedding", False),
    ]
    assert isinstance(state, RunState) and list(RunState().events) == ["running", "status"]


@pytest.mark.gui
def test_stop_stays_enabled_while_another_image_is_chosen(
    open_session: Callable[..., Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Propagating image A, the user picks image B and clicks on it (an embedding of B starts
    and ends): Stop stays enabled and Propagate is B's to press; Stop then ends A's run after
    the frame in flight, with the frames it finished kept."""
    gate = threading.Event()
    run_propagation = propagation_job.run_propagation

    def held(*args: Any) -> Generator[Any, None, None]:
        for done, item in enumerate(run_propagation(*args)):
            if done == HOLD:
                gate.wait(timeout=30)
            yield item

    monkeypatch.setattr(propagation_job, "run_propagation", held)
    session = open_session()
    widget, controller_a = session.widget, session.controller
    session.viewer.open_sample("napari-sam2", "nuclei_zstack")
    assert widget._image_combo.layer is controller_a.image_layer  # the combo kept image A
    on_frame(session, 0)
    session.click(0, 128, 128)
    run = controller_a.propagate()
    assert run is not None
    try:
        session.qtbot.waitUntil(lambda: run.frames_done == HOLD, timeout=2 * WAIT_MS)
        assert widget._stop_button.isEnabled() and not widget._propagate_button.isEnabled()
        _choose(widget._image_combo, "nuclei z-stack")
        assert session.controller is not controller_a
        assert widget._stop_button.isEnabled()
        assert widget._propagate_button.isEnabled()  # B is not propagating
        widget._on_add_points()  # B's slice is embedded meanwhile
        assert session.controller.busy
        session.wait()
        assert run.running and controller_a.propagating
        assert widget._stop_button.isEnabled(), "Stop greyed out when image B was chosen"
        widget._stop_button.click()
    finally:
        gate.set()
    session.qtbot.waitUntil(lambda: not controller_a.propagating, timeout=2 * WAIT_MS)
    assert run.stopped and run.error is None and run.frames_done == HOLD + 1
    labels = controller_a.labels_layer
    assert labels is not None and labels.data[0].any()
    written = [t for t in range(labels.data.shape[0]) if labels.data[t].any()]
    assert max(written) < run.frames_done  # only frames that were done, and they stay
    assert not widget._stop_button.isEnabled()
    assert f"stopped after {HOLD + 1} frame(s)" in widget._status_label.text()
    _choose(widget._image_combo, controller_a.image_layer.name)
    assert widget._propagate_button.isEnabled()


@pytest.mark.gui
def test_tracking_stop_stays_enabled_while_another_image_is_chosen(
    make_napari_viewer: Callable[..., Any], qtbot: Any
) -> None:
    """Tracking "cells", the user picks another image in the widget: Stop stays enabled and
    ends the run; the frames done stay in the output layer."""
    data = make_tracking_timelapse(
        n_frames=8, shape=(128, 128), n_cells=3, n_divisions=1, n_entering=0, n_leaving=0, seed=3
    )
    viewer = make_napari_viewer()
    viewer.add_image(data.image, name="cells")
    seeds = viewer.add_labels(data.labels[0].astype(np.uint16), name="seeds")
    viewer.add_image(data.image[::-1].copy(), name="other")
    viewer.dims.set_current_step(0, 0)
    _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2 cell tracking")
    assert isinstance(widget, TrackWidget)
    _choose(widget._image_combo, "cells")
    widget._seeds_combo.set_layer(seeds)
    source = GatedMaskSource(data, hold=HOLD)
    widget.controller.mask_source_factory = lambda inputs: source
    widget._on_track()
    run = widget.controller.run
    assert run is not None
    try:
        qtbot.waitUntil(lambda: run.frames_done == HOLD, timeout=WAIT_MS)
        _choose(widget._image_combo, "other")
        assert widget._stop_button.isEnabled() and not widget._track_button.isEnabled()
        widget._stop_button.click()
    finally:
        source.gate.set()
    qtbot.waitUntil(lambda: not widget.controller.running, timeout=WAIT_MS)
    assert run.result is not None and run.result.stopped and run.result.last_frame == HOLD
    labels = widget.controller.labels_layer
    assert labels is not None and labels in viewer.layers
    assert all(labels.data[t].any() for t in range(HOLD + 1)) and not labels.data[HOLD + 1 :].any()
    assert not widget._stop_button.isEnabled() and widget._track_button.isEnabled()
