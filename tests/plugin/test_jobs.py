"""The shared job lifecycle: a tiny generator worker writing into a real viewer's layers."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import pytest
from napari.utils.notifications import notification_manager

from napari_sam2.jobs import Failure, LayerJob, Written
from tests.plugin.session import errors_after

pytestmark = pytest.mark.gui

WAIT_MS = 10_000


def _count(n: int, fail_at: int | None = None, pause: float = 0.0) -> Generator[Any, None, None]:
    """Worker body: yields 0..n-1, or a Failure at ``fail_at``."""
    for i in range(n):
        if pause:
            time.sleep(pause)
        yield Failure(f"broken at {i}") if i == fail_at else i


class _Fill(LayerJob[int]):
    """Writes item i as value i + 1 into row i of a Labels layer."""

    noun = "filling"

    def __init__(self, viewer: Any, labels: Any) -> None:
        super().__init__(viewer, {"output Labels": labels})
        self.labels = labels
        self.finished_calls = 0

    def write(self, item: int) -> Written:
        if item == 99:
            raise ValueError("row 99 is off the layer")
        self.labels.data[item] = item + 1
        return Written(f"filled row {item}")

    def on_finished(self) -> None:
        self.finished_calls += 1


def _job(make_napari_viewer: Callable[..., Any]) -> tuple[Any, _Fill, list[str]]:
    viewer = make_napari_viewer()
    labels = viewer.add_labels(np.zeros((6, 4), np.uint8), name="out")
    job = _Fill(viewer, labels)
    statuses: list[str] = []
    job.status.connect(statuses.append)
    return viewer, job, statuses


def test_items_are_written_with_progress_and_finish_once(
    make_napari_viewer: Callable[..., Any], qtbot: Any
) -> None:
    """Every item is written on the main thread, the status shows n/total and an ETA, and
    ``finished`` fires once after the hook."""
    _, job, statuses = _job(make_napari_viewer)
    with qtbot.waitSignal(job.finished, timeout=WAIT_MS):
        job.start(_count, 6, total=6, desc="filling", status="starting…")
    assert job.frames_done == 6 and job.error is None and not job.running
    np.testing.assert_array_equal(job.labels.data[:, 0], [1, 2, 3, 4, 5, 6])
    assert statuses[0] == "starting…"
    assert statuses[1].startswith("filled row 0 (1/6, ~") and statuses[1].endswith(" s left)")
    assert statuses[-1].startswith("filling done: 6 frame(s) in ")
    assert job.finished_calls == 1


def test_stop_keeps_what_was_written(make_napari_viewer: Callable[..., Any], qtbot: Any) -> None:
    """Stop quits the worker at its next yield; rows written before stay, the rest never come."""
    _, job, statuses = _job(make_napari_viewer)
    job.start(_count, 6, None, 0.2, total=6, desc="filling", status="starting…")
    qtbot.waitUntil(lambda: job.frames_done >= 1, timeout=WAIT_MS)
    with qtbot.waitSignal(job.finished, timeout=WAIT_MS):
        job.stop()
    assert job.stopped and 1 <= job.frames_done < 6
    assert not job.labels.data[job.frames_done + 1 :].any()
    assert "filling stopped after" in statuses[-1]


@pytest.mark.parametrize(
    ("args", "expected"),
    [((6, 2), "broken at 2"), ((100, None), "filling stopped: row 99 is off the layer")],
)
def test_first_error_wins_and_is_shown_once(
    make_napari_viewer: Callable[..., Any], qtbot: Any, args: tuple[Any, ...], expected: str
) -> None:
    """A yielded Failure or a write that raises ValueError stops the job with one
    notification; the frames before it stay."""
    viewer = make_napari_viewer()
    labels = viewer.add_labels(np.zeros((100, 4), np.uint8), name="out")
    job = _Fill(viewer, labels)
    start = len(notification_manager.records)
    with qtbot.waitSignal(job.finished, timeout=WAIT_MS):
        job.start(_count, *args, total=args[0], desc="filling", status="starting…")
    assert job.error == expected and job.stopped
    assert errors_after(start) == [expected]
    assert job.labels.data[1, 0] == 2


def test_removed_layer_stops_the_job(make_napari_viewer: Callable[..., Any], qtbot: Any) -> None:
    """The output layer removed mid-run: the job stops and names the layer and the role."""
    viewer, job, _ = _job(make_napari_viewer)
    job.start(_count, 6, None, 0.2, total=6, desc="filling", status="starting…")
    qtbot.waitUntil(lambda: job.frames_done >= 1, timeout=WAIT_MS)
    with qtbot.waitSignal(job.finished, timeout=WAIT_MS):
        viewer.layers.remove(job.labels)
    assert job.error is not None
    assert "the output Labels layer 'out' was removed" in job.error
    assert job.frames_done < 6


def test_a_running_job_cannot_start_twice(
    make_napari_viewer: Callable[..., Any], qtbot: Any
) -> None:
    """start() on a running job is a programming error, said as such."""
    _, job, _ = _job(make_napari_viewer)
    with qtbot.waitSignal(job.finished, timeout=WAIT_MS):
        job.start(_count, 6, None, 0.05, total=6, desc="filling", status="starting…")
        with pytest.raises(RuntimeError, match="already running"):
            job.start(_count, 6, total=6, desc="filling", status="again")
