"""Division, entry and exit rules on hand-made masks, and the parameters that steer them."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2.tracking import TrackingParams
from napari_sam2.tracking.events import (
    find_sister,
    gap_between,
    new_object_masks,
    shrank,
    sizeable_pieces,
    split_daughters,
)

P = TrackingParams()
SHAPE = (64, 96)


def disk(cy: float, cx: float, r: float, shape: tuple[int, int] = SHAPE) -> np.ndarray:
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_two_separate_cells_are_two_pieces() -> None:
    """Two disks are two daughters; a disk with a speck is one cell."""
    pair = disk(30, 30, 8) | disk(30, 50, 8)
    pieces = sizeable_pieces(pair, P)
    assert len(pieces) == 2
    assert sum(p.sum() for p in pieces) == pair.sum()
    speck = disk(30, 30, 8) | disk(30, 50, 1.5)
    assert len(sizeable_pieces(speck, P)) == 1


@pytest.mark.parametrize(("neck", "expected"), [(0, 1), (1, 2)])
def test_thin_bridge_is_cut_only_with_a_neck_rule(neck: int, expected: int) -> None:
    """Two cells joined by a 2-pixel bridge count as dividing when ``division_neck`` ≥ 1; the
    pieces cover the whole mask but the bridge."""
    mask = disk(30, 30, 8) | disk(30, 49, 8)
    mask[29:31, 30:50] = True
    pieces = sizeable_pieces(mask, TrackingParams(division_neck=neck))
    assert len(pieces) == expected
    if expected == 2:
        assert not (pieces[0] & pieces[1]).any()
        assert (pieces[0] | pieces[1]).sum() >= mask.sum() - 4


def test_round_cell_is_not_cut_by_the_neck_rule() -> None:
    """Eroding a plain (even elongated) cell never makes two pieces."""
    yy, xx = np.ogrid[:64, :96]
    ellipse = ((yy - 30) / 6) ** 2 + ((xx - 40) / 20) ** 2 <= 1
    assert len(sizeable_pieces(ellipse, TrackingParams(division_neck=2))) == 1


def test_split_needs_a_change_from_one_piece() -> None:
    """A mask that was already two pieces (seeded so) does not divide again."""
    pair = disk(30, 30, 8) | disk(30, 50, 8)
    assert split_daughters(pair, previous_pieces=1, params=P) is not None
    assert split_daughters(pair, previous_pieces=2, params=P) is None
    assert split_daughters(disk(30, 30, 8), previous_pieces=1, params=P) is None


def test_shrinking_triggers_the_sister_check_at_the_border_too() -> None:
    """Half the area triggers the sister check wherever the cell is (a cell dividing against
    the border is a division; one leaving has no sister to find); 90 % does not."""
    inside = disk(30, 40, 6)
    assert shrank(int(inside.sum()), 2.0 * inside.sum(), P)
    at_border = disk(30, 2, 8)
    assert shrank(int(at_border.sum()), 2.0 * at_border.sum(), P)
    assert not shrank(int(inside.sum()), 1.1 * inside.sum(), P)


def test_gap_between_masks() -> None:
    """Touching masks are 0 apart; a 3-pixel gap measures 3; past the limit it is infinite."""
    a = np.zeros(SHAPE, bool)
    a[10:20, 10:20] = True
    b = np.zeros(SHAPE, bool)
    b[10:20, 20:30] = True
    assert gap_between(a, b, 5) == 0
    c = np.zeros(SHAPE, bool)
    c[10:20, 23:30] = True
    assert gap_between(a, c, 5) == pytest.approx(3.0)
    assert gap_between(a, c, 2) == float("inf")


def test_sister_is_the_close_candidate_of_the_right_size() -> None:
    """Of three candidates, the far one and the wrong-sized one are skipped."""
    me = disk(30, 30, 6)
    previous = 2.6 * me.sum()  # me + sister ≈ 0.77 of it, me + tiny ≈ 0.43
    far = disk(30, 80, 6)
    tiny = disk(30, 41, 2)
    sister = disk(30, 44, 6)
    assert find_sister(me, previous, [far, tiny, sister], P) == 2
    assert find_sister(me, previous, [far, tiny], P) is None


def test_new_objects_are_uncovered_cell_sized_regions() -> None:
    """Covered, tiny and huge proposals are dropped; overlaps between proposals are trimmed."""
    covered = disk(30, 30, 8)
    proposals = [
        disk(30, 31, 8),  # an already tracked cell
        disk(10, 80, 2),  # too small
        np.ones(SHAPE, bool),  # background
        disk(40, 70, 7),  # a new cell
        disk(40, 76, 7),  # overlaps the new cell: keeps only its free part
    ]
    found = new_object_masks(proposals, covered, P, typical_area=float(covered.sum()))
    assert len(found) == 2
    np.testing.assert_array_equal(found[0], disk(40, 70, 7))
    assert not (found[0] & found[1]).any() and not (found[1] & covered).any()


def test_new_object_masks_reject_a_wrong_shape() -> None:
    """A proposal of another frame size is a clear error, not a silent broadcast."""
    with pytest.raises(ValueError, match="proposed mask has shape"):
        new_object_masks([np.ones((10, 10), bool)], np.zeros(SHAPE, bool), P)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("min_area", 0, "at least 1 pixel"),
        ("exit_after", 0, "at least 1 frame"),
        ("division_min_fraction", 0.7, r"in \(0, 0.5\]"),
        ("division_area_drop", 1.0, r"in \(0, 1\)"),
        ("entry_every", -1, r"≥ 0 \(0 turns entry detection off\)"),
        ("max_new_overlap", 1.0, r"in \[0, 1\)"),
    ],
)
def test_params_refuse_nonsense(name: str, value: float, message: str) -> None:
    """Each parameter names itself and its valid range when set wrong."""
    with pytest.raises(ValueError, match=f"TrackingParams.{name} must be {message}"):
        TrackingParams(**{name: value})


def test_params_round_trip_and_unknown_names() -> None:
    """to_dict/from_dict round-trips; an unknown name is refused, not ignored."""
    params = TrackingParams(entry_every=3, exit_after=4)
    assert TrackingParams.from_dict(params.to_dict()) == params
    with pytest.raises(ValueError, match="unknown tracking parameter"):
        TrackingParams.from_dict({"entry_evry": 3})
