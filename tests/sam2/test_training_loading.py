"""Training data from files: numpy, TIFF, zarr, folders of pairs and CTC ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from sam2.synthetic import make_timelapse
from sam2.training.loading import load_array, load_ctc, load_pair_folders, load_stack


@pytest.fixture(scope="module")
def stack() -> tuple[np.ndarray, np.ndarray]:
    data = make_timelapse(n_frames=4, shape=(96, 96), n_cells=3, division_frames=(), seed=3)
    return data.image, data.labels.astype(np.uint16)


def test_stack_files_of_every_kind_load_the_same(
    tmp_path: Path, stack: tuple[np.ndarray, np.ndarray]
) -> None:
    import zarr

    image, labels = stack
    np.save(tmp_path / "a.npy", image)
    tifffile.imwrite(tmp_path / "a.tif", image, photometric="minisblack")
    zarr.save_array(str(tmp_path / "a.zarr"), image)
    tifffile.imwrite(tmp_path / "a_labels.tif", labels, photometric="minisblack")
    for name in ("a.npy", "a.tif", "a.zarr"):
        np.testing.assert_array_equal(load_array(tmp_path / name), image)
    loaded = load_stack(tmp_path / "a.tif", tmp_path / "a_labels.tif")
    assert loaded.num_frames == 4 and loaded.name == "a.tif"
    np.testing.assert_array_equal(loaded.labels, labels)
    np.save(tmp_path / "obj.npy", np.array([{"x": 1}], dtype=object))
    with pytest.raises(ValueError, match="pickle"):
        load_array(tmp_path / "obj.npy")  # no file we read can run code
    (tmp_path / "x.raw").write_bytes(b"0000")
    with pytest.raises(ValueError, match="unsupported file type"):
        load_array(tmp_path / "x.raw")


def test_pair_folders_match_by_name_and_name_what_is_missing(
    tmp_path: Path, stack: tuple[np.ndarray, np.ndarray]
) -> None:
    image, labels = stack
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    tifffile.imwrite(tmp_path / "img" / "c1.tif", image[0])
    tifffile.imwrite(tmp_path / "img" / "c2.tif", image[1])
    tifffile.imwrite(tmp_path / "lab" / "c1_masks.tif", labels[0])  # as Cellpose names them
    tifffile.imwrite(tmp_path / "lab" / "c2.tif", labels[1])
    stacks = load_pair_folders(tmp_path / "img", tmp_path / "lab")
    assert [s.name for s in stacks] == ["c1.tif", "c2.tif"]
    np.testing.assert_array_equal(stacks[1].labels[0], labels[1])
    tifffile.imwrite(tmp_path / "img" / "c3.tif", image[2])
    with pytest.raises(ValueError, match=r"no label file .* for c3\.tif"):
        load_pair_folders(tmp_path / "img", tmp_path / "lab")


def test_ctc_sequence_uses_the_frames_with_segmentation_truth(
    tmp_path: Path, stack: tuple[np.ndarray, np.ndarray]
) -> None:
    image, labels = stack
    (tmp_path / "01").mkdir()
    (tmp_path / "01_GT" / "SEG").mkdir(parents=True)
    for t in range(4):
        tifffile.imwrite(tmp_path / "01" / f"t{t:03d}.tif", image[t])
    for t in (1, 3):  # gold truth: a few frames only
        tifffile.imwrite(tmp_path / "01_GT" / "SEG" / f"man_seg{t:03d}.tif", labels[t])
    loaded = load_ctc(tmp_path / "01")
    assert loaded.num_frames == 2
    np.testing.assert_array_equal(loaded.image, image[[1, 3]])
    np.testing.assert_array_equal(loaded.labels, labels[[1, 3]])
    with pytest.raises(NotADirectoryError, match="01_ST"):
        load_ctc(tmp_path / "01", truth="ST")
