"""A tracking run: the input checks, and CellTracker in a napari worker, frames written live.

The tracker runs in a generator worker (the model loads there too) and yields each finished
frame; it is written into the output Labels layer on the main thread at once, so the user
watches the result grow, can stop at any frame and keeps what was done, lineage included.
Whatever way the run ends, its tracks are closed on the main thread once the worker is done.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.utils.notifications import show_error
from psygnal import Signal

from napari_sam2.axes import layer_array
from napari_sam2.tracking.engine import CellTracker
from napari_sam2.tracking.inputs import check_fits, check_inputs
from napari_sam2.tracking.params import TrackingParams
from napari_sam2.tracking.proposals import EntryDetector
from napari_sam2.tracking.results import FrameUpdate, TrackingError, TrackingResult
from napari_sam2.tracking.sources import MaskSource

if TYPE_CHECKING:
    import napari
    from napari.layers import Image, Labels

__all__ = [
    "MaskSourceFactory",
    "TrackingInputs",
    "TrackingRun",
    "check_image",
    "prepare_inputs",
]


@dataclass(frozen=True)
class TrackingInputs:
    """Everything a run needs, checked: the (T, Y, X) frames and the seed frame's labels."""

    image: Image
    frames: Any  # (T, Y, X) array behind the image layer (numpy, dask, zarr)
    seed: np.ndarray  # (Y, X) labels of the seed frame
    seed_frame: int
    params: TrackingParams
    entries: EntryDetector
    contrast_limits: tuple[float, float]


#: Builds the mask source of a run, in the worker thread (so a model can load there). The
#: default asks SAM 2; tests inject a source that follows ground truth.
MaskSourceFactory = Callable[[TrackingInputs], MaskSource]


def check_image(image: Image | None) -> Any:
    """The (T, Y, X) array of a time-lapse image layer, or a ValueError saying what to open."""
    if image is None:
        raise ValueError(
            "Open a time-lapse first (File > Open Sample > napari-sam2 has one) and choose it "
            "as the image."
        )
    if image.rgb:
        raise ValueError(
            f"{image.name!r} is an RGB image; cell tracking needs single-channel frames "
            "(split the channels with right-click > Split RGB and track one)."
        )
    shape = tuple(layer_array(image).shape)
    if len(shape) == 2:
        raise ValueError(
            f"{image.name!r} is a single 2D image; cell tracking needs a (T, Y, X) time-lapse."
        )
    if len(shape) > 3:
        raise ValueError(
            f"Cell tracking is 2D+t for now: {image.name!r} has shape {shape} ({len(shape)} "
            "axes). Track one z-plane or channel as its own (T, Y, X) layer, e.g. from the "
            f"napari console: viewer.add_image(viewer.layers[{image.name!r}].data[:, 0])"
        )
    return layer_array(image)


def prepare_inputs(
    image: Image | None,
    seed_layer: Labels | None,
    seed_frame: int,
    params: TrackingParams,
    entries: EntryDetector,
) -> TrackingInputs:
    """Check the layers before anything slow starts; ValueErrors are meant for the user."""
    frames = check_image(image)
    assert image is not None  # checked above
    if seed_layer is None:
        raise ValueError(
            "Choose the Labels layer with the seed cells (paint or load one label per cell on "
            "the seed frame)."
        )
    seeds = seed_layer.data[0] if seed_layer.multiscale else seed_layer.data
    try:
        _, seed = check_inputs(frames, seeds, seed_frame)
    except ValueError as exc:
        raise ValueError(f"Seed layer {seed_layer.name!r}: {exc}") from exc
    low, high = image.contrast_limits
    return TrackingInputs(
        image, frames, seed, int(seed_frame), params, entries, (float(low), float(high))
    )


@dataclass(frozen=True)
class _Frame:
    """A finished frame, with the lineage as it stood then (for the layer's metadata)."""

    update: FrameUpdate
    lineage: dict[str, Any]


@dataclass(frozen=True)
class _Failure:
    message: str


