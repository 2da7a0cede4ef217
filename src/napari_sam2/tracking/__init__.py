"""Cell tracking with divisions: seed cells once, follow them with SAM 2, export the lineage.

napari-free core (the widget and the command line drive the same code):

- :mod:`.params`: :class:`TrackingParams`, thresholds of every rule;
- :mod:`.inputs`: checks on the stack, the seed labels and the output array;
- :mod:`.engine`: :func:`track_cells` / :class:`CellTracker`, the frame-by-frame loop;
- :mod:`.results`: :class:`FrameUpdate`, :class:`TrackEvent`, :class:`TrackingResult`;
- :mod:`.seeds`: the seed frame's objects (seed labels plus click/box prompts);
- :mod:`.sources`: the :class:`MaskSource` protocol and :class:`SAM2MaskSource`;
- :mod:`.proposals`: candidate regions for cells entering the field;
- :mod:`.events`: division, entry and exit rules on masks;
- :mod:`.lineage`: :class:`Lineage` bookkeeping;
- :mod:`.tracks`: centroid tracks in napari's Tracks form (the CLI's ``tracks.csv`` too);
- :mod:`.editing`: confirm, undo or add a division by hand;
- :mod:`.ctc`: Cell Tracking Challenge export/import;
- :mod:`.measurements`: per-cell, per-frame table (area, centroid, intensity).

Arrays are (T, Y, X) with T the video axis; ids in labels are track ids.
"""

from napari_sam2.tracking.ctc import NotOurCTCError, read_ctc, write_ctc, write_ctc_labels
from napari_sam2.tracking.editing import add_division, confirm_division, undo_division
from napari_sam2.tracking.engine import CellTracker, track_cells
from napari_sam2.tracking.lineage import (
    Division,
    Lineage,
    LineageEvent,
    Track,
    TrackDivided,
    TrackEnded,
    TracksSeen,
    TrackStarted,
    TrackTrimmed,
)
from napari_sam2.tracking.measurements import measure_cells, write_measurements_csv
from napari_sam2.tracking.params import TrackingParams
from napari_sam2.tracking.proposals import (
    ENTRY_DETECTORS,
    AutoMaskProposer,
    EntryDetector,
    Proposer,
    ThresholdProposer,
    make_proposer,
)
from napari_sam2.tracking.results import FrameUpdate, TrackEvent, TrackingError, TrackingResult
from napari_sam2.tracking.sources import MaskSource, PromptSeed, SAM2MaskSource, sam2_mask_source
from napari_sam2.tracking.tracks import TracksData, tracks_layer_data

__all__ = [
    "ENTRY_DETECTORS",
    "AutoMaskProposer",
    "CellTracker",
    "Division",
    "EntryDetector",
    "FrameUpdate",
    "Lineage",
    "LineageEvent",
    "MaskSource",
    "NotOurCTCError",
    "PromptSeed",
    "Proposer",
    "SAM2MaskSource",
    "ThresholdProposer",
    "Track",
    "TrackDivided",
    "TrackEnded",
    "TrackEvent",
    "TrackStarted",
    "TrackTrimmed",
    "TrackingError",
    "TrackingParams",
    "TrackingResult",
    "TracksData",
    "TracksSeen",
    "add_division",
    "confirm_division",
    "make_proposer",
    "measure_cells",
    "read_ctc",
    "sam2_mask_source",
    "track_cells",
    "tracks_layer_data",
    "undo_division",
    "write_ctc",
    "write_ctc_labels",
    "write_measurements_csv",
]
