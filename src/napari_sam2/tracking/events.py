"""The rules that turn per-object masks into lineage events: division, entry and exit.

Pure functions on boolean (Y, X) masks, so each rule can be tested and tuned without a model.
Thresholds come from :class:`~napari_sam2.tracking.params.TrackingParams`.

- **Split division**: a tracked mask falls apart into two sizeable pieces (SAM 2 keeps
  following both daughters of a mother it was prompted with, as one object).
- **Waist division**: a tracked mask has two lobes joined by a narrow waist (the daughters
  still touch; :mod:`.lobes`), so the division is dated when it becomes visible, not when the
  daughters have drifted apart.
- **Area-drop division**: the mask shrinks to about half while an untracked region of the
  right size appears right next to it (SAM 2 kept one daughter and lost the other).
- **Entry**: a proposed region that no tracked object covers becomes a new object.
- **Exit**: an object absent (empty mask) for ``exit_after`` frames in a row ends its track.
- **Gap closing**: before that, a region appearing where a missing cell was is that cell back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Literal

import numpy as np

from napari_sam2.tracking.lineage import DivisionRule
from napari_sam2.tracking.lobes import two_lobes
from napari_sam2.tracking.params import TrackingParams

__all__ = [
    "bounding_box",
    "centre",
    "daughter_pieces",
    "find_return",
    "find_sister",
    "gap_between",
    "largest_piece",
    "look_back",
    "looks_like_two_cells",
    "nearest_piece",
    "new_object_masks",
    "same_cell",
    "shrank",
    "sizeable_pieces",
    "split_daughters",
    "touches_border",
    "two_cells",
    "whole_cells",
]

_EIGHT = np.ones((3, 3), dtype=bool)  # pieces touching at a corner are one piece
_ONE_CELL = 0.97  # a waist ratio above this is a convex blob: one cell (see lobes.waist_ratio)


def bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[slice, slice] | None:
    """Slices around the True pixels of a (Y, X) mask, grown by ``margin``; None if empty."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return None
    h, w = mask.shape
    return (
        slice(max(rows[0] - margin, 0), min(rows[-1] + margin + 1, h)),
        slice(max(cols[0] - margin, 0), min(cols[-1] + margin + 1, w)),
    )


def sizeable_pieces(mask: np.ndarray, params: TrackingParams) -> list[np.ndarray]:
    """The pieces of ``mask`` big enough to be a daughter cell, largest first.

    Pieces are connected regions; if there are not two sizeable ones, a thin neck (at most
    ``2 * division_neck`` pixels wide, as in a cell pinching in two) is cut by eroding the mask
    and growing the eroded pieces back inside it.
    """
    from scipy import ndimage

    box = bounding_box(mask)
    if box is None:
        return []
    crop = np.asarray(mask[box], dtype=bool)
    labelled, n = ndimage.label(crop, structure=_EIGHT)
    pieces = _big_pieces(labelled, n, params)
    if len(pieces) < 2 and params.division_neck > 0:
        from skimage.segmentation import expand_labels

        core = ndimage.binary_erosion(crop, iterations=params.division_neck, border_value=0)
        cores, m = ndimage.label(core, structure=_EIGHT)
        if m >= 2:
            grown = expand_labels(cores, distance=params.division_neck + 1) * crop
            necked = _big_pieces(grown, m, params)
            if len(necked) >= 2:
                pieces = necked
    if not pieces:
        return []
    out = []
    for piece in pieces:
        full = np.zeros(mask.shape, dtype=bool)
        full[box] = piece
        out.append(full)
    return out


def _big_pieces(labelled: np.ndarray, n: int, params: TrackingParams) -> list[np.ndarray]:
    if n == 0:
        return []
    areas = np.bincount(labelled.ravel(), minlength=n + 1)[1:]
    floor = max(params.min_area, params.division_min_fraction * float(areas.sum()))
    order = [i for i in np.argsort(-areas, kind="stable") if areas[i] >= floor]
    if n == 1:
        return [labelled == 1]
    return [labelled == i + 1 for i in order]


