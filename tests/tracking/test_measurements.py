"""Per-cell, per-frame measurements: known shapes give known numbers, and the CSV holds them."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from napari_sam2.tracking import Lineage, measure_cells, write_measurements_csv


def two_frames() -> tuple[np.ndarray, np.ndarray]:
    labels = np.zeros((2, 10, 12), dtype=np.int32)
    labels[0, 1:3, 1:5] = 4  # 8 px, centroid (1.5, 2.5)
    labels[1, 5:8, 6:9] = 4  # 9 px, centroid (6, 7)
    labels[1, 0:2, 0:2] = 7  # 4 px
    image = np.arange(2 * 10 * 12, dtype=np.uint16).reshape(2, 10, 12)
    return labels, image


def test_measurements_are_exact_for_known_shapes() -> None:
    """Area, centroid and mean intensity per frame and track, sorted by frame then id."""
    labels, image = two_frames()
    lineage = Lineage.from_rows([(4, 0, 1, 0), (7, 1, 1, 4)])
    table = measure_cells(labels, image, lineage)
    assert list(table) == [
        "frame", "track_id", "parent", "area", "centroid_y", "centroid_x", "mean_intensity"
    ]  # fmt: skip
    assert table["frame"].tolist() == [0, 1, 1]
    assert table["track_id"].tolist() == [4, 4, 7]
    assert table["parent"].tolist() == [0, 0, 4]
    assert table["area"].tolist() == [8, 9, 4]
    np.testing.assert_allclose(table["centroid_y"], [1.5, 6.0, 0.5])
    np.testing.assert_allclose(table["centroid_x"], [2.5, 7.0, 0.5])
    expected = [image[t][labels[t] == i].mean() for t, i in [(0, 4), (1, 4), (1, 7)]]
    np.testing.assert_allclose(table["mean_intensity"], expected)


def test_csv_has_a_header_and_a_row_per_cell(tmp_path: Path) -> None:
    """The CSV reads back with the same columns and values."""
    labels, image = two_frames()
    write_measurements_csv(tmp_path / "m.csv", labels, image)
    with open(tmp_path / "m.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["track_id"] for r in rows] == ["4", "4", "7"]
    assert float(rows[1]["centroid_x"]) == 7.0 and rows[2]["area"] == "4"


def test_3d_labels_and_no_image() -> None:
    """3D+t gets a z centroid; without an image there is no intensity column."""
    labels = np.zeros((1, 3, 4, 4), dtype=np.uint16)
    labels[0, 1:3, 1:3, 1:3] = 2
    table = measure_cells(labels)
    assert "mean_intensity" not in table and table["centroid_z"].tolist() == [1.5]
    assert table["area"].tolist() == [8]


def test_image_of_another_shape_is_refused() -> None:
    """The intensity image must match the labels."""
    labels, image = two_frames()
    with pytest.raises(ValueError, match="does not match labels"):
        measure_cells(labels, image[:, :5])
