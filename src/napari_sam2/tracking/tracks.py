"""Centroid tracks of a labels stack, in the form napari's Tracks layer takes.

One ``[track_id, t, (z,) y, x]`` row per cell and frame, a ``{child: [parent]}`` graph and a
``parent`` feature. The command line writes ``tracks.csv`` from the same rows, so this stays
napari-free; the widget builds them frame by frame as a run goes (:func:`frame_rows`) and whole
after an edit (:func:`tracks_layer_data`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_sam2.tracking.lineage import Lineage
from napari_sam2.tracking.measurements import frame_centroids

__all__ = ["TracksData", "frame_rows", "tracks_from_rows", "tracks_layer_data"]


@dataclass
class TracksData:
    """What ``viewer.add_tracks(data, graph=graph, features=features)`` takes."""

    data: np.ndarray  # (N, 4) [track_id, t, y, x] or (N, 5) [track_id, t, z, y, x]
    graph: dict[int, list[int]]  # child -> [parent]
    features: dict[str, np.ndarray] = field(default_factory=dict)  # per row


def frame_rows(t: int, frame: np.ndarray) -> np.ndarray:
    """``[track_id, t, (z,) y, x]`` rows (N, 2 + D) of one ([Z,] Y, X) labels frame, by id."""
    ids, centroids = frame_centroids(np.asarray(frame))
    column = np.full((len(ids), 1), t, dtype=np.float64)
    return np.concatenate([ids[:, None].astype(np.float64), column, centroids], 1)


def tracks_from_rows(
    rows: Iterable[np.ndarray], ndim: int, lineage: Lineage | None = None
) -> TracksData:
    """Rows of any frames (see :func:`frame_rows`) of a ``ndim``-D stack, sorted by
    (track_id, t) and linked by ``lineage``.

    The ``graph`` keeps only links whose two ends have rows (napari rejects a graph that names
    a missing track).
    """
    parts = [r for r in rows if len(r)]
    data = np.concatenate(parts) if parts else np.zeros((0, ndim + 2))
    if len(data):
        data = data[np.lexsort((data[:, 1], data[:, 0]))]
    ids = data[:, 0].astype(int)
    present = set(ids.tolist())
    graph: dict[int, list[int]] = {}
    if lineage is not None:
        for child, parent in lineage.parents().items():
            if child in present and parent in present:
                graph[child] = [parent]
    parent_col = np.array(
        [lineage.tracks[i].parent if lineage is not None and i in lineage else 0 for i in ids],
        dtype=np.int64,
    )
    return TracksData(data=data, graph=graph, features={"parent": parent_col})


def tracks_layer_data(labels: Any, lineage: Lineage | None = None) -> TracksData:
    """Centroid tracks of a (T, [Z,] Y, X) labels stack, linked by ``lineage``.

    Rows are sorted by (track_id, t); the ``graph`` keeps only links whose two ends have rows.
    """
    if len(labels.shape) not in (3, 4):
        raise ValueError(
            f"labels must be (T, Y, X) or (T, Z, Y, X) to make tracks, got shape {labels.shape}"
        )
    ndim = len(labels.shape) - 1
    rows = (frame_rows(t, labels[t]) for t in range(labels.shape[0]))
    return tracks_from_rows(rows, ndim, lineage)