def largest_piece(mask: np.ndarray) -> np.ndarray:
    """The largest connected region of a mask (empty stays empty)."""
    from scipy import ndimage

    labelled, n = ndimage.label(mask, structure=_EIGHT)
    if n <= 1:
        return np.asarray(mask, dtype=bool)
    areas = np.bincount(labelled.ravel())[1:]
    return labelled == int(np.argmax(areas)) + 1


def split_daughters(
    mask: np.ndarray, previous_pieces: int, params: TrackingParams
) -> tuple[np.ndarray, np.ndarray] | None:
    """The two daughters of a mask that just fell apart, or None.

    Only a change from one sizeable piece to two or more counts: an object seeded as two
    pieces does not keep "dividing".
    """
    pieces = sizeable_pieces(mask, params)
    if len(pieces) >= 2 and previous_pieces < 2:
        return pieces[0], pieces[1]
    return None


def touches_border(mask: np.ndarray) -> bool:
    """True if the mask reaches the frame's edge (it may be leaving the field of view)."""
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def shrank(area: int, previous_area: float, params: TrackingParams) -> bool:
    """An area drop that may be a division. At the border too: a cell dividing there is as
    much a division, and a cell leaving the frame shrinks without a sister to find."""
    return area < params.division_area_drop * previous_area


def daughter_pieces(
    mask: np.ndarray, params: TrackingParams
) -> tuple[list[np.ndarray], DivisionRule]:
    """The daughters a mask holds and the rule that sees them: its sizeable pieces
    (``split``), else the two lobes on either side of a narrow waist (``waist``)."""
    pieces = sizeable_pieces(mask, params)
    if len(pieces) < 2:
        lobes = two_lobes(mask, params)
        if lobes is not None:
            return list(lobes), "waist"
    return pieces, "split"


def two_cells(
    pieces: Sequence[np.ndarray], recent_area: float, params: TrackingParams
) -> Literal["divided", "grabbed", "unsure"]:
    """What a mask seen as two daughters is, from its area against the cell's recent area.

    A dividing cell's daughters together cover about the mother (within
    ``division_area_tolerance``): ``divided``. Much more is a mask that spilled onto a
    neighbouring cell (SAM 2 does that when cells touch): ``grabbed``. Much less: ``unsure``
    (a frayed mask), neither a division nor a reason to cut.
    """
    total = int(np.count_nonzero(pieces[0] | pieces[1])) / max(recent_area, 1.0)
    if total > 1.0 + params.division_area_tolerance:
        return "grabbed"
    if total < 1.0 - params.division_area_tolerance:
        return "unsure"
    return "divided"


def nearest_piece(
    pieces: Sequence[np.ndarray], last_centre: tuple[float, float] | None
) -> np.ndarray:
    """The piece whose centre is nearest to where the cell was (the largest if unknown)."""
    if last_centre is None:
        return pieces[0]

    def distance(piece: np.ndarray) -> float:
        here = centre(piece)
        assert here is not None
        return float(np.hypot(here[0] - last_centre[0], here[1] - last_centre[1]))

    return min(pieces, key=distance)


def looks_like_two_cells(a: np.ndarray, b: np.ndarray, params: TrackingParams) -> bool:
    """Whether a cell's shrunken mask ``a`` and its would-be sister ``b`` together look like
    two cells: two pieces, or any waist at all, once a seam between them (up to
    ``division_max_gap`` pixels) is bridged. A cell that SAM 2 covered only in part, with the
    rest found as a "sister", joins into one convex cell instead. (The area drop and the
    sister's size are strong evidence already, so only a convex whole is refused.)"""
    from scipy import ndimage

    whole = a | b
    gap = gap_between(a, b, params.division_max_gap)
    if 0 < gap < float("inf"):
        box = bounding_box(whole, margin=2)
        assert box is not None
        reach = int(np.ceil(gap))
        near_a = ndimage.binary_dilation(a[box], structure=_EIGHT, iterations=reach)
        near_b = ndimage.binary_dilation(b[box], structure=_EIGHT, iterations=reach)
        whole = whole.copy()
        whole[box] |= near_a & near_b
    any_waist = replace(params, division_waist=max(params.division_waist, _ONE_CELL))
    return len(daughter_pieces(whole, any_waist)[0]) >= 2


