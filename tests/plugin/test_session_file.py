"""Session files: prompts, boxes and labels saved beside the data and opened again."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from napari.layers import Image, Labels

from napari_sam2.layers import OBJECT_ID, POLARITY, new_points_layer
from napari_sam2.prompts import load_prompts, save_prompts
from napari_sam2.segment.boxes import new_shapes_layer
from napari_sam2.segment.layer_prompts import prompt_layers, read_prompts


@pytest.fixture
def image() -> Image:
    return Image(np.zeros((6, 40, 50), np.uint16), name="stack", scale=(1.0, 2.0, 2.0))


def _layers(image: Image) -> tuple:
    points = new_points_layer(image)
    points.data = np.array([[1.0, 10.0, 12.0], [1.0, 20.0, 5.0], [4.0, 30.0, 40.0]])
    features = points.features
    features[POLARITY] = np.array([True, False, True])
    features[OBJECT_ID] = np.array([1, 1, 3])
    points.features = features
    shapes = new_shapes_layer(image)
    shapes.feature_defaults = {OBJECT_ID: 3}
    corners = np.array([[2, 5, 6], [2, 5, 30], [2, 20, 30], [2, 20, 6]], dtype=float)
    shapes.add_rectangles(corners)
    labels = Labels(np.zeros((6, 40, 50), np.uint32), scale=(1.0, 2.0, 2.0))
    labels.data[1, 5:9, 5:9] = 1
    labels.data[4, 0:3, 0:3] = 70_000  # beyond uint16: ids are kept exactly
    return points, shapes, labels


def test_round_trip_keeps_every_prompt_and_label(image: Image, tmp_path: Path) -> None:
    points, shapes, labels = _layers(image)
    session = read_prompts(image, points, shapes, labels=labels, video_axis=0)
    path = save_prompts(session, tmp_path / "stack")
    assert path.name == "stack.sam2.json" and (tmp_path / "stack.labels.tif").is_file()
    loaded = load_prompts(path)
    assert loaded.points == session.points and loaded.boxes == session.boxes
    assert loaded.video_axis == 0 and loaded.object_ids == [1, 3, 70_000]
    np.testing.assert_array_equal(loaded.labels, labels.data)
    new_points, new_shapes, new_labels = prompt_layers(loaded, image)
    np.testing.assert_array_equal(new_points.data, points.data)
    assert new_points.features[POLARITY].tolist() == [True, False, True]
    assert new_points.features[OBJECT_ID].tolist() == [1, 1, 3]
    assert new_shapes.features[OBJECT_ID].tolist() == [3]
    np.testing.assert_array_equal(new_shapes.data[0][:, 0], [2, 2, 2, 2])
    assert new_labels is not None and new_labels.data.dtype == np.uint32
    np.testing.assert_array_equal(new_labels.data, labels.data)


def test_a_session_without_labels(image: Image, tmp_path: Path) -> None:
    points, _, _ = _layers(image)
    path = save_prompts(read_prompts(image, points), tmp_path / "p.sam2.json")
    loaded = load_prompts(path)
    assert loaded.labels is None and len(loaded.points) == 3 and loaded.boxes == []
    assert not (tmp_path / "p.labels.tif").exists()


def test_bad_files_are_explained(image: Image, tmp_path: Path) -> None:
    points, shapes, labels = _layers(image)
    path = save_prompts(read_prompts(image, points, shapes, labels=labels), tmp_path / "s")
    (tmp_path / "s.labels.tif").unlink()
    with pytest.raises(ValueError, match=r"labels of s.sam2.json \(s.labels.tif\) are missing"):
        load_prompts(path)
    other = tmp_path / "other.sam2.json"
    other.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="not a napari-sam2 session file"):
        load_prompts(other)
    other.write_text("{not json")
    with pytest.raises(ValueError, match="not a napari-sam2 session file"):
        load_prompts(other)
    document = json.loads(path.read_text())
    document["version"] = 99
    other.write_text(json.dumps(document))
    with pytest.raises(ValueError, match="written by a newer napari-sam2"):
        load_prompts(other)
    small = Image(np.zeros((6, 20, 50), np.uint16), name="small")
    with pytest.raises(ValueError, match=r"saved for an image of shape \(6, 40, 50\)"):
        prompt_layers(read_prompts(image, points), small)
    with pytest.raises(ValueError, match="Labels layer 'x' has shape"):
        read_prompts(image, labels=Labels(np.zeros((2, 2), np.uint8), name="x"))


def test_saving_never_replaces_existing_files_unless_told(image: Image, tmp_path: Path) -> None:
    """An existing ``<name>.labels.tif`` (e.g. corrected by hand) raises FileExistsError
    naming it and stays as it was; ``overwrite=True`` replaces both files, leaving no
    temporary file behind."""
    import tifffile

    points, shapes, labels = _layers(image)
    session = read_prompts(image, points, shapes, labels=labels)
    corrected = np.full((6, 40, 50), 9, np.uint16)
    tifffile.imwrite(tmp_path / "s.labels.tif", corrected)
    with pytest.raises(FileExistsError, match=r"^s\.labels\.tif already exists in "):
        save_prompts(session, tmp_path / "s")
    assert not (tmp_path / "s.sam2.json").exists()
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "s.labels.tif"), corrected)
    path = save_prompts(session, tmp_path / "s", overwrite=True)
    with pytest.raises(FileExistsError, match=r"s\.sam2\.json and s\.labels\.tif already"):
        save_prompts(session, tmp_path / "s")
    np.testing.assert_array_equal(load_prompts(path).labels, labels.data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.labels.tif", "s.sam2.json"]
