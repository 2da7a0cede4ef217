"""Per-cell, per-frame measurements of a tracked stack: area, centroid, mean intensity.

One row per (frame, track) in the order a spreadsheet or pandas expects; the columns are the
same whether the stack is 2D+t or 3D+t (``centroid_z`` only in 3D).
"""

from __future__ import annotations

import csv
import os
from typing import Any

import numpy as np

from napari_sam2.tracking.lineage import Lineage

__all__ = ["frame_centroids", "measure_cells", "write_measurements_csv"]

_AXES = ("z", "y", "x")


def frame_centroids(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ids (N,) and centroids (N, D) of the objects in one labels frame, sorted by id."""
    from skimage.measure import regionprops_table

    table = regionprops_table(
        np.asarray(frame).astype(np.int64, copy=False), properties=("label", "centroid")
    )
    ids = np.asarray(table["label"], dtype=np.int64)
    centroids = (
        np.stack(
            [np.asarray(table[f"centroid-{d}"], np.float64) for d in range(frame.ndim)], axis=1
        )
        if len(ids)
        else np.zeros((0, frame.ndim))
    )
    return ids, centroids


def measure_cells(
    labels: Any, image: Any | None = None, lineage: Lineage | None = None
) -> dict[str, np.ndarray]:
    """Columns ``frame, track_id, parent, area, centroid_[z,]y/x[, mean_intensity]``.

    ``labels`` and ``image`` are (T, [Z,] Y, X) arrays of the same shape (numpy, memmap, zarr or
    dask: read one frame at a time); without ``image`` there is no intensity column.
    """
    from skimage.measure import regionprops_table

    shape = tuple(labels.shape)
    if len(shape) not in (3, 4):
        raise ValueError(f"labels must be (T, Y, X) or (T, Z, Y, X), got shape {shape}")
    if image is not None and tuple(image.shape) != shape:
        raise ValueError(
            f"image of shape {tuple(image.shape)} does not match labels of shape {shape}; "
            "measure a single-channel stack with the labels' shape"
        )
    ndim = len(shape) - 1
    axes = _AXES[3 - ndim :]
    props = ["label", "area", "centroid"] + (["intensity_mean"] if image is not None else [])
    columns: dict[str, list[np.ndarray]] = {"frame": [], "track_id": [], "area": []}
    for axis in axes:
        columns[f"centroid_{axis}"] = []
    if image is not None:
        columns["mean_intensity"] = []
    for t in range(shape[0]):
        frame = np.asarray(labels[t]).astype(np.int64, copy=False)
        intensity = None if image is None else np.asarray(image[t], dtype=np.float64)
        table = regionprops_table(frame, intensity_image=intensity, properties=props)
        n = len(table["label"])
        columns["frame"].append(np.full(n, t, dtype=np.int64))
        columns["track_id"].append(np.asarray(table["label"], np.int64))
        columns["area"].append(np.asarray(table["area"], np.int64))
        for d, axis in enumerate(axes):
            columns[f"centroid_{axis}"].append(np.asarray(table[f"centroid-{d}"], np.float64))
        if image is not None:
            columns["mean_intensity"].append(np.asarray(table["intensity_mean"], np.float64))
    out = {name: np.concatenate(parts) for name, parts in columns.items()}
    parents = lineage.parents() if lineage is not None else {}
    out["parent"] = np.array([parents.get(int(i), 0) for i in out["track_id"]], dtype=np.int64)
    order = ["frame", "track_id", "parent", "area", *[f"centroid_{a}" for a in axes]]
    if image is not None:
        order.append("mean_intensity")
    return {name: out[name] for name in order}


def write_measurements_csv(
    path: str | os.PathLike[str],
    labels: Any,
    image: Any | None = None,
    lineage: Lineage | None = None,
) -> dict[str, np.ndarray]:
    """Measure (see :func:`measure_cells`) and write one CSV row per cell and frame."""
    table = measure_cells(labels, image, lineage)
    names = list(table)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        for i in range(len(table["frame"])):
            writer.writerow([_fmt(table[n][i]) for n in names])
    return table


def _fmt(value: Any) -> str:
    if isinstance(value, np.floating | float):
        return f"{float(value):.6g}"
    return str(value)