def _best_region(mask: np.ndarray, regions: Sequence[np.ndarray]) -> int | None:
    """Index of the region that overlaps ``mask`` most (None: it overlaps none)."""
    overlaps = [int(np.count_nonzero(region & mask)) for region in regions]
    best = int(np.argmax(overlaps)) if overlaps else 0
    return best if overlaps and overlaps[best] else None


def _one_cell(region: np.ndarray, params: TrackingParams) -> bool:
    """A region of the frame that is one convex cell: no second piece, not even a waist."""
    any_waist = replace(params, division_waist=max(params.division_waist, _ONE_CELL))
    return len(daughter_pieces(region, any_waist)[0]) < 2


def whole_cells(
    pieces: Sequence[np.ndarray], regions: Sequence[np.ndarray], params: TrackingParams
) -> bool:
    """Whether two daughter pieces are whole cells of the image, not a cell plus a bit of its
    neighbour (SAM 2 spilling over) nor one cell's mask torn in two: the region (of the
    source's proposals) that each piece overlaps most must be covered by the two pieces for
    at least ``division_min_coverage``, and if both lie on the same region, that region must
    itself show two cells (touching daughters do; one round cell does not). With no regions
    to compare against, every split counts."""
    if not regions or params.division_min_coverage <= 0:
        return True
    pair = pieces[0] | pieces[1]
    best = [_best_region(piece, regions) for piece in pieces[:2]]
    for index in best:
        if index is None:
            return False
        region = regions[index]
        covered = int(np.count_nonzero(region & pair)) / max(int(np.count_nonzero(region)), 1)
        if covered < params.division_min_coverage:
            return False
    return not (best[0] == best[1] and _one_cell(regions[best[0]], params))  # type: ignore[index]


def same_cell(
    mask: np.ndarray, sister: np.ndarray, regions: Sequence[np.ndarray], params: TrackingParams
) -> bool:
    """Whether a shrunken cell's would-be sister is the rest of the same cell: both lie on one
    region of the frame that is one convex cell (SAM 2 covered only part of it). Without
    regions, the two masks themselves must join into one convex cell."""
    index = _best_region(mask, regions) if regions else None
    if index is None:
        return not looks_like_two_cells(mask, sister, params)
    region = regions[index]
    on_it = int(np.count_nonzero(region & sister)) >= 0.5 * int(np.count_nonzero(sister))
    return on_it and _one_cell(region, params)


def look_back(
    recent: Sequence[tuple[int, np.ndarray]],
    mother: int,
    daughters: tuple[np.ndarray, np.ndarray],
    params: TrackingParams,
) -> list[tuple[int, tuple[np.ndarray, np.ndarray]]]:
    """Where a division found now really began: walking back over ``recent`` frames (frame,
    labels; newest first, at most ``division_lookback``), each frame on which the mother's
    mask, cut between the daughters of the frame after it, already looks like two cells
    (:func:`looks_like_two_cells`). Returns those frames with the cut, newest first; empty
    when the division is visible first where it was found."""
    from napari_sam2.tracking.lobes import split_between

    found: list[tuple[int, tuple[np.ndarray, np.ndarray]]] = []
    later = daughters
    for frame_idx, labels in list(recent)[: params.division_lookback]:
        parts = split_between(labels == mother, later[0], later[1], params)
        if parts is None or not looks_like_two_cells(parts[0], parts[1], params):
            break
        found.append((frame_idx, parts))
        later = parts
    return found


