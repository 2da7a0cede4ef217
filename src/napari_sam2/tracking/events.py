"""The rules that turn per-object masks into lineage events: division, entry and exit.

Pure functions on boolean (Y, X) masks, so each rule can be tested and tuned without a model.
Thresholds come from :class:`~napari_sam2.tracking.params.TrackingParams`.

- **Split division**: a tracked mask falls apart into two sizeable pieces (SAM 2 keeps
  following both daughters of a mother it was prompted with, as one object).
- **Area-drop division**: the mask shrinks to about half while an untracked region of the
  right size appears right next to it (SAM 2 kept one daughter and lost the other).
- **Entry**: a proposed region that no tracked object covers becomes a new object.
- **Exit**: an object absent (empty mask) for ``exit_after`` frames in a row ends its track.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from napari_sam2.tracking.params import TrackingParams

__all__ = [
    "bounding_box",
    "find_sister",
    "gap_between",
    "largest_piece",
    "new_object_masks",
    "shrank",
    "sizeable_pieces",
    "split_daughters",
    "touches_border",
]

_EIGHT = np.ones((3, 3), dtype=bool)  # pieces touching at a corner are one piece


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


def shrank(area: int, previous_area: float, mask: np.ndarray, params: TrackingParams) -> bool:
    """An area drop that may be a division (cells shrinking at the border are leaving)."""
    return area < params.division_area_drop * previous_area and not touches_border(mask)


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
