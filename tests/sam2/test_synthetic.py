"""Synthetic data: deterministic, 16-bit, and its lineage matches its labels."""

from __future__ import annotations

import numpy as np

from sam2.synthetic import make_image, make_timelapse, make_zstack


def test_timelapse_is_deterministic_and_16bit() -> None:
    """The same seed gives the same stack; the image is uint16 with real noise."""
    a, b = make_timelapse(n_frames=5, seed=3), make_timelapse(n_frames=5, seed=3)
    np.testing.assert_array_equal(a.image, b.image)
    assert a.image.dtype == np.uint16 and a.image.std() > 50


def test_lineage_agrees_with_labels() -> None:
    """Each track appears exactly on frames start..end, and daughters name an ended parent."""
    data = make_timelapse(n_frames=20, division_frames=(6, 12), seed=0)
    for track_id, start, end, parent in data.lineage:
        present = [t for t in range(20) if (data.labels[t] == track_id).any()]
        assert present == list(range(start, end + 1)), track_id
        if parent:
            parent_end = next(e for i, _, e, _ in data.lineage if i == parent)
            assert parent_end == start - 1
    assert sum(1 for row in data.lineage if row[3]) == 4  # two divisions, two daughters each


def test_zstack_and_image_shapes() -> None:
    """The z-stack is (Z, Y, X) with objects; the 2D sample is (Y, X)."""
    image, labels = make_zstack(n_slices=10)
    assert image.shape == labels.shape == (10, 256, 256) and labels.max() == 5
    image2d, labels2d = make_image()
    assert image2d.shape == (256, 256) and labels2d.max() > 0