def centre(mask: np.ndarray) -> tuple[float, float] | None:
    """The (y, x) centroid of a mask; None if empty."""
    ys, xs = np.nonzero(mask)
    return (float(ys.mean()), float(xs.mean())) if len(ys) else None


def find_return(
    last_centre: tuple[float, float] | None,
    last_area: float,
    candidates: Sequence[np.ndarray],
    params: TrackingParams,
) -> int | None:
    """Index of the candidate region that is a missing cell coming back: its centre within
    ``gap_max_distance`` of where the cell was last seen and its area between half and twice
    the cell's; the nearest such candidate wins."""
    if last_centre is None or params.gap_max_distance <= 0:
        return None
    best: tuple[float, int] | None = None
    for index, candidate in enumerate(candidates):
        area = int(np.count_nonzero(candidate))
        if not 0.5 * last_area <= area <= 2.0 * last_area:
            continue
        here = centre(candidate)
        assert here is not None
        distance = float(np.hypot(here[0] - last_centre[0], here[1] - last_centre[1]))
        if distance <= params.gap_max_distance and (best is None or distance < best[0]):
            best = (distance, index)
    return None if best is None else best[1]


def gap_between(a: np.ndarray, b: np.ndarray, limit: float) -> float:
    """The smallest pixel distance between two masks (0 if they touch), ``inf`` past ``limit``."""
    from scipy import ndimage

    box = bounding_box(a, margin=int(np.ceil(limit)) + 1)
    if box is None or not b[box].any():
        return float("inf")
    distance = ndimage.distance_transform_edt(~a[box])
    gap = float(distance[b[box]].min()) - 1.0  # distance 1 = the neighbouring pixel
    return max(gap, 0.0) if gap <= limit else float("inf")


def find_sister(
    mask: np.ndarray,
    previous_area: float,
    candidates: Sequence[np.ndarray],
    params: TrackingParams,
) -> int | None:
    """Index of the candidate region that completes a shrunken cell into two daughters.

    It must lie within ``division_max_gap`` pixels, and the two areas must add up to about the
    mother's (``division_area_tolerance``). The closest such candidate wins.
    """
    area = int(mask.sum())
    best: tuple[float, float, int] | None = None
    for index, candidate in enumerate(candidates):
        total = (area + int(candidate.sum())) / max(previous_area, 1)
        if abs(total - 1.0) > params.division_area_tolerance:
            continue
        gap = gap_between(mask, candidate, params.division_max_gap)
        if gap == float("inf"):
            continue
        key = (gap, abs(total - 1.0), index)
        if best is None or key < best:
            best = key
    return None if best is None else best[2]


def new_object_masks(
    proposals: Sequence[np.ndarray],
    covered: np.ndarray,
    params: TrackingParams,
    typical_area: float | None = None,
) -> list[np.ndarray]:
    """Proposed regions that are new cells: not covered by tracked objects, of cell size.

    Each accepted region is trimmed to the uncovered pixels (its largest piece), so new objects
    never overlap tracked ones or each other. ``typical_area`` (the median tracked cell) bounds
    the size from above; without it a region may cover at most a quarter of the frame.
    """
    limit = params.max_new_area_factor * typical_area if typical_area else 0.25 * covered.size
    taken = covered.copy()
    accepted: list[np.ndarray] = []
    for proposal in proposals:
        region = np.asarray(proposal, dtype=bool)
        if region.shape != covered.shape:
            raise ValueError(
                f"a proposed mask has shape {region.shape}, but frames are {covered.shape}"
            )
        area = int(region.sum())
        if area < params.min_new_area or area > limit:
            continue
        if (region & covered).sum() > params.max_new_overlap * area:
            continue
        free = largest_piece(region & ~taken)
        if int(free.sum()) < params.min_new_area:
            continue
        accepted.append(free)
        taken |= free
    return accepted
