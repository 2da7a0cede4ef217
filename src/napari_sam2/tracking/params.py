"""The knobs of cell tracking, with defaults that suit 2D fluorescence time-lapses.

Areas are in pixels of the frame, gaps in pixels, durations in frames. Every rule that decides
a division, an entry or an exit reads its thresholds from here, so a widget or the command line
can expose them and a test can pin them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["TrackingParams"]


@dataclass(frozen=True)
class TrackingParams:
    """Thresholds for the division, entry and exit rules (see :mod:`.events`).

    Attributes:
        min_area: a mask smaller than this counts as "object absent" (SAM 2 hands out an empty
            mask when its object score is below zero, so empty and tiny masks mean the same).
        exit_after: frames in a row an object may be absent before its track ends; the track
            ends on its last present frame. Shorter absences are gaps (a cell out of focus, a
            missed mask): the cell keeps its track, which CTC export continues under a new
            label whose parent is the label before the gap.
        gap_max_distance: while a cell is missing, a new region whose centre lies within this
            many pixels of where it was last seen (and of about its area) is that cell coming
            back, not a new one; 0 turns this off.
        division_min_fraction: a mask splits into daughters when its two largest connected
            pieces each hold at least this fraction of its area (and ``min_area`` pixels).
        division_neck: a mask also splits when eroding it by this many pixels cuts it in two
            sizeable pieces (daughters still joined by a thin bridge); 0 turns this off.
        division_waist: a mask also splits when it has two sizeable lobes whose waist is
            narrower than this fraction of the smaller lobe's thickness (touching daughters,
            which SAM 2 follows as one object); 0 turns this off (see :mod:`.lobes`).
        division_min_coverage: each daughter of a split must lie on a cell-like region of
            the frame (the entry detector's) that the daughters cover at least this much; a
            piece on a sliver of a neighbour is SAM 2 spilling over, and two pieces on one
            round cell are a torn mask: either way the mask is cut back to the piece where
            the cell was. 0 turns the check off.
        division_lookback: a division found on frame t is dated back to the earliest of the
            previous this-many frames on which the mother's mask already held both daughters
            (cut between them, any waist); those frames are relabelled. 0 turns this off.
        division_area_drop: a mask whose area falls below this fraction of its previous area
            is checked for a sister cell nearby (at the border too: a leaving cell has none).
        division_max_gap: the largest distance in pixels between a shrunken cell and a new
            neighbour for the pair to count as daughters.
        division_area_tolerance: the daughters' summed area must lie within this relative
            distance of the mother's last area (0.5: between 50 % and 150 %).
        entry_every: look for new cells on every K-th frame after the seed frame (0: never).
        min_new_area: the smallest region that becomes a new object.
        max_new_overlap: a proposed region overlapping tracked objects by more than this
            fraction of its area is not a new cell.
        max_new_area_factor: a proposed region larger than this many times the median tracked
            cell is background or a clump, not a new cell.
    """

    min_area: int = 10
    exit_after: int = 3
    gap_max_distance: float = 15.0
    division_min_fraction: float = 0.2
    division_neck: int = 1
    division_waist: float = 0.9
    division_min_coverage: float = 0.7
    division_lookback: int = 2
    division_area_drop: float = 0.8
    division_max_gap: float = 4.0
    division_area_tolerance: float = 0.5
    entry_every: int = 5
    min_new_area: int = 30
    max_new_overlap: float = 0.2
    max_new_area_factor: float = 4.0

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, rule: str) -> None:
            if not ok:
                raise ValueError(
                    f"TrackingParams.{name} must be {rule}, got {getattr(self, name)!r}"
                )

        need(self.min_area >= 1, "min_area", "at least 1 pixel")
        need(self.exit_after >= 1, "exit_after", "at least 1 frame")
        need(0 < self.division_min_fraction <= 0.5, "division_min_fraction", "in (0, 0.5]")
        need(self.division_neck >= 0, "division_neck", "≥ 0 pixels")
        need(0 <= self.division_waist < 1, "division_waist", "in [0, 1) (0 turns it off)")
        need(self.division_lookback >= 0, "division_lookback", "≥ 0 frames")
        need(0 <= self.division_min_coverage <= 1, "division_min_coverage", "in [0, 1]")
        need(self.gap_max_distance >= 0, "gap_max_distance", "≥ 0 pixels (0 turns it off)")
        need(0 < self.division_area_drop < 1, "division_area_drop", "in (0, 1)")
        need(self.division_max_gap >= 0, "division_max_gap", "≥ 0 pixels")
        need(self.division_area_tolerance >= 0, "division_area_tolerance", "≥ 0")
        need(self.entry_every >= 0, "entry_every", "≥ 0 (0 turns entry detection off)")
        need(self.min_new_area >= 1, "min_new_area", "at least 1 pixel")
        need(0 <= self.max_new_overlap < 1, "max_new_overlap", "in [0, 1)")
        need(self.max_new_area_factor > 1, "max_new_area_factor", "greater than 1")

    def to_dict(self) -> dict[str, Any]:
        """Plain values, e.g. for a results folder or layer metadata."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrackingParams:
        """Parameters from a dict; unknown names are an error, not silently ignored."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown tracking parameter(s) {unknown}; known: {sorted(known)}")
        return cls(**values)
