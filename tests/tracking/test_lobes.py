"""The shape rules behind divisions of touching cells, on hand-made masks: waists, cuts,
spill-over onto neighbours, cells coming back after a gap."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2.tracking import TrackingParams
from napari_sam2.tracking.events import (
    daughter_pieces,
    find_return,
    looks_like_two_cells,
    nearest_piece,
    same_cell,
    two_cells,
    whole_cells,
)
from napari_sam2.tracking.lobes import split_between, two_lobes, waist_ratio
from tests.tracking.test_events import disk

P = TrackingParams()


def ellipse(cy: float, cx: float, ry: float, rx: float, shape=(64, 96)) -> np.ndarray:
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1


@pytest.mark.parametrize(
    "mask",
    [disk(30, 40, 9), ellipse(30, 40, 8, 16), ellipse(30, 40, 6, 20), disk(2, 40, 9)],
    ids=["disk", "ellipse 2:1", "ellipse 3.3:1", "disk cut by the border"],
)
def test_one_convex_cell_has_no_waist(mask: np.ndarray) -> None:
    """Round, elongated or cut by the frame edge: one hill, never two daughters."""
    assert waist_ratio(mask) == 1.0 and waist_ratio(mask, mirror=True) == 1.0
    assert two_lobes(mask, TrackingParams(division_waist=0.99)) is None


def test_touching_disks_split_at_their_waist() -> None:
    """Two disks overlapping by 15 % of their radii sum: a waist of 0.53 of their thickness
    for ideal disks (sqrt(1 - 0.85²)), about 0.63 on the pixel grid; the cut gives each disk
    back."""
    a, b = disk(30, 40, 8), disk(30, 40 + 0.85 * 16, 8)
    assert waist_ratio(a | b) == pytest.approx(0.63, abs=0.05)
    lobes = two_lobes(a | b, P)
    assert lobes is not None
    for lobe, truth in zip(sorted(lobes, key=lambda m: np.argwhere(m)[:, 1].mean()), (a, b)):
        assert (lobe & truth).sum() / (lobe | truth).sum() > 0.85
    assert daughter_pieces(a | b, P)[1] == "waist"
    assert two_lobes(a | b, TrackingParams(division_waist=0)) is None  # the rule turned off


def test_a_shallow_waist_counts_only_above_the_threshold() -> None:
    """Heavily overlapping disks (centres 1.4 radii apart) have a shallow waist (0.71 for
    ideal disks, 0.88 on the pixel grid at radius 8)."""
    pair = disk(30, 40, 8) | disk(30, 40 + 1.4 * 8, 8)
    ratio = waist_ratio(pair)
    assert 0.8 < ratio < 0.95
    assert two_lobes(pair, TrackingParams(division_waist=ratio + 0.05)) is not None
    assert two_lobes(pair, TrackingParams(division_waist=ratio - 0.05)) is None


def test_a_small_bump_is_not_a_daughter() -> None:
    """A lobe smaller than division_min_fraction of the mask is no daughter."""
    bumpy = disk(30, 40, 10) | disk(30, 52, 3)
    assert two_lobes(bumpy, TrackingParams(division_waist=0.99)) is None


def test_two_lobes_at_the_border() -> None:
    """Two touching disks along the frame's top edge, both cut by it, are still two lobes."""
    pair = disk(3, 40, 8) | disk(3, 40 + 0.85 * 16, 8)
    assert two_lobes(pair, P) is not None


def test_split_between_gives_each_pixel_to_the_nearer_daughter() -> None:
    a, b = disk(30, 30, 8), disk(30, 50, 8)
    mother = ellipse(30, 40, 9, 18)
    parts = split_between(mother, a, b, P)
    assert parts is not None
    assert not (parts[0] & parts[1]).any() and ((parts[0] | parts[1]) == mother).all()
    assert np.argwhere(parts[0])[:, 1].max() <= 40 <= np.argwhere(parts[1])[:, 1].min()
    assert split_between(mother, a, disk(30, 95, 1), P) is None  # one part too small


def test_area_tells_a_division_from_spill_over() -> None:
    """Daughters cover about the mother; a cell plus a whole neighbour is SAM 2 spilling
    over; much less than the mother is a frayed mask."""
    a, b = disk(30, 30, 8), disk(30, 50, 8)
    area = float((a | b).sum())
    assert two_cells([a, b], area, P) == "divided"
    assert two_cells([a, b], area / 2.0, P) == "grabbed"
    assert two_cells([a, b], area * 3.0, P) == "unsure"
    assert nearest_piece([a, b], (30.0, 49.0)) is b


def test_a_daughter_must_be_a_whole_cell_of_the_image() -> None:
    """A piece on a sliver of a bright neighbour is not a daughter; whole cells are."""
    cell, neighbour = disk(30, 30, 8), disk(30, 52, 8)
    sliver = neighbour & (np.arange(96)[None, :] < 48)
    assert whole_cells([cell, neighbour], [cell, neighbour], P)
    assert not whole_cells([cell, sliver], [cell, neighbour], P)
    assert whole_cells([cell, sliver], [], P)  # nothing to compare against


def test_half_a_cell_and_its_other_half_are_one_cell() -> None:
    """SAM 2 covering half a cell, the rest found as a 'sister' across a 1-pixel seam, joins
    into one round cell; a real sister next to it looks like two cells."""
    whole = disk(30, 40, 9)
    left = whole & (np.arange(96)[None, :] < 40)
    right = whole & (np.arange(96)[None, :] > 40)
    assert not looks_like_two_cells(left, right, P)
    assert looks_like_two_cells(disk(30, 30, 8), disk(30, 30 + 0.85 * 16, 8) & ~disk(30, 30, 8), P)


def test_a_cell_back_from_a_gap_is_found_near_where_it_was() -> None:
    """The nearest candidate of about the cell's area within gap_max_distance."""
    far, near, tiny = disk(30, 80, 8), disk(34, 45, 8), disk(30, 41, 2)
    area = float(disk(30, 40, 8).sum())
    assert find_return((30.0, 40.0), area, [far, tiny, near], P) == 2
    assert find_return((30.0, 40.0), area, [far], P) is None
    assert find_return((30.0, 40.0), area, [near], TrackingParams(gap_max_distance=0)) is None
    assert find_return(None, area, [near], P) is None


def test_two_pieces_of_one_round_cell_are_a_torn_mask() -> None:
    """Both pieces on one region: a division only if that region shows two cells itself."""
    cell = disk(30, 40, 9)
    top, bottom = cell & (np.arange(64)[:, None] < 29), cell & (np.arange(64)[:, None] > 31)
    assert not whole_cells([top, bottom], [cell], P)
    a, b = disk(30, 40, 8), disk(30, 40 + 0.85 * 16, 8)
    assert whole_cells(list(two_lobes(a | b, P) or ()), [a | b], P)


def test_a_sister_on_the_same_round_cell_is_the_rest_of_it() -> None:
    cell = disk(30, 40, 9)
    half, rest = cell & (np.arange(96)[None, :] < 40), cell & (np.arange(96)[None, :] > 41)
    assert same_cell(half, rest, [cell], P)
    a, b = disk(30, 30, 8), disk(30, 30 + 0.85 * 16, 8) & ~disk(30, 30, 8)
    assert not same_cell(a, b, [a | b], P)  # touching daughters: the region has a waist
    assert not same_cell(a, disk(30, 60, 8), [a, disk(30, 60, 8)], P)  # a separate cell
    assert same_cell(half, rest, [], P)  # no regions: the two masks join into one cell
