"""The Tracks layer beside a tracked Labels layer, kept in step with its lineage.

During a run it grows one frame at a time: each written frame adds its centroid rows, and the
run's lineage (built from the frames' lineage events) supplies the graph, so a frame costs one
frame's centroids, not a pass over the stack. After the run and after each hand edit it is
rebuilt from the labels. The layer is updated in place, so the user's display settings stay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from napari_sam2.tracking.lineage import Lineage
from napari_sam2.tracking.tracks import (
    TracksData,
    frame_rows,
    tracks_from_rows,
    tracks_layer_data,
)

if TYPE_CHECKING:
    import napari
    from napari.layers import Labels, Tracks

__all__ = ["LiveTracks"]


class LiveTracks:
    """The Tracks layer of ``labels`` (named ``name``), added once it has a row.

    If the user removes the layer during a run it is not added back until the run is over
    (:meth:`rebuild`), so a run never fights the user over the layer list.
    """

    def __init__(self, viewer: napari.viewer.Viewer, labels: Labels, name: str) -> None:
        self.viewer, self.labels, self.name = viewer, labels, name
        self.layer: Tracks | None = None
        self._follow = True
        self._rows: dict[int, np.ndarray] = {}  # by frame: [track_id, t, y, x] rows

    def add_frame(self, t: int, frame: np.ndarray, lineage: Lineage) -> None:
        """Frame ``t`` (its (Y, X) labels) was written; ``lineage`` is as of that frame."""
        self._rows[t] = frame_rows(t, frame)
        if self.layer is not None or self._follow:
            self._show(tracks_from_rows(self._rows.values(), frame.ndim, lineage))

    def rebuild(self, lineage: Lineage) -> None:
        """Every frame's rows again from the labels (after a run, or an edit)."""
        self._rows.clear()
        self._follow = True
        self._show(tracks_layer_data(self.labels.data, lineage))

    def removed(self, layer: object) -> None:
        """A layer left the viewer; if it was ours, stop adding it back while a run goes."""
        if layer is self.layer:
            self.layer, self._follow = None, False

    def _show(self, data: TracksData) -> None:
        tracks = self.layer
        if tracks is not None and tracks not in self.viewer.layers:
            tracks = self.layer = None
        if not len(data.data):
            self.layer = None  # first, so our own removal is not taken for the user's
            if tracks is not None:
                self.viewer.layers.remove(tracks)
            return
        if tracks is not None:
            tracks.data = data.data
            tracks.graph = data.graph
            tracks.features = data.features
            return
        from napari.layers import Tracks

        # built here, not with viewer.add_tracks: a plugin's viewer is a proxy that would hand
        # back a proxy of the layer, and the viewer's "removed" event names the layer itself
        self.layer = Tracks(
            data.data,
            graph=data.graph,
            features=data.features,
            name=self.name,
            scale=self.labels.scale,
            translate=self.labels.translate,
            tail_length=10,
        )
        self.viewer.add_layer(self.layer)
