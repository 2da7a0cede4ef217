"""Cell tracking in napari: the dock widget, its controller and the worker job.

The napari part of :mod:`napari_sam2.tracking`, kept beside the napari-free core that the
command line runs (nothing in the core imports this package):

- :mod:`.widget`: :class:`TrackWidget`, controls, status and the divisions list only;
- :mod:`.controller`: :class:`TrackingController`, runs, the Tracks layer, edits, exports;
- :mod:`.run`: :class:`TrackingRun`, the tracker in a napari worker on
  :class:`~napari_sam2.jobs.LayerJob`, frames written into a Labels layer as they come.
"""

from napari_sam2.tracking.napari.controller import TrackingController
from napari_sam2.tracking.napari.run import TrackingRun
from napari_sam2.tracking.napari.widget import TrackWidget

__all__ = ["TrackWidget", "TrackingController", "TrackingRun"]
