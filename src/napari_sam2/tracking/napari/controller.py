"""Cell tracking inside napari: one controller per dock widget, holding the last run's results.

:class:`TrackingController` starts a :class:`~.run.TrackingRun` into a new Labels layer (bad
input becomes a notification before any worker starts). While it runs, each written frame grows
the Tracks layer and, on a division, refreshes the divisions list, both from the run's lineage,
which the frames' lineage events keep current. When it ends, or is stopped, the controller keeps
the run's final lineage (also in the layer's ``metadata["lineage"]``) and rebuilds the Tracks
layer from the labels. Division corrections and exports go through it as well, so the widget
only forwards clicks and observes the controller's evented
:class:`~napari_sam2.run_state.RunState` (status line, run in progress). torch is never imported
here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from napari.utils.notifications import show_error
from psygnal import Signal

from napari_sam2.axes import layer_array
from napari_sam2.layers import new_labels_layer
from napari_sam2.models import ModelLoader as PredictorFactory
from napari_sam2.run_state import RunState
from napari_sam2.tracking import editing
from napari_sam2.tracking.lineage import Division, Lineage, TrackDivided
from napari_sam2.tracking.napari.inputs import prepare_inputs
from napari_sam2.tracking.napari.run import MaskSourceFactory, TrackingRun, sam2_source_factory
from napari_sam2.tracking.napari.tracks_layer import LiveTracks
from napari_sam2.tracking.params import TrackingParams
from napari_sam2.tracking.proposals import EntryDetector
from napari_sam2.tracking.results import FrameUpdate

if TYPE_CHECKING:
    import napari
    from napari.layers import Image, Labels, Tracks

__all__ = ["TrackingController"]

T = TypeVar("T")


class TrackingController:
    """Runs tracking for a dock widget and keeps the last run's layers and lineage.

    ``mask_source_factory`` is the hook for other mask sources: a callable taking the
    :class:`~.inputs.TrackingInputs` and returning a
    :class:`~napari_sam2.tracking.sources.MaskSource`, called in the worker thread. None (the
    default) tracks with SAM 2 from the predictor factory, exactly as the command line does
    (:func:`~.run.sam2_source_factory`). ``state`` is what the widget observes: the status
    line, and ``running`` from the start of a run until its results are kept.
    """

    frame_written = Signal(int)  # a frame of the output layer is final
    lineage_changed = Signal()

    def __init__(self, viewer: napari.viewer.Viewer, factory: PredictorFactory) -> None:
        self.viewer = viewer
        self.state = RunState()
        self.mask_source_factory: MaskSourceFactory | None = None
        self.run: TrackingRun | None = None
        self.lineage: Lineage | None = None
        self.labels_layer: Labels | None = None
        self._tracks: LiveTracks | None = None
        self._factory = factory
        viewer.layers.events.removed.connect(self._on_layer_removed)

    def set_factory(self, factory: PredictorFactory) -> None:
        self._factory = factory

    @property
    def running(self) -> bool:
        """True while a run is in progress (until its end has been handled)."""
        return self.state.running

    @property
    def tracks_layer(self) -> Tracks | None:
        """The Tracks layer of the last run's labels, while it is in the viewer."""
        return self._tracks.layer if self._tracks is not None else None

    @property
    def image_layer(self) -> Image | None:
        return self.run.inputs.image if self.run is not None else None

    def divisions(self) -> list[Division]:
        """The current lineage's divisions, by frame then mother."""
        if self.lineage is None:
            return []
        return sorted(self.lineage.divisions.values(), key=lambda d: (d.frame, d.mother))

    # -------------------------------------------------------------- running
    def track(
        self,
        image: Image | None,
        seed_layer: Labels | None,
        seed_frame: int,
        params: TrackingParams,
        entries: EntryDetector = "threshold",
        fast: bool = False,
    ) -> TrackingRun | None:
        """Start a run into a new Labels layer; bad input becomes a notification, no worker.
        ``fast`` tracks each cell in a window around where it was."""
        if self.running:
            show_error("Tracking is already running: stop it first.")
            return None
        try:
            inputs = prepare_inputs(image, seed_layer, seed_frame, params, entries, fast)
        except ValueError as exc:
            show_error(str(exc))
            self.state.status = str(exc)
            return None
        labels = new_labels_layer(inputs.image)
        labels.name = f"{inputs.image.name} tracked"
        labels.metadata["lineage"] = Lineage().to_dict()
        self.viewer.add_layer(labels)
        run = TrackingRun(self.viewer, inputs, labels)
        self.labels_layer, self.lineage = labels, run.lineage
        self._tracks = LiveTracks(self.viewer, labels, f"{inputs.image.name} tracks")
        run.status.connect_setattr(self.state, "status", maxargs=1)
        run.frame_written.connect(self._on_frame_written)
        run.finished.connect(self._on_run_finished)
        self.run = run
        run.run(self.mask_source_factory or sam2_source_factory(self._factory))
        self.state.running = True
        self.lineage_changed.emit()
        return run

    def stop(self) -> None:
        if self.run is not None:
            self.run.stop()

    def close(self) -> None:
        self.stop()
        self.viewer.layers.events.removed.disconnect(self._on_layer_removed)

    def _on_frame_written(self, update: FrameUpdate) -> None:
        """A frame is in the layer and in the run's lineage: grow the tracks, list divisions."""
        run = self.run
        if run is None or self._tracks is None:
            return
        for frame, labels in update.revised.items():
            self._tracks.add_frame(frame, labels, run.lineage)
        self._tracks.add_frame(update.frame, update.labels, run.lineage)
        if any(isinstance(e, TrackDivided) for e in update.lineage_events):
            self.lineage_changed.emit()
        self.frame_written.emit(update.frame)

    def _on_run_finished(self) -> None:
        run = self.run
        kept = run is not None and run.labels in self.viewer.layers
        if run is not None and kept and run.frames_done == 0:  # e.g. the model did not load
            self.viewer.layers.remove(run.labels)
            kept = False
        if run is not None and kept and run.result is not None:
            self.lineage = run.result.lineage
            self._show_tracks()
        else:
            if self._tracks is not None and self._tracks.layer is not None:
                self.viewer.layers.remove(self._tracks.layer)
            self.labels_layer, self.lineage = None, None
        self.state.running = False
        self.lineage_changed.emit()

    # -------------------------------------------------------------- results
    def _show_tracks(self) -> None:
        """The Tracks layer again from the labels and the lineage (after a run or an edit)."""
        if self._tracks is not None and self.lineage is not None:
            self._tracks.rebuild(self.lineage)

    def _edited(self, touched: list[int]) -> None:
        """Labels and lineage changed by hand: refresh the layer, its metadata and the tracks."""
        assert self.labels_layer is not None and self.lineage is not None
        self.labels_layer.metadata["lineage"] = self.lineage.to_dict()
        if touched:
            self.labels_layer.refresh()
        self._show_tracks()
        self.lineage_changed.emit()

    def _editable(self) -> tuple[Lineage, Labels] | None:
        if self.running:
            show_error("Wait for tracking to finish (or stop it) before editing divisions.")
            return None
        if self.lineage is None or self.labels_layer is None:
            show_error("Track cells first: there is no lineage to edit.")
            return None
        return self.lineage, self.labels_layer

    def confirm_division(self, mother: int) -> None:
        """Mark the division of ``mother`` as checked."""
        editable = self._editable()
        if editable is None:
            return
        try:
            editing.confirm_division(editable[0], mother)
        except ValueError as exc:
            show_error(str(exc))
            return
        self._edited([])
        self.state.status = f"division of track {mother} confirmed"

    def undo_division(self, mother: int) -> None:
        """It was no division: the daughters become ``mother`` again (labels and lineage)."""
        editable = self._editable()
        if editable is None:
            return
        lineage, labels = editable
        try:
            touched = editing.undo_division(lineage, labels.data, mother)
        except ValueError as exc:
            show_error(str(exc))
            return
        self._edited(touched)
        self.state.status = (
            f"division of track {mother} undone ({len(touched)} frame(s) relabelled)"
        )

    def add_division(self, mother: int, frame: int, sister: int) -> None:
        """``mother`` divides on ``frame`` into its continuation and track ``sister``."""
        editable = self._editable()
        if editable is None:
            return
        lineage, labels = editable
        try:
            daughters = editing.add_division(lineage, labels.data, mother, frame, sister)
        except ValueError as exc:
            show_error(str(exc))
            return
        self._edited(list(range(frame, labels.data.shape[0])))
        self.state.status = (
            f"track {mother} divides on frame {frame} into {daughters[0]} and {daughters[1]}"
        )

    def export_ctc(self, folder: str | Path, overwrite: bool = False) -> None:
        """Write the tracked labels and lineage as a Cell Tracking Challenge folder.

        Raises FileExistsError when ``folder`` already holds our earlier export and not
        ``overwrite``; a folder with other files (another tool's masks, hand corrections) is
        never written into, so that is an error notification.
        """
        from napari_sam2.tracking.ctc import write_ctc

        editable = self._editable()
        if editable is None:
            return
        lineage, labels = editable
        tracks = _exported(
            "the CTC folder",
            lambda: write_ctc(
                folder, labels.data, lineage, allow_empty_frames=True, overwrite=overwrite
            ),
        )
        if tracks is not None:
            self.state.status = f"saved {len(tracks)} CTC track(s) to {folder}"

    def export_geff(self, path: str | Path, overwrite: bool = False) -> None:
        """Write the lineage as a GEFF graph: a node per cell and frame, edges along tracks.

        Raises FileExistsError when ``path`` already holds a GEFF store and not ``overwrite``;
        anything else at ``path`` is never replaced, so that is an error notification.
        """
        from napari_sam2.tracking.geff_export import write_geff

        editable = self._editable()
        if editable is None:
            return
        lineage, labels = editable
        summary = _exported(
            "the GEFF lineage", lambda: write_geff(path, labels.data, lineage, overwrite=overwrite)
        )
        if summary is None:
            return
        self.state.status = (
            f"saved {summary.nodes} node(s) and {summary.edges} edge(s) of {summary.tracks} "
            f"track(s) as GEFF to {path}"
        )

    def export_measurements(self, path: str | Path) -> None:
        """Area, centroid and mean intensity of every cell on every frame, as CSV."""
        from napari_sam2.tracking.measurements import write_measurements_csv

        editable = self._editable()
        if editable is None:
            return
        lineage, labels = editable
        image = self.image_layer
        frames = layer_array(image) if image is not None and image in self.viewer.layers else None
        try:
            table = write_measurements_csv(path, labels.data, frames, lineage)
        except (ValueError, OSError) as exc:
            show_error(f"Could not write the measurements: {exc}")
            return
        self.state.status = f"saved {len(table['frame'])} measurement row(s) to {path}"

    def _on_layer_removed(self, event: Any) -> None:
        if self._tracks is not None:
            self._tracks.removed(event.value)
        if event.value is self.labels_layer and not self.running:
            self.labels_layer, self.lineage = None, None
            self.lineage_changed.emit()


def _exported(what: str, write: Callable[[], T]) -> T | None:
    """Run an export. What the user can fix (a folder holding others' files, bad data, a
    disk error) is a notification and None; an earlier export of ours in the way is a
    FileExistsError for the widget to ask about."""
    from napari_sam2.tracking.ctc_folder import NotOurCTCError
    from napari_sam2.tracking.geff_export import NotOurGeffError

    try:
        return write()
    except (NotOurCTCError, NotOurGeffError) as exc:
        show_error(f"Could not export {what}: {exc}")
    except FileExistsError:
        raise
    except (ValueError, OSError) as exc:
        show_error(f"Could not export {what}: {exc}")
    return None