def _track(
    tracker: CellTracker, open_source: Callable[[], MaskSource], stop: threading.Event
) -> Generator[_Frame | _Failure, None, None]:
    """Worker body: open the source, then yield each finished frame; never touches a layer.

    The superqt worker turns a RuntimeError (TrackingError is one) into a bare warning, so
    every failure is yielded as a message instead.
    """
    try:
        source = open_source()
    except Exception as exc:  # model download, checkpoint, unreadable stack
        yield _Failure(f"Could not start SAM 2 tracking: {type(exc).__name__}: {exc}")
        return
    try:
        for update in tracker.run(source):
            yield _Frame(update, tracker.lineage.to_dict())
            if stop.is_set():
                return
    except TrackingError as exc:
        yield _Failure(str(exc))
    finally:
        close = getattr(source, "close", None)
        if callable(close):
            close()


class TrackingRun:
    """One run: frames written into ``labels`` as they come; Stop keeps what was done."""

    status = Signal(str)
    frame_done = Signal(int)
    finished = Signal()

    def __init__(
        self, viewer: napari.viewer.Viewer, inputs: TrackingInputs, labels: Labels
    ) -> None:
        self.viewer, self.inputs, self.labels = viewer, inputs, labels
        shape = tuple(int(s) for s in inputs.frames.shape)
        self.tracker = CellTracker(shape, inputs.seed, inputs.seed_frame, inputs.params)
        self.frames_done = 0
        self.divisions = 0
        self.stopped = False
        self.error: str | None = None
        self.result: TrackingResult | None = None
        self._stop = threading.Event()
        self._running = False
        self._started = 0.0

    @property
    def running(self) -> bool:
        return self._running

    def start(self, open_source: Callable[[], MaskSource]) -> None:
        from napari.qt.threading import create_worker

        total = self.tracker.total
        worker = create_worker(
            _track,
            self.tracker,
            open_source,
            self._stop,
            _progress={"total": total, "desc": "SAM 2: tracking cells"},
        )
        worker.yielded.connect(self._on_yielded)
        worker.errored.connect(self._on_errored)
        worker.finished.connect(self._on_finished)
        self._running = True
        self._started = time.perf_counter()
        self.status.emit(f"tracking from frame {self.inputs.seed_frame}: loading the model…")
        worker.start()

    def stop(self) -> None:
        """Stop after the frame in flight; finished frames and their lineage stay."""
        if self._running and not self.stopped:
            self.stopped = True
            self._stop.set()
            self.status.emit("stopping after the current frame…")

    def _on_yielded(self, item: _Frame | _Failure) -> None:
        if isinstance(item, _Failure):
            self._fail(item.message)
            return
        if self.labels not in self.viewer.layers:
            self._fail(
                f"tracking stopped: the output layer {self.labels.name!r} was removed "
                f"({self.frames_done} frame(s) were done)"
            )
            return
        update = item.update
        try:
            check_fits(update.labels, self.labels.data.dtype)
        except ValueError as exc:
            self._fail(f"tracking stopped: {exc}")
            return
        self.labels.data[update.frame] = update.labels
        self.labels.metadata["lineage"] = item.lineage
        self.labels.refresh()
        self.frames_done = update.done
        self.divisions += sum(e.kind == "division" for e in update.events)
        elapsed = time.perf_counter() - self._started
        left = elapsed / max(update.done, 1) * (update.total - update.done)
        self.status.emit(
            f"tracked frame {update.frame} ({update.done}/{update.total}, ~{left:.0f} s left): "
            f"{update.n_active} cells, {self.divisions} division(s)"
        )
        self.frame_done.emit(update.frame)

    def _on_errored(self, exc: BaseException) -> None:
        self._fail(f"tracking failed: {type(exc).__name__}: {exc}")

    def _fail(self, message: str) -> None:
        if self.error is None:
            self.error = message
            show_error(message)
            self.status.emit(message)
        self.stop()

    def _on_finished(self) -> None:
        """The worker is done with the tracker: close its tracks here, on the main thread."""
        result = self.tracker.finish(stopped=self.stopped or self.error is not None)
        self.result = dataclasses.replace(result, labels=self.labels.data)
        self.labels.metadata["lineage"] = result.lineage.to_dict()
        self._running = False
        if self.error is None:
            seconds = time.perf_counter() - self._started
            verb = "stopped after" if self.stopped else "done:"
            self.status.emit(
                f"tracking {verb} {self.frames_done} frame(s) in {seconds:.1f} s: "
                f"{len(result.lineage)} tracks, {len(result.lineage.divisions)} division(s)"
            )
        self.finished.emit()
