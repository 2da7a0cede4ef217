"""One :class:`SegmentController` per image layer: the actions of the segment widget.

The controller is the image's layers (:class:`~napari_sam2.segment.image_layers.ImageLayers`)
plus what the user does with them: clicks answered on the slice by a
:class:`~napari_sam2.segment.clicks.SliceSegmenter`, propagations through the stack
(:class:`~napari_sam2.segment.propagation_job.PropagationRun`), accepting and clearing objects,
and saving and opening sessions. What the widget shows of it (status line, embedding,
propagation running) is the controller's :class:`~napari_sam2.segment.state.SegmentState`, which
the slice segmenter, the embedding cache and each run write into straight from their signals.
torch and ``sam2`` are imported inside the functions that need them so that opening napari and
the widget stays instant.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from napari.utils.notifications import show_error

from napari_sam2.axes import PlaneIndex, axis_name, describe_plane, plane_index
from napari_sam2.layers import LabelsWriter
from napari_sam2.models import ModelLoader
from napari_sam2.segment.clicks import SliceSegmenter
from napari_sam2.segment.image_layers import ImageLayers
from napari_sam2.segment.layer_prompts import read_prompts
from napari_sam2.segment.propagation import Direction, plan_run
from napari_sam2.segment.propagation_job import PropagationRun
from napari_sam2.segment.state import SegmentState

if TYPE_CHECKING:
    import napari
    from napari.layers import Image, Labels

__all__ = ["SegmentController"]


class SegmentController(ImageLayers):
    """Segments objects on the viewer's current slice of one image layer, and propagates them.

    ``segment`` predicts at once when the slice's embedding is cached, otherwise the slice is
    embedded in a thread worker first. With ``live`` on, every point or box added, moved or
    removed re-segments the objects it belongs to. ``state`` is what a widget observes.
    """

    def __init__(
        self,
        viewer: napari.viewer.Viewer,
        image_layer: Image,
        factory: ModelLoader,
        *,
        cache_size: int = 8,
    ) -> None:
        super().__init__(viewer, image_layer)
        self.cache_size = cache_size
        self.live = True
        self._factory = factory
        self.state = SegmentState()
        self._clicks = SliceSegmenter(self, factory, cache_size)
        self._clicks.status.connect_setattr(self.state, "status", maxargs=1)
        self._clicks.failed.connect(self._fail)
        self._embeddings = self._clicks.embeddings
        self._embeddings.failed.connect(self._fail)
        self._embeddings.status.connect_setattr(self.state, "status", maxargs=1)
        self._embeddings.busy_changed.connect_setattr(self.state, "embedding", maxargs=1)
        self.accepted: set[int] = set()  # objects whose masks propagations leave alone
        self._propagation: PropagationRun | None = None  # the current (or last) run
        self.edited.connect(self._resegment)
        self.toggled.connect(self._on_toggled)

    # -------------------------------------------------------------- state
    @property
    def busy(self) -> bool:
        """True while a model load or slice embedding runs in a worker."""
        return self.state.embedding

    @property
    def propagating(self) -> bool:
        """True while a propagation runs (until its end has been handled)."""
        return self.state.running

    def set_factory(self, factory: ModelLoader) -> None:
        """Use another model: embeddings of the old one are dropped, labels stay."""
        self._factory = factory
        self._embeddings.set_factory(factory)

    # -------------------------------------------------------------- clicks
    def prefetch(self) -> None:
        """Start embedding the current slice, so the first click is answered at once."""
        self._clicks.prefetch()

    def segment(
        self, obj_ids: Iterable[int] | None = None, plane: PlaneIndex | None = None
    ) -> None:
        """Segment objects (default: the current one) on a slice (default: the current one)."""
        self._clicks.segment(obj_ids, plane)

    def _resegment(self, by_plane: dict[PlaneIndex | None, set[int]]) -> None:
        """A prompt edit: its objects are no longer accepted; live mode re-segments them on
        the slices their prompts lie (or lay) on."""
        for ids in by_plane.values():
            self.accepted -= ids  # its prompts were edited: no longer as accepted
        if self.live:
            for plane, ids in by_plane.items():
                self.segment(ids, plane)

    def _on_toggled(self, positive: bool, changed: set[int]) -> None:
        if changed and self.live:
            self.segment(changed)
        kind = "positive (green)" if positive else "negative (red)"
        self.state.status = f"next point: {kind}"

    # -------------------------------------------------------------- propagation
    def propagate(
        self,
        direction: Direction = "forward",
        frame_range: tuple[int, int] | None = None,
        axis: int | None = None,
        mask_layer: Labels | None = None,
        every_position: bool = False,
    ) -> PropagationRun | None:
        """Track every prompted object from the current frame through the stack.

        ``axis`` is the video axis (default: T, else Z, else the first leading axis). Objects
        of ``mask_layer`` on the current frame (e.g. from Cellpose) are mask prompts. With
        ``every_position`` every position of the other leading axes that holds prompts is
        tracked in turn (each z of a TZYX stack), else only the one on screen. Frames are
        written into the output layer as they are done; :meth:`stop` keeps them.
        """
        from napari_sam2.axes import stack_axis

        if self.propagating:
            self._fail("a propagation is already running: stop it first")
            return None
        image = self.image_layer
        try:
            line = plane_index(image, self.viewer.dims)
            axis = stack_axis(image) if axis is None else int(axis)
            axis = -1 if axis is None else axis
            prompts = read_prompts(image, self.points_layer, self.shapes_layer, mask_layer)
            names = [axis_name(image, a) for a in range(image.ndim - 2)]
            skip = frozenset(self.accepted)
            plans = plan_run(
                prompts, line, axis, direction, frame_range, skip, names, every_position
            )
            labels = self.ensure_labels_layer()
            # every object at once: a run is never refused half-way by an id the layer holds
            LabelsWriter(labels).claim({i for plan in plans for i in plan.prompts})
        except ValueError as exc:
            self._fail(str(exc))
            return None
        run = PropagationRun(self.viewer, image, labels, plans)
        run.status.connect_setattr(self.state, "status", maxargs=1)
        run.finished.connect(self._on_propagation_finished)
        self._propagation = run
        run.run(self._factory)
        self.state.running = True
        return run

    def _on_propagation_finished(self) -> None:
        self.state.running = False

    def stop(self) -> None:
        """Stop a running propagation after the frame in flight; finished frames stay."""
        if self._propagation is not None:
            self._propagation.stop()

    # -------------------------------------------------------------- objects
    def accept_object(self) -> int:
        """Keep the current object's masks as they are and move on to a new object.

        Later propagations leave an accepted object alone (faster, and its corrected frames
        stay exactly as accepted); editing its prompts makes it editable again. Returns the
        new object id.
        """
        accepted = self.object_id
        self.accepted.add(accepted)
        self.set_object_id(self.next_object_id())
        self.state.status = (
            f"object {accepted} accepted: propagations leave it as it is; now object "
            f"{self.object_id}"
        )
        return self.object_id

    def clear_object(self) -> None:
        """Remove the current object's mask and prompts from the current slice only."""
        try:
            plane = plane_index(self.image_layer, self.viewer.dims)
        except ValueError as exc:
            self._fail(str(exc))
            return
        cleared = 0
        if self.labels_layer is not None and self.writer is not None:
            try:
                cleared = self.writer.clear(plane, self.object_id)
            except ValueError as exc:  # an id of someone else's pixels: they stay
                self._fail(str(exc))
                return
        self.remove_prompts(plane, self.object_id)
        self._clicks.forget(plane, self.object_id)
        where = describe_plane(self.image_layer, plane)
        self.state.status = f"object {self.object_id} cleared on {where} ({cleared} px)"

    # -------------------------------------------------------------- sessions
    def save_session(
        self, path: str, video_axis: int | None = None, *, overwrite: bool = False
    ) -> str:
        """Save prompts, boxes and labels beside the data; returns the session file's path.

        Existing files of that name are replaced only with ``overwrite``; otherwise
        :class:`~napari_sam2.prompts.SessionFilesExistError` names them (the widget asks).
        """
        from napari_sam2.prompts import save_prompts

        session = read_prompts(
            self.image_layer,
            self.points_layer,
            self.shapes_layer,
            labels=self.labels_layer,
            video_axis=video_axis,
        )
        saved = save_prompts(session, path, overwrite=overwrite)
        n_boxes = sum(b.plane is not None for b in session.boxes)
        self.state.status = (
            f"saved {len(session.points)} point(s), {n_boxes} box(es) and "
            f"{'the labels' if session.labels is not None else 'no labels'} to {saved.name}"
        )
        return str(saved)

    def open_session(self, path: str) -> None:
        """Add the session's prompts and labels as new layers and make them this image's."""
        from napari_sam2.prompts import load_prompts
        from napari_sam2.segment.layer_prompts import prompt_layers

        session = load_prompts(path)
        points, shapes, labels = prompt_layers(session, self.image_layer)
        live, self.live = self.live, False  # loading is not an edit: do not re-segment
        try:
            for layer in (points, shapes, labels):
                if layer is not None:
                    self.viewer.add_layer(layer)
            self.points_layer = points
            self.shapes_layer = shapes
            if labels is not None:
                self.labels_layer = labels
                LabelsWriter(labels).own(session.object_ids)  # saved by us: ours to rewrite
        finally:
            self.live = live
        ids = session.object_ids
        if ids:
            self.set_object_id(ids[0])
        self.layers_changed.emit()
        self.state.status = (
            f"opened {len(session.points)} point(s), {len(session.boxes)} box(es) for "
            f"object(s) {', '.join(map(str, ids)) or 'none'}"
        )

    # -------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Stop listening to layers and any propagation; a running embedding finishes but is
        ignored."""
        self.stop()
        self.live = False
        self._disconnect_points()
        self._embeddings.close()

    def _fail(self, message: str) -> None:
        show_error(message)
        self.state.status = message
