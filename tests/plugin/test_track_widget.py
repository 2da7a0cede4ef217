"""The "SAM 2 cell tracking" dock widget, end to end in a real viewer.

Division, stop and editing cases track with a mask source that follows the synthetic ground
truth, injected through the controller's ``mask_source_factory`` hook; one test runs the real
tiny model to prove the SAM 2 wiring, one the demo model on the sample time-lapse.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from napari.layers import Image, Labels, Tracks
from napari.utils.notifications import notification_manager

from napari_sam2.tracking import (
    Lineage,
    TrackingParams,
    read_ctc,
    sam2_mask_source,
    track_cells,
    tracks_layer_data,
)
from napari_sam2.tracking.napari.controller import TrackingController
from napari_sam2.tracking.napari.run import TrackingRun
from napari_sam2.tracking.napari.widget import TrackWidget
from sam2.sam2_video_predictor import SAM2VideoPredictor
from sam2.synthetic import SyntheticTimelapse
from sam2.synthetic_tracking import make_tracking_timelapse
from sam2.video.options import TrackingOptions
from tests.plugin.session import WAIT_MS, errors_after
from tests.tracking.ground_truth import GatedMaskSource, GroundTruthMaskSource

pytestmark = pytest.mark.gui

DIVIDING = 3  # the ground-truth cell that divides, on frame DIVISION_FRAME
DIVISION_FRAME = 4


@pytest.fixture(scope="module")
def timelapse() -> SyntheticTimelapse:
    """8 frames of 128² with 3 cells; cell 3 divides into 4 and 5 on frame 4."""
    data = make_tracking_timelapse(
        n_frames=8, shape=(128, 128), n_cells=3, n_divisions=1, n_entering=0, n_leaving=0, seed=3
    )
    assert (DIVIDING, 0, DIVISION_FRAME - 1, 0) in data.lineage
    return data


@dataclass
class Tracking:
    """A viewer with the time-lapse, its seeds and the widget added through the manifest."""

    viewer: Any
    widget: TrackWidget
    image: Image
    seeds: Labels
    qtbot: Any

    @property
    def controller(self) -> TrackingController:
        return self.widget.controller

    @property
    def labels(self) -> Labels:
        labels = self.controller.labels_layer
        assert labels is not None
        return labels

    @property
    def tracks(self) -> Tracks:
        tracks = self.controller.tracks_layer
        assert tracks is not None and tracks in self.viewer.layers
        return tracks

    def follow_ground_truth(self, data: SyntheticTimelapse, **kwargs: Any) -> None:
        self.controller.mask_source_factory = lambda inputs: GroundTruthMaskSource(data, **kwargs)

    def track(self) -> TrackingRun:
        self.widget._on_track()
        run = self.controller.run
        assert run is not None, "tracking did not start"
        return run

    def wait(self) -> None:
        self.qtbot.waitUntil(lambda: not self.controller.running, timeout=2 * WAIT_MS)


@pytest.fixture
def open_tracking(
    make_napari_viewer: Callable[..., Any], qtbot: Any, fast_model: Any
) -> Iterator[Callable[..., Tracking]]:
    """Open the time-lapse with seed labels (the first frame's cells by default)."""
    opened: list[Tracking] = []

    def factory(
        data: SyntheticTimelapse, seeds: np.ndarray | None = None, image: Any = None
    ) -> Tracking:
        viewer = make_napari_viewer()
        image_layer = viewer.add_image(data.image if image is None else image, name="cells")
        seed_data = data.labels[0].astype(np.uint16) if seeds is None else seeds
        seed_layer = viewer.add_labels(seed_data, name="seeds")
        viewer.dims.set_current_step(0, 0)  # napari opens stacks on their middle frame
        _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2 cell tracking")
        assert isinstance(widget, TrackWidget)
        widget.set_model_factory(lambda: fast_model)
        opened.append(Tracking(viewer, widget, image_layer, seed_layer, qtbot))
        return opened[-1]

    yield factory
    for tracking in opened:  # never leave a worker running into the viewer's teardown
        tracking.controller.stop()
        tracking.wait()


def _assert_tracks_match(tracking: Tracking) -> None:
    """The Tracks layer and the labels' metadata show exactly the controller's lineage."""
    lineage = tracking.controller.lineage
    assert lineage is not None
    expected = tracks_layer_data(tracking.labels.data, lineage)
    np.testing.assert_allclose(tracking.tracks.data, expected.data)
    assert tracking.tracks.graph == expected.graph
    assert tracking.labels.metadata["lineage"] == lineage.to_dict()


def _list_texts(widget: TrackWidget) -> list[str]:
    items = widget._divisions_list
    return [items.item(i).text() for i in range(items.count())]


def test_manifest_widget_shows_the_stack(
    open_tracking: Callable[..., Tracking], timelapse: SyntheticTimelapse
) -> None:
    """The manifest adds the widget, which reads the time-lapse and picks the seed layer."""
    tracking = open_tracking(timelapse)
    widget = tracking.widget
    assert widget._image_label.text() == "8 frames of 128×128 pixels"
    assert widget._seeds_combo.layer is tracking.seeds
    assert widget._seed_frame_spin.text() == "current frame"
    assert not widget._stop_button.isEnabled() and not widget._export_ctc_button.isEnabled()


def test_real_model_tracks_like_the_headless_engine(
    open_tracking: Callable[..., Tracking], timelapse: SyntheticTimelapse, fast_predictor: Any
) -> None:
    """With the tiny random SAM 2, seeds on the current frame (5) are followed to the end into
    a new Labels layer holding exactly what the headless engine (the CLI's code path) gives;
    earlier frames stay empty and the seed layer is untouched."""
    seeds = timelapse.labels.astype(np.uint16)  # a (T, Y, X) seed layer: frame 5 is used
    tracking = open_tracking(timelapse, seeds)
    tracking.viewer.dims.set_current_step(0, 5)
    tracking.widget._entries_combo.setCurrentText("off")
    run = tracking.track()
    assert (
        tracking.widget._stop_button.isEnabled() and not tracking.widget._track_button.isEnabled()
    )
    tracking.wait()
    assert run.error is None and run.frames_done == 3
    labels = tracking.labels
    assert labels is not tracking.seeds and labels.name == "cells tracked"
    np.testing.assert_array_equal(tracking.seeds.data, seeds)
    assert not labels.data[:5].any()
    np.testing.assert_array_equal(labels.data[5], seeds[5])

    # The widget's model as a video predictor with the video builder's post-processing.
    expected = _headless(
        tracking, timelapse, seeds, run, fast_predictor, TrackingOptions.postprocessed()
    )
    np.testing.assert_array_equal(labels.data[5:], expected.labels[5:])
    assert run.result is not None and not run.result.stopped
    assert run.result.lineage.to_dict() == expected.lineage.to_dict()
    _assert_tracks_match(tracking)
    assert tracking.widget._export_ctc_button.isEnabled()


def test_fast_tracking_checkbox_tracks_like_the_headless_fast_engine(
    open_tracking: Callable[..., Tracking], timelapse: SyntheticTimelapse, fast_predictor: Any
) -> None:
    """*Fast* ticked: the run tracks in windows, exactly as the headless engine with
    ``TrackingOptions.window`` does (``napari-sam2 track --fast``)."""
    from sam2.video.options import WindowOptions

    seeds = timelapse.labels.astype(np.uint16)
    tracking = open_tracking(timelapse, seeds)
    tracking.viewer.dims.set_current_step(0, 5)
    tracking.widget._entries_combo.setCurrentText("off")
    tracking.widget._fast_check.setChecked(True)
    run = tracking.track()
    tracking.wait()
    assert run.error is None and run.inputs.fast
    options = TrackingOptions.postprocessed(window=WindowOptions())
    expected = _headless(tracking, timelapse, seeds, run, fast_predictor, options)
    np.testing.assert_array_equal(tracking.labels.data[5:], expected.labels[5:])


def _headless(
    tracking: Tracking,
    timelapse: SyntheticTimelapse,
    seeds: np.ndarray,
    run: Any,
    predictor: Any,
    options: TrackingOptions,
) -> Any:
    """What the headless engine (the CLI's code path) gives from frame 5 with ``options``."""
    video = SAM2VideoPredictor(predictor.model, options)
    source = sam2_mask_source(
        video,
        timelapse.image,
        entries="none",
        contrast_limits=tuple(tracking.image.contrast_limits),
    )
    try:
        return track_cells(timelapse.image, seeds, 5, source, run.inputs.params)
    finally:
        source.close()


def test_division_reaches_the_tracks_graph_and_the_list(
    open_tracking: Callable[..., Tracking], timelapse: SyntheticTimelapse
) -> None:
    """Every frame is written as soon as it is tracked; the ground-truth division shows up as
    a Tracks graph link from both daughters to the mother and as a row of the divisions list."""
    tracking = open_tracking(timelapse)
    tracking.follow_ground_truth(timelapse)
    live: list[tuple[int, bool, bool]] = []  # frame, written, later frames still empty
    tracking.controller.frame_written.connect(
        lambda t: live.append(
            (t, tracking.labels.data[t].any(), not tracking.labels.data[t + 1 :].any())
        )
    )
    tracking.track()
    tracking.wait()
    assert [t for t, *_ in live] == list(range(8)) and all(a and b for _, a, b in live)
    labels = tracking.labels.data
    np.testing.assert_array_equal(labels[0], timelapse.labels[0])
    lineage = tracking.controller.lineage
    assert lineage is not None and list(lineage.divisions) == [DIVIDING]
    division = lineage.divisions[DIVIDING]
    assert division.frame == DIVISION_FRAME and len(division.daughters) == 2
    assert all(lineage[d].start == DIVISION_FRAME for d in division.daughters)
    _assert_tracks_match(tracking)
    assert tracking.tracks.graph == {d: [DIVIDING] for d in division.daughters}
    d1, d2 = division.daughters
    assert _list_texts(tracking.widget) == [f"t=4: {DIVIDING} → {d1}, {d2} (split)"]


def test_confirm_and_undo_a_division(
    open_tracking: Callable[..., Tracking], timelapse: SyntheticTimelapse
) -> None:
    """Confirm marks the row; Undo merges the daughters back into the mother in the labels, the
    lineage, the layer metadata and the Tracks graph."""
    tracking = open_tracking(timelapse)
    tracking.follow_ground_truth(timelapse)
    tracking.track()
    tracking.wait()
    widget = tracking.widget
    widget._divisions_list.setCurrentRow(0)
    assert tracking.viewer.dims.current_step[0] == DIVISION_FRAME  # went to the division
    widget._confirm_button.click()
    assert _list_texts(widget)[0].endswith("✓")
    lineage = tracking.controller.lineage
    assert lineage is not None and lineage.divisions[DIVIDING].confirmed
    daughters = lineage.divisions[DIVIDING].daughters
    before = tracking.labels.data.copy()
    widget._undo_button.click()
    after = tracking.labels.data
    assert not lineage.divisions and _list_texts(widget) == []
    assert not np.isin(after, daughters).any()
    np.testing.assert_array_equal(
        after == DIVIDING, (before == DIVIDING) | np.isin(before, daughters)
    )
    assert lineage[DIVIDING].end == 7
    _assert_tracks_match(tracking)
    assert tracking.tracks.graph == {}


def test_add_a_division_by_hand(
    open_tracking: Callable[..., Tracking], timelapse: SyntheticTimelapse
) -> None:
    """When the tracker took a daughter for a new cell, "Add here" on the division frame links
    mother and sister as a manual, confirmed division."""
    tracking = open_tracking(timelapse)
    tracking.follow_ground_truth(timelapse, division="first_daughter")
    params = TrackingParams(entry_every=1, min_new_area=20, division_area_drop=0.01)
    run = tracking.controller.track(tracking.image, tracking.seeds, 0, params)
    assert run is not None
    tracking.wait()
    lineage = tracking.controller.lineage
    assert lineage is not None and not lineage.divisions
    newcomer = next(t.track_id for t in lineage if t.start == DIVISION_FRAME)
    tracking.viewer.dims.set_current_step(0, DIVISION_FRAME)
    tracking.widget._mother_spin.setValue(DIVIDING)
    tracking.widget._sister_spin.setValue(newcomer)
    tracking.widget._add_division_button.click()
    division = lineage.divisions[DIVIDING]
    assert division.frame == DIVISION_FRAME and division.rule == "manual" and division.confirmed
    assert newcomer in division.daughters
    assert not (tracking.labels.data[DIVISION_FRAME:] == DIVIDING).any()
    _assert_tracks_match(tracking)
    assert set(tracking.tracks.graph) == set(division.daughters)


def test_stop_keeps_finished_frames_and_their_lineage(
    open_tracking: Callable[..., Tracking], timelapse: SyntheticTimelapse
) -> None:
    """Stop during frame 3: frames 0-3 stay, later frames stay empty, every track is closed
    within them, and the lineage and Tracks layer still come out."""
    tracking = open_tracking(timelapse)
    source = GatedMaskSource(timelapse, hold=3)
    tracking.controller.mask_source_factory = lambda inputs: source
    run = tracking.track()
    tracking.qtbot.waitUntil(lambda: run.frames_done == 3, timeout=WAIT_MS)
    tracking.widget._stop_button.click()
    source.gate.set()
    tracking.wait()
    assert run.result is not None and run.result.stopped and run.result.last_frame == 3
    labels = tracking.labels.data
    assert all(labels[t].any() for t in range(4)) and not labels[4:].any()
    lineage = tracking.controller.lineage
    assert lineage is not None and len(lineage) == 3
    assert all(not t.active and t.end == 3 for t in lineage)
    _assert_tracks_match(tracking)
    assert tracking.tracks.data[:, 1].max() == 3
    assert "stopped after 4 frame(s)" in tracking.widget._status_label.text()
    assert tracking.widget._track_button.isEnabled()


def test_stop_closes_the_source_once_the_worker_is_done(
    open_tracking: Callable[..., Tracking], timelapse: SyntheticTimelapse
) -> None:
    """Stop quits the worker between frames; the run then closes its mask source (SAM 2's
    frame prefetch) at once, not whenever the suspended worker body is collected."""
    tracking = open_tracking(timelapse)
    source = GatedMaskSource(timelapse, hold=3)
    tracking.controller.mask_source_factory = lambda inputs: source
    run = tracking.track()
    tracking.qtbot.waitUntil(lambda: run.frames_done == 3, timeout=WAIT_MS)
    tracking.widget._stop_button.click()
    assert source.closed == 0
    source.gate.set()
    tracking.wait()
    assert run.result is not None and run.result.stopped and source.closed == 1


def test_tracks_and_divisions_follow_the_run_frame_by_frame(
    open_tracking: Callable[..., Tracking], timelapse: SyntheticTimelapse
) -> None:
    """Each written frame grows the Tracks layer up to that frame; from the division's frame on
    the divisions list shows it, and the Tracks graph and the layer's metadata link the
    daughters to the mother, all from the frames' lineage events while the run goes."""
    tracking = open_tracking(timelapse)
    tracking.follow_ground_truth(timelapse)
    seen: list[tuple[int, int, int, dict[int, list[int]], dict[int, int]]] = []

    def on_frame(t: int) -> None:
        tracks = tracking.tracks
        parents = Lineage.from_dict(tracking.labels.metadata["lineage"]).parents()
        count = tracking.widget._divisions_list.count()
        seen.append((t, int(tracks.data[:, 1].max()), count, dict(tracks.graph), parents))

    tracking.controller.frame_written.connect(on_frame)
    tracking.track()
    tracking.wait()
    assert [(t, last) for t, last, *_ in seen] == [(t, t) for t in range(8)]
    assert [n for _, _, n, *_ in seen] == [0] * DIVISION_FRAME + [1] * (8 - DIVISION_FRAME)
    lineage = tracking.controller.lineage
    assert lineage is not None
    daughters = lineage.divisions[DIVIDING].daughters
    for t, _, _, graph, parents in seen:
        expected = {d: DIVIDING for d in daughters} if t >= DIVISION_FRAME else {}
        assert parents == expected
        assert graph == {child: [parent] for child, parent in expected.items()}


def test_removing_the_output_layer_stops_the_run(
    open_tracking: Callable[..., Tracking], timelapse: SyntheticTimelapse
) -> None:
    """The output Labels removed mid-run: one notification names it (the shared job
    lifecycle's sentence), the run stops and its Tracks layer goes too."""
    tracking = open_tracking(timelapse)
    source = GatedMaskSource(timelapse, hold=3)
    tracking.controller.mask_source_factory = lambda inputs: source
    run = tracking.track()
    tracking.qtbot.waitUntil(lambda: run.frames_done == 3, timeout=WAIT_MS)
    assert tracking.controller.tracks_layer is not None
    start = len(notification_manager.records)
    tracking.viewer.layers.remove(tracking.labels)
    source.gate.set()
    tracking.wait()
    errors = errors_after(start)
    assert errors == [
        "tracking stopped: the output Labels layer 'cells tracked' was removed; "
        "3 frame(s) were done"
    ], errors
    assert tracking.controller.labels_layer is None and tracking.controller.tracks_layer is None
    assert [layer.name for layer in tracking.viewer.layers] == ["cells", "seeds"]
    assert source.closed == 1


def test_a_tracks_layer_removed_mid_run_comes_back_at_the_end(
    open_tracking: Callable[..., Tracking], timelapse: SyntheticTimelapse
) -> None:
    """The user removes the growing Tracks layer: later frames do not add it back (the run
    never fights the user), and the finished run shows it again, whole."""
    tracking = open_tracking(timelapse)
    source = GatedMaskSource(timelapse, hold=3)
    tracking.controller.mask_source_factory = lambda inputs: source
    later: list[bool] = []
    tracking.controller.frame_written.connect(
        lambda t: later.append(tracking.controller.tracks_layer is None) if t >= 3 else None
    )
    run = tracking.track()
    tracking.qtbot.waitUntil(lambda: run.frames_done == 3, timeout=WAIT_MS)
    tracking.viewer.layers.remove(tracking.tracks)
    source.gate.set()
    tracking.wait()
    assert later == [True] * 5
    _assert_tracks_match(tracking)
    assert tracking.tracks.data[:, 1].max() == 7


class _FailingSource(GroundTruthMaskSource):
    """Ground truth until frame ``fail``, where it raises like a model out of memory."""

    def __init__(self, data: SyntheticTimelapse, fail: int) -> None:
        super().__init__(data)
        self.fail = fail

    def track(self, frame_idx: int) -> dict[int, np.ndarray]:
        if frame_idx == self.fail:
            raise RuntimeError("not enough memory")
        return super().track(frame_idx)


def test_failure_mid_run_keeps_finished_frames(
    open_tracking: Callable[..., Tracking], timelapse: SyntheticTimelapse
) -> None:
    """An error on frame 5 is one notification naming the frame; frames 0-4, their lineage and
    Tracks layer stay."""
    tracking = open_tracking(timelapse)
    tracking.controller.mask_source_factory = lambda inputs: _FailingSource(timelapse, 5)
    start = len(notification_manager.records)
    run = tracking.track()
    tracking.wait()
    errors = errors_after(start)
    assert len(errors) == 1 and "frame 5: not enough memory" in errors[0], errors
    assert run.result is not None and run.result.stopped and run.result.last_frame == 4
    assert all(tracking.labels.data[t].any() for t in range(5))
    assert not tracking.labels.data[5:].any()
    _assert_tracks_match(tracking)


def test_model_that_does_not_load_is_a_notification(
    open_tracking: Callable[..., Tracking], timelapse: SyntheticTimelapse
) -> None:
    """A model that fails to load gives one notification; no empty output layer is left."""
    tracking = open_tracking(timelapse)

    def broken() -> Any:
        raise OSError("checkpoint sam2.1_hiera_tiny.pt not found")

    tracking.widget.set_model_factory(broken)
    layers = list(tracking.viewer.layers)
    start = len(notification_manager.records)
    tracking.track()
    tracking.wait()
    errors = errors_after(start)
    assert errors == [
        "Could not start SAM 2 tracking: OSError: checkpoint sam2.1_hiera_tiny.pt not found"
    ]
    assert list(tracking.viewer.layers) == layers
    assert tracking.controller.labels_layer is None and tracking.widget._track_button.isEnabled()


def test_exports_ctc_folder_and_measurements(
    open_tracking: Callable[..., Tracking], timelapse: SyntheticTimelapse, tmp_path: Path
) -> None:
    """Export CTC writes masks and res_track.txt with the division's parent links; the CSV has
    one row per cell and frame, with the parent column."""
    tracking = open_tracking(timelapse)
    tracking.follow_ground_truth(timelapse)
    tracking.track()
    tracking.wait()
    tracking.widget._on_export_ctc(str(tmp_path / "ctc"))
    ctc = read_ctc(tmp_path / "ctc")
    np.testing.assert_array_equal(ctc.labels, tracking.labels.data)
    lineage = tracking.controller.lineage
    assert lineage is not None
    assert {t.label: t.parent for t in ctc.tracks} == {t.track_id: t.parent for t in lineage}
    tracking.widget._on_measurements(str(tmp_path / "cells.csv"))
    with open(tmp_path / "cells.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == sum(len(np.unique(f)) - 1 for f in tracking.labels.data)
    daughters = set(lineage.divisions[DIVIDING].daughters)
    assert {int(r["track_id"]) for r in rows if r["parent"] == str(DIVIDING)} == daughters


def test_exports_the_lineage_as_geff_and_asks_before_replacing_it(
    open_tracking: Callable[..., Tracking],
    timelapse: SyntheticTimelapse,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Export GEFF writes a graph geff's own reader accepts, with the division's two edges;
    exporting again asks, and replaces the store only after a Yes."""
    import geff
    from qtpy.QtWidgets import QMessageBox

    tracking = open_tracking(timelapse)
    tracking.follow_ground_truth(timelapse)
    tracking.track()
    tracking.wait()
    path = tmp_path / "lineage.geff"
    tracking.widget._on_export_geff(str(path))
    graph, _ = geff.read(str(path))
    lineage = tracking.controller.lineage
    assert lineage is not None
    frames = tracking.labels.data
    assert graph.number_of_nodes() == sum(len(np.unique(f)) - 1 for f in frames)
    track_of = {node: graph.nodes[node]["track_id"] for node in graph.nodes}
    links = {(track_of[a], track_of[b]) for a, b in graph.edges if track_of[a] != track_of[b]}
    assert links == {(DIVIDING, d) for d in lineage.divisions[DIVIDING].daughters}
    answers = [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]
    monkeypatch.setattr(QMessageBox, "question", lambda *_: answers.pop(0))
    before = path.stat().st_mtime_ns
    tracking.widget._on_export_geff(str(path))  # No: left alone
    assert path.stat().st_mtime_ns == before and len(answers) == 1
    tracking.widget._on_export_geff(str(path))  # Yes: replaced
    assert not answers and geff.read(str(path))[0].number_of_nodes() == graph.number_of_nodes()


def test_ctc_export_never_replaces_masks_it_did_not_write(
    open_tracking: Callable[..., Tracking],
    timelapse: SyntheticTimelapse,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Exporting into a folder of Cellpose masks is an error notification (no Replace
    question, the masks stay); our own earlier export is replaced after a Yes."""
    import tifffile
    from qtpy.QtWidgets import QMessageBox

    tracking = open_tracking(timelapse)
    tracking.follow_ground_truth(timelapse)
    tracking.track()
    tracking.wait()
    questions: list[str] = []

    def answer_yes(_parent: Any, _title: str, text: str) -> QMessageBox.StandardButton:
        questions.append(text)
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", answer_yes)
    cellpose = tmp_path / "cellpose"
    cellpose.mkdir()
    tifffile.imwrite(cellpose / "mask000.tif", np.ones((128, 128), np.uint16))
    before = (cellpose / "mask000.tif").read_bytes()
    start = len(notification_manager.records)
    tracking.widget._on_export_ctc(str(cellpose))
    assert [m for m in errors_after(start) if "no napari-sam2 CTC export wrote" in m]
    assert questions == [] and [p.name for p in cellpose.iterdir()] == ["mask000.tif"]
    assert (cellpose / "mask000.tif").read_bytes() == before
    ours = tmp_path / "ours"
    tracking.widget._on_export_ctc(str(ours))
    tracking.widget._on_export_ctc(str(ours))  # again: asks, and replaces after Yes
    assert len(questions) == 1 and "exported by napari-sam2" in questions[0]
    np.testing.assert_array_equal(read_ctc(ours).labels, tracking.labels.data)


def _no_image(tracking: Tracking) -> None:
    """Open a time-lapse first"""
    tracking.viewer.layers.remove(tracking.image)


def _zyx_stack(tracking: Tracking) -> None:
    """Cell tracking is 2D+t for now"""
    tracking.viewer.layers.remove(tracking.image)
    tracking.viewer.add_image(np.zeros((8, 2, 128, 128), np.uint16), name="4d")


def _seeds_of_another_shape(tracking: Tracking) -> None:
    """fit neither a frame (128, 128) nor the stack (8, 128, 128)"""
    tracking.viewer.layers.remove(tracking.seeds)
    tracking.viewer.add_labels(np.ones((64, 64), np.uint16), name="small")


def _empty_seed_frame(tracking: Tracking) -> None:
    """the seed labels on frame 0 contain no objects"""
    tracking.seeds.data = np.zeros((128, 128), np.uint16)


def _no_seed_layer(tracking: Tracking) -> None:
    """Choose the Labels layer with the seed cells"""
    tracking.viewer.layers.remove(tracking.seeds)


@pytest.mark.parametrize(
    "mutate", [_no_image, _zyx_stack, _seeds_of_another_shape, _empty_seed_frame, _no_seed_layer]
)
def test_bad_input_is_a_notification_without_a_worker(
    open_tracking: Callable[..., Tracking],
    timelapse: SyntheticTimelapse,
    mutate: Callable[[Tracking], None],
) -> None:
    """Each bad input (the mutator's docstring is the message) is reported, nothing starts and
    no layer is added."""
    tracking = open_tracking(timelapse)
    mutate(tracking)
    layers = list(tracking.viewer.layers)
    start = len(notification_manager.records)
    tracking.widget._on_track()
    assert tracking.controller.run is None
    assert list(tracking.viewer.layers) == layers
    errors = errors_after(start)
    assert len(errors) == 1 and mutate.__doc__ in errors[0], errors


def test_demo_model_tracks_the_sample_time_lapse(
    make_napari_viewer: Callable[..., Any], qtbot: Any
) -> None:
    """The plugin's sample time-lapse (File → Open Sample), seeds from its first frame, the
    demo model chosen in the widget's model list, offline: every seeded cell keeps its id on
    its own cell until the first division, and the Tracks layer shows them."""
    from napari_sam2.models import DEMO_MODEL
    from sam2.synthetic import make_timelapse

    viewer = make_napari_viewer()
    viewer.open_sample("napari-sam2", "cells_timelapse")
    truth = make_timelapse().labels  # the sample's ground truth
    viewer.add_labels(truth[0].astype(np.uint16), name="seeds")
    viewer.dims.set_current_step(0, 0)
    _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2 cell tracking")
    assert isinstance(widget, TrackWidget)
    combo = widget._model_box.model_combo
    combo.setCurrentIndex(combo.findData(DEMO_MODEL))
    widget._entries_combo.setCurrentText("off")
    widget._on_track()
    run = widget.controller.run
    assert run is not None, "tracking did not start"
    qtbot.waitUntil(lambda: not widget.controller.running, timeout=4 * WAIT_MS)
    assert run.error is None and run.result is not None and not run.result.stopped
    labels = widget.controller.labels_layer
    assert labels is not None
    ious = [
        ((truth[t] == cell) & (labels.data[t] == cell)).sum()
        / ((truth[t] == cell) | (labels.data[t] == cell)).sum()
        for t in range(1, 8)  # the first division is at frame 8
        for cell in np.unique(truth[0])[1:]
    ]
    # measured: mean 0.854, worst 0.556 (the sample's cells touch)
    assert np.mean(ious) >= 0.75 and np.min(ious) >= 0.4, np.round(ious, 2)
    tracks = widget.controller.tracks_layer
    assert tracks is not None and len(np.unique(tracks.data[:, 0])) >= len(np.unique(truth[0])) - 1


def test_a_division_dated_back_relabels_the_layer_and_the_tracks(
    open_tracking: Callable[..., Tracking],
) -> None:
    """With the waist rule off, touching daughters divide when their mask falls apart and the
    division is dated back to where the mask already held both: the frames in between are
    relabelled in the output layer and the Tracks layer, exactly as the headless engine does."""
    from sam2.synthetic_tracking import HardCases

    data = make_tracking_timelapse(
        n_frames=12,
        shape=(128, 128),
        n_cells=3,
        n_divisions=1,
        n_entering=0,
        n_leaving=0,
        seed=3,
        hard=HardCases(touching_daughters=True, separate_frames=4),
    )
    tracking = open_tracking(data)
    tracking.follow_ground_truth(data)
    tracking.widget._waist_spin.setValue(0.0)
    run = tracking.track()
    tracking.wait()
    assert run.error is None and run.inputs.params.division_waist == 0
    expected = track_cells(
        data.image, data.labels[0], 0, GroundTruthMaskSource(data), run.inputs.params
    )
    (division,) = expected.lineage.divisions.values()
    undated = track_cells(
        data.image,
        data.labels[0],
        0,
        GroundTruthMaskSource(data),
        dataclasses.replace(run.inputs.params, division_lookback=0),
    )
    (found,) = undated.lineage.divisions.values()
    assert division.frame == found.frame - run.inputs.params.division_lookback > DIVISION_FRAME - 1
    np.testing.assert_array_equal(tracking.labels.data, expected.labels)
    lineage = tracking.controller.lineage
    assert lineage is not None and lineage.to_dict() == expected.lineage.to_dict()
    _assert_tracks_match(tracking)
