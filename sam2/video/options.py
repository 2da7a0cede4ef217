"""How a video session tracks: the predictor's inference options as one typed value.

The reference spreads these over constructor keywords and Hydra overrides (one of them,
``binarize_mask_from_pts_for_mem_enc``, even lives in the model config although it only changes
what the video predictor feeds the memory encoder). Here they are one frozen dataclass, built
once and handed to :class:`~sam2.sam2_video_predictor.SAM2VideoPredictor`; the builders translate
the reference's strings into it, and nothing downstream sees strings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["TrackingOptions", "WindowOptions", "resolve_options"]


@dataclass(frozen=True)
class WindowOptions:
    """Fast tracking (:mod:`sam2.video.window`): each object in a window of tokens around
    its previous mask. Window side = object size × (1 + 2 × ``margin``) + twice its last
    motion, at least ``min_side`` tokens; wider than ``max_fraction`` of the frame: full frame.
    ``halo`` tokens around the window go through the memory encoder too."""

    margin: float = 1.0
    min_side: int = 8
    max_fraction: float = 0.5
    halo: int = 4

    def __post_init__(self) -> None:
        if self.margin < 0 or self.min_side < 1 or self.halo < 0:
            raise ValueError(f"window margin and halo must be >= 0 and min_side >= 1, got {self}")
        if not 0 < self.max_fraction <= 1:
            raise ValueError(f"window max_fraction must be in (0, 1], got {self.max_fraction}")


@dataclass(frozen=True)
class TrackingOptions:
    """Inference options of a video session (the reference's defaults unless noted)."""

    #: Fill holes up to this many pixels in every mask handed out (0: off; the video builder's
    #: post-processing uses 8).
    fill_hole_area: int = 0
    #: Masks decoded from clicks are binarised before memory encoding (the video builder's
    #: post-processing turns this on; the model config's ``binarize_mask_from_pts_for_mem_enc``).
    binarize_mask_from_pts: bool = False
    #: Objects never overlap in the masks handed out (the highest score wins a pixel).
    non_overlap_masks: bool = False
    #: After a correction, drop non-conditioning memories within the model's memory reach of it.
    clear_non_cond_mem_around_input: bool = False
    #: Prompts on an already tracked frame make it a conditioning frame ("keep corrections").
    add_all_frames_to_correct_as_cond: bool = False
    #: Objects tracked on a frame with the same memory layout go through memory attention, the
    #: decoder and the memory encoder together, at most this many at a time (1: one by one, as
    #: the reference) and at most ``engine.BATCH_TOKENS`` query tokens per batch. Results agree
    #: within float rounding; working memory grows with the batch (at 1024 input, about 75 MB
    #: per object).
    object_batch_size: int = 16
    #: Fast tracking, opt-in: each object's memory attention, decoder and memory encoder run
    #: on a window around where it was (None: the full frame, exact SAM 2). Small objects in
    #: large frames get much cheaper; masks agree closely, not exactly (see the README).
    window: WindowOptions | None = None

    def __post_init__(self) -> None:
        if isinstance(self.object_batch_size, bool) or not isinstance(self.object_batch_size, int):
            raise TypeError(f"object_batch_size must be an integer, got {self.object_batch_size!r}")
        if self.object_batch_size < 1:
            raise ValueError(
                f"object_batch_size must be >= 1 (1 tracks objects one by one), "
                f"got {self.object_batch_size}"
            )
        if isinstance(self.fill_hole_area, bool) or int(self.fill_hole_area) != self.fill_hole_area:
            raise TypeError(f"fill_hole_area must be an integer, got {self.fill_hole_area!r}")
        if self.fill_hole_area < 0:
            raise ValueError(f"fill_hole_area must be >= 0, got {self.fill_hole_area}")

    @classmethod
    def postprocessed(cls, **changes: Any) -> TrackingOptions:
        """The video builder's default (``apply_postprocessing=True``): binarised click masks
        into memory and holes up to 8 pixels filled, with ``changes`` on top."""
        return cls(fill_hole_area=8, binarize_mask_from_pts=True).replace(**changes)

    def replace(self, **changes: Any) -> TrackingOptions:
        """A copy with ``changes``; an unknown field is an error that lists the known ones."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(f"unknown tracking option(s) {unknown}; known: {sorted(known)}")
        return dataclasses.replace(self, **changes)


#: The reference predictor's option keywords, and the field each sets.
_REFERENCE_KEYWORDS = {
    "fill_hole_area": "fill_hole_area",
    "non_overlap_masks": "non_overlap_masks",
    "clear_non_cond_mem_around_input": "clear_non_cond_mem_around_input",
    "add_all_frames_to_correct_as_cond": "add_all_frames_to_correct_as_cond",
    "binarize_mask_from_pts_for_mem_enc": "binarize_mask_from_pts",
}


def resolve_options(
    options: TrackingOptions | None,
    keywords: dict[str, Any],
    *,
    binarize_mask_from_pts: bool,
) -> TrackingOptions:
    """One TrackingOptions from ``options`` or the reference's keywords (never both).

    ``binarize_mask_from_pts`` is the default when only keywords are given: the model
    config's ``binarize_mask_from_pts_for_mem_enc``, where the reference keeps it.
    """
    unknown = sorted(set(keywords) - set(_REFERENCE_KEYWORDS))
    if unknown:
        raise TypeError(
            f"SAM2VideoPredictor got unexpected keyword argument(s) {unknown}; "
            f"it takes options=TrackingOptions(...) or {sorted(_REFERENCE_KEYWORDS)}"
        )
    if options is not None:
        if not isinstance(options, TrackingOptions):
            raise TypeError(f"options must be a TrackingOptions, got {type(options).__name__}")
        if keywords:
            raise TypeError(
                f"give either options or the keyword(s) {sorted(keywords)}, not both; "
                "use options.replace(...) to change an option"
            )
        return options
    return TrackingOptions(binarize_mask_from_pts=binarize_mask_from_pts).replace(
        **{_REFERENCE_KEYWORDS[k]: v for k, v in keywords.items()}
    )
