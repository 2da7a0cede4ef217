"""Confirming, undoing and adding divisions by hand keeps labels and lineage consistent."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2.tracking import (
    Lineage,
    TrackingParams,
    add_division,
    confirm_division,
    track_cells,
    undo_division,
)
from napari_sam2.tracking.ctc import ctc_tracks
from sam2.synthetic_tracking import make_tracking_timelapse
from tests.tracking.ground_truth import GroundTruthMaskSource


def check_consistent(labels: np.ndarray, lineage: Lineage) -> None:
    """Each track is present exactly on start..end; CTC's rules hold."""
    for track in lineage:
        present = np.flatnonzero((labels == track.track_id).any(axis=(1, 2)))
        assert present.tolist() == list(range(track.start, track.end + 1)), track
    assert set(np.unique(labels).tolist()) - {0} == set(lineage.tracks)
    ctc_tracks(labels, lineage, on_gap="raise")


@pytest.fixture
def tracked() -> tuple[np.ndarray, Lineage]:
    """A tracked synthetic time-lapse with three automatic divisions."""
    data = make_tracking_timelapse(n_frames=24, seed=2)
    result = track_cells(
        data.image, data.labels[0], 0, GroundTruthMaskSource(data), TrackingParams(entry_every=1)
    )
    assert len(result.lineage.divisions) == 3
    return result.labels, result.lineage


def test_confirm_marks_a_division_reviewed(tracked: tuple[np.ndarray, Lineage]) -> None:
    """Automatic divisions start unconfirmed; confirming one changes only its flag."""
    _, lineage = tracked
    mother = sorted(lineage.divisions)[0]
    assert not lineage.divisions[mother].confirmed
    confirm_division(lineage, mother)
    assert lineage.divisions[mother].confirmed
    with pytest.raises(ValueError, match="has no division"):
        confirm_division(lineage, 999)


def test_undo_merge_makes_the_daughters_the_mother_again(
    tracked: tuple[np.ndarray, Lineage],
) -> None:
    """Merging relabels both daughters with the mother's id from the division on."""
    labels, lineage = tracked
    mother = sorted(lineage.divisions)[0]
    division = lineage.divisions[mother]
    before = np.isin(labels, [mother, *division.daughters])
    touched = undo_division(lineage, labels, mother)
    assert touched == list(range(division.frame, labels.shape[0]))
    np.testing.assert_array_equal(labels == mother, before)
    assert mother not in lineage.divisions
    assert all(d not in lineage for d in division.daughters)
    check_consistent(labels, lineage)


def test_undo_keeping_one_daughter_frees_the_other(tracked: tuple[np.ndarray, Lineage]) -> None:
    """The mother continues as the kept daughter; the other becomes a parentless cell."""
    labels, lineage = tracked
    mother = sorted(lineage.divisions)[-1]
    kept, other = lineage.divisions[mother].daughters
    kept_pixels = labels == kept
    undo_division(lineage, labels, mother, keep=kept)
    np.testing.assert_array_equal(labels[kept_pixels], mother)
    assert lineage[other].parent == 0 and kept not in lineage
    check_consistent(labels, lineage)
    with pytest.raises(ValueError, match="has no division"):
        undo_division(lineage, labels, mother)


def test_add_division_after_a_missed_one(tracked: tuple[np.ndarray, Lineage]) -> None:
    """Undo a division keeping one daughter (what a tracker that missed it gives), then add it
    back by hand: the same masks, the same parent links, a manual confirmed division."""
    labels, lineage = tracked
    mother = sorted(lineage.divisions)[0]
    division = lineage.divisions[mother]
    kept, other = division.daughters
    expected = {d: labels == d for d in division.daughters}
    undo_division(lineage, labels, mother, keep=kept)
    first, sister = add_division(lineage, labels, mother, division.frame, other)
    assert sister == other and lineage[first].parent == mother and lineage[other].parent == mother
    np.testing.assert_array_equal(labels == first, expected[kept])
    np.testing.assert_array_equal(labels == other, expected[other])
    added = lineage.divisions[mother]
    assert added.rule == "manual" and added.confirmed and added.frame == division.frame
    check_consistent(labels, lineage)


def test_add_division_refuses_impossible_links(tracked: tuple[np.ndarray, Lineage]) -> None:
    """A sister that exists before the division, a frame outside the track, or a mother that
    already divides are all refused with a reason."""
    labels, lineage = tracked
    roots = [t for t in lineage if not t.parent and t.track_id not in lineage.divisions]
    long_root = max(roots, key=lambda t: t.end - t.start)
    other_root = next(t for t in roots if t is not long_root and t.start == 0)
    with pytest.raises(ValueError, match="cannot exist before its mother divides"):
        add_division(lineage, labels, long_root.track_id, 5, other_root.track_id)
    with pytest.raises(ValueError, match="must leave it at least one frame"):
        add_division(lineage, labels, long_root.track_id, long_root.start, other_root.track_id)
    mother = sorted(lineage.divisions)[0]
    with pytest.raises(ValueError, match="already divides"):
        add_division(lineage, labels, mother, 3, other_root.track_id)
    with pytest.raises(ValueError, match="does not exist"):
        add_division(lineage, labels, 999, 3, other_root.track_id)
