"""The tracking benchmark generator: every event present, CTC-valid ground truth, seeded."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_sam2.tracking.ctc import ctc_tracks
from sam2.synthetic import make_timelapse
from sam2.synthetic_tracking import make_tracking_timelapse


@pytest.mark.parametrize("seed", range(6))
def test_ground_truth_is_a_valid_ctc_lineage(seed: int) -> None:
    """No gaps, no empty frames, parents end the frame before their daughters start, and the
    lineage rows are exactly what the labels show."""
    data = make_tracking_timelapse(seed=seed)
    tracks, relabel = ctc_tracks(data.labels, {r[0]: r[3] for r in data.lineage}, on_gap="raise")
    assert not relabel
    assert sorted((t.label, t.start, t.end, t.parent) for t in tracks) == sorted(data.lineage)
    ends = {label: end for label, _, end, _ in data.lineage}
    for _, start, _, parent in data.lineage:
        if parent:
            assert ends[parent] == start - 1


@pytest.mark.parametrize("seed", range(6))
def test_every_kind_of_event_happens(seed: int) -> None:
    """3 divisions into 2 daughters, 2 cells entering, 2 leaving (ending without children)."""
    data = make_tracking_timelapse(seed=seed)
    last = data.labels.shape[0] - 1
    parents = [p for *_, p in data.lineage if p]
    assert sorted(np.unique(parents, return_counts=True)[1].tolist()) == [2, 2, 2]
    entering = [r for r in data.lineage if r[1] > 0 and not r[3]]
    leaving = [r for r in data.lineage if r[2] < last and r[0] not in parents]
    assert len(entering) == 2 and len(leaving) == 2
    for label, start, _, _ in entering:  # they come in across the border
        ys, xs = np.nonzero(data.labels[start] == label)
        assert min(ys.min(), xs.min()) == 0 or ys.max() == 191 or xs.max() == 191


def test_daughters_are_born_apart_and_cells_never_touch() -> None:
    """On every frame each cell is one piece that touches no other cell, so a mask that holds
    two daughters falls apart into exactly two pieces."""
    data = make_tracking_timelapse(seed=0)
    for frame in data.labels:
        _, n = ndimage.label(frame > 0, structure=np.ones((3, 3)))
        assert n == len(np.unique(frame)) - 1


def test_seeded_and_16bit() -> None:
    """The same seed gives the same data; images are noisy uint16."""
    a, b = make_tracking_timelapse(n_frames=8, seed=7), make_tracking_timelapse(n_frames=8, seed=7)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.image.dtype == np.uint16 and a.image.std() > 50


def test_the_older_generator_is_unchanged() -> None:
    """make_timelapse (sample data, other tests) keeps its lineage: the new generator was
    added beside it, not into it."""
    data = make_timelapse(n_frames=20, division_frames=(6, 12), seed=0)
    assert data.lineage == [
        (1, 0, 5, 0), (2, 0, 19, 0), (3, 0, 19, 0), (4, 0, 11, 0), (5, 0, 19, 0),
        (6, 0, 19, 0), (7, 6, 19, 1), (8, 6, 19, 1), (9, 12, 19, 4), (10, 12, 19, 4),
    ]  # fmt: skip
