"""Centroid tracks in napari's Tracks form."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2.tracking import Lineage, tracks_layer_data
from tests.tracking.test_lineage import small_lineage


def test_tracks_layer_data_has_centroids_and_graph() -> None:
    """One (id, t, y, x) row per cell and frame, sorted; the graph links present tracks, and
    napari's Tracks layer accepts it."""
    labels = np.zeros((5, 20, 20), dtype=np.int32)
    labels[:3, 2:6, 2:6] = 1  # centroid (3.5, 3.5)
    labels[:5, 10:12, 10:14] = 2
    labels[3:, 2:4, 2:4] = 3
    labels[3:, 6:8, 2:4] = 4
    tracks = tracks_layer_data(labels, small_lineage())
    assert tracks.data.shape == (3 + 5 + 2 + 2, 4)
    np.testing.assert_allclose(tracks.data[0], [1, 0, 3.5, 3.5])
    assert tracks.data[:, 0].tolist() == sorted(tracks.data[:, 0].tolist())
    assert tracks.graph == {3: [1], 4: [1]}
    assert tracks.features["parent"].tolist() == [0] * 8 + [1] * 4
    from napari.layers import Tracks

    layer = Tracks(tracks.data, graph=tracks.graph)
    assert layer.graph == {3: [1], 4: [1]}


def test_tracks_layer_data_in_3d_and_without_a_missing_parent() -> None:
    """3D+t labels give (id, t, z, y, x) rows; a link to a track without masks is dropped."""
    labels = np.zeros((2, 4, 8, 8), dtype=np.int32)
    labels[1, 1:3, 2:4, 2:4] = 5
    lineage = Lineage()
    lineage.add_track(0, track_id=2)
    lineage.add_track(1, parent=2, track_id=5)
    tracks = tracks_layer_data(labels, lineage)
    np.testing.assert_allclose(tracks.data, [[5, 1, 1.5, 2.5, 2.5]])
    assert tracks.graph == {}
    with pytest.raises(ValueError, match=r"\(T, Y, X\) or \(T, Z, Y, X\)"):
        tracks_layer_data(np.zeros((4, 4), int))
