"""Lineage bookkeeping."""

from __future__ import annotations

import pytest

from napari_sam2.tracking import Lineage, TrackDivided, TrackEnded, TracksSeen, TrackStarted


def small_lineage() -> Lineage:
    """1 and 2 from frame 0; 1 divides on frame 3 into 3 and 4; 2 ends on frame 4."""
    lineage = Lineage()
    one, two = lineage.add_track(0), lineage.add_track(0)
    for t in range(3):
        lineage.mark_present(one.track_id, t)
    for t in range(5):
        lineage.mark_present(two.track_id, t)
    lineage.close(two.track_id)
    lineage.divide(one.track_id, 3)
    return lineage


def test_divide_ends_the_mother_and_links_daughters() -> None:
    """The mother closes on its last frame; daughters start on the division frame."""
    lineage = small_lineage()
    assert lineage.rows() == [(1, 0, 2, 0), (2, 0, 4, 0), (3, 3, 3, 1), (4, 3, 3, 1)]
    assert lineage.graph() == {3: [1], 4: [1]}
    assert lineage.children(1) == [3, 4]
    assert lineage.active_ids() == [3, 4]
    assert lineage.divisions[1].daughters == (3, 4) and lineage.divisions[1].rule == "split"


def test_ids_are_never_reused_and_must_be_valid() -> None:
    """New ids go above every id seen; duplicate, non-positive and orphan ids are refused."""
    lineage = Lineage()
    lineage.add_track(0, track_id=7)
    assert lineage.add_track(1).track_id == 8
    with pytest.raises(ValueError, match="already used"):
        lineage.add_track(0, track_id=7)
    with pytest.raises(ValueError, match="positive"):
        lineage.add_track(0, track_id=0)
    with pytest.raises(ValueError, match=r"parent track 3 .* does not exist"):
        lineage.add_track(0, parent=3)


def test_a_mother_present_on_the_division_frame_cannot_divide() -> None:
    """Daughters must start after the mother's last frame (CTC rule)."""
    lineage = Lineage()
    lineage.add_track(0)
    lineage.mark_present(1, 4)
    with pytest.raises(ValueError, match="present on frame 4"):
        lineage.divide(1, 4)


def test_dict_round_trip_keeps_divisions_and_review_state() -> None:
    """to_dict → from_dict gives the same rows and divisions (confirmed flag included)."""
    lineage = small_lineage()
    lineage.divisions[1].confirmed = True
    again = Lineage.from_dict(lineage.to_dict())
    assert again.rows() == lineage.rows()
    assert again.divisions[1].confirmed and again.divisions[1].daughters == (3, 4)
    assert again.next_id() == 5


def test_rows_make_divisions_and_refuse_cycles() -> None:
    """Rows with two children per parent become (confirmed) divisions; a cycle is an error."""
    lineage = Lineage.from_rows([(4, 3, 5, 1), (1, 0, 2, 0), (3, 3, 5, 1)])
    assert lineage.divisions[1].daughters == (3, 4) and lineage.divisions[1].frame == 3
    with pytest.raises(ValueError, match="cycle"):
        Lineage.from_rows([(1, 0, 2, 2), (2, 3, 4, 1)])
    with pytest.raises(ValueError, match="names parent 9"):
        Lineage.from_rows([(1, 0, 2, 9)])


def test_events_rebuild_the_lineage() -> None:
    """Started, seen, ended and divided events applied in order give the same rows,
    divisions and active tracks as the building calls; anything else is a TypeError."""
    lineage = Lineage()
    lineage.apply_all(
        [
            TrackStarted(0, 1),
            TrackStarted(0, 2),
            TracksSeen(2, (1, 2)),
            TracksSeen(4, (2,)),
            TrackEnded(4, 2),
            TrackDivided(3, 1, (3, 4), "split"),
        ]
    )
    expected = small_lineage()
    assert lineage.to_dict() == expected.to_dict()
    assert lineage.active_ids() == expected.active_ids() == [3, 4]
    assert lineage.new_ids(2) == (5, 6)
    with pytest.raises(TypeError, match="not a lineage event"):
        lineage.apply("divide 1")  # type: ignore[arg-type]
