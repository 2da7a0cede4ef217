"""A tracking run: :class:`~napari_sam2.tracking.engine.CellTracker` in a napari worker.

The tracker is built (and its inputs checked) on the main thread; the worker opens the mask
source (the model loads there), runs the tracker with it and yields each finished frame. The
frame is written into the output Labels layer on the main thread at once, so the user watches
the result grow, and its lineage events are applied to the run's own :class:`Lineage`, so the
divisions list and the Tracks layer follow the run without the whole lineage crossing threads.
Progress, ETA, Stop, first-error-wins and a removed output layer are
:class:`~napari_sam2.jobs.LayerJob`'s, as for propagation. Whatever way the run ends, its
tracks are closed on the main thread once the worker is done.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING

from psygnal import Signal

from napari_sam2.jobs import Failure, LayerJob, Written
from napari_sam2.models import TRACKING_OPTIONS, ModelLoader
from napari_sam2.tracking.engine import CellTracker
from napari_sam2.tracking.inputs import check_fits
from napari_sam2.tracking.lineage import Lineage, TrackDivided
from napari_sam2.tracking.napari.inputs import TrackingInputs
from napari_sam2.tracking.results import FrameUpdate, TrackingError, TrackingResult
from napari_sam2.tracking.sources import MaskSource, close_source

if TYPE_CHECKING:
    import napari
    from napari.layers import Labels

__all__ = ["MaskSourceFactory", "TrackingRun", "sam2_source_factory"]

#: Builds the mask source of a run, in the worker thread (so a model can load there). The
#: default asks SAM 2 (:func:`sam2_source_factory`); tests inject one that follows ground truth.
MaskSourceFactory = Callable[[TrackingInputs], MaskSource]


def sam2_source_factory(loader: ModelLoader) -> MaskSourceFactory:
    """SAM 2 from ``loader``'s model, with the tracking options the command line uses (and
    fast tracking's windows when the inputs ask for them)."""

    def open_source(inputs: TrackingInputs) -> MaskSource:
        from napari_sam2.tracking.sources import sam2_mask_source
        from sam2.video.options import WindowOptions

        options = TRACKING_OPTIONS.replace(window=WindowOptions() if inputs.fast else None)
        return sam2_mask_source(
            loader().video_predictor(options),
            inputs.frames,
            entries=inputs.entries,
            contrast_limits=inputs.contrast_limits,
        )

    return open_source


def _track(
    tracker: CellTracker, open_source: MaskSourceFactory, inputs: TrackingInputs
) -> Generator[FrameUpdate | Failure, None, None]:
    """Worker body: open the source, then yield each finished frame; never touches a layer.

    The superqt worker turns a RuntimeError (TrackingError is one) into a bare warning, so
    every failure is yielded as a message instead.
    """
    try:
        source = open_source(inputs)
    except Exception as exc:  # model download, checkpoint, unreadable stack
        yield Failure(f"Could not start SAM 2 tracking: {type(exc).__name__}: {exc}")
        return
    try:
        yield from tracker.run(source)
    except TrackingError as exc:
        yield Failure(str(exc))
    finally:
        close_source(source)


def _drive(body: Iterator[FrameUpdate | Failure]) -> Generator[FrameUpdate | Failure, None, None]:
    """Run a body made on the main thread, so the run can close it once the worker is done
    (Stop quits the worker between frames and leaves the body suspended)."""
    yield from body


class TrackingRun(LayerJob[FrameUpdate]):
    """One run: frames written into ``labels`` as they come; Stop keeps what was done.

    ``lineage`` is the main thread's lineage of the run, built from the frames' lineage events
    (the tracker's own lives in the worker until it ends); ``frame_written`` fires with each
    written :class:`FrameUpdate`, after ``lineage`` has applied it.
    """

    noun = "tracking"
    frame_written = Signal(FrameUpdate)

    def __init__(
        self, viewer: napari.viewer.Viewer, inputs: TrackingInputs, labels: Labels
    ) -> None:
        super().__init__(viewer, {"output Labels": labels})
        self.inputs, self.labels = inputs, labels
        self.tracker = CellTracker(
            tuple(int(s) for s in inputs.frames.shape),
            inputs.seed,
            inputs.seed_frame,
            inputs.params,
        )
        self.lineage = Lineage()
        self.divisions = 0
        self.result: TrackingResult | None = None
        self._body: Generator[FrameUpdate | Failure, None, None] | None = None

    def run(self, open_source: MaskSourceFactory) -> None:
        """Start the worker; ``open_source`` builds the mask source in it."""
        self._body = _track(self.tracker, open_source, self.inputs)
        self.start(
            _drive,
            self._body,
            total=self.tracker.total,
            desc="SAM 2: tracking cells",
            status=f"tracking from frame {self.inputs.seed_frame}: loading the model…",
        )

    def write(self, update: FrameUpdate) -> Written:
        check_fits(update.labels, self.labels.data.dtype)
        for frame, labels in update.revised.items():  # a division dated back
            self.labels.data[frame] = labels
        self.labels.data[update.frame] = update.labels
        self.labels.refresh()
        self.lineage.apply_all(update.lineage_events)
        if any(isinstance(e, TrackDivided) for e in update.lineage_events):
            # parent links are what a CTC export of the layer reads; ends come from the masks
            self.labels.metadata["lineage"] = self.lineage.to_dict()
        self.divisions += sum(e.kind == "division" for e in update.events)
        self.frame_written.emit(update)
        return Written(
            f"tracked frame {update.frame}",
            f": {update.n_active} cells, {self.divisions} division(s)",
        )

    def on_finished(self) -> None:
        """The worker is done with the tracker: close the body (and so the source) and the
        tracks here, on the main thread."""
        if self._body is not None:
            self._body.close()
        result = self.tracker.finish(stopped=self.stopped or self.error is not None)
        self.result = dataclasses.replace(result, labels=self.labels.data)
        self.labels.metadata["lineage"] = result.lineage.to_dict()

    def summary(self) -> str:
        if self.result is None:
            return ""
        lineage = self.result.lineage
        return f": {len(lineage)} tracks, {len(lineage.divisions)} division(s)"
