"""Training data from files: numpy, TIFF and zarr stacks, folders of pairs, CTC ground truth.

Every loader gives :class:`~sam2.training.data.LabeledStack` objects, which check shapes and
refuse empty labels with a message naming the file. Reading never runs code: ``.npy`` files
are loaded with ``allow_pickle=False``.

- :func:`load_stack`: one image file and its label file (``.npy``, ``.tif``/``.tiff``,
  ``.zarr``), a 2D image or a (T or Z, Y, X) stack.
- :func:`load_pair_folders`: a folder of images and a folder of label files matched by name
  (``cell_01.tif`` with ``cell_01.tif`` or ``cell_01_masks.tif``, as Cellpose writes them).
- :func:`load_ctc`: a Cell Tracking Challenge sequence (``01/t000.tif`` ...) with its
  segmentation truth (``01_GT/SEG/man_seg000.tif`` ..., or the silver truth in ``01_ST``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import numpy as np

from sam2.training.data import LabeledStack

__all__ = ["load_array", "load_ctc", "load_pair_folders", "load_stack"]

_SUFFIXES = (".npy", ".tif", ".tiff", ".zarr")


def load_array(path: str | os.PathLike[str]) -> np.ndarray:
    """An image or label array from ``.npy``, ``.tif``/``.tiff`` or ``.zarr``."""
    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(f"training data not found: {file}")
    suffix = file.suffix.lower()
    if suffix == ".npy":
        return np.load(file, allow_pickle=False)
    if suffix in (".tif", ".tiff"):
        import tifffile

        return np.asarray(tifffile.imread(file))
    if suffix == ".zarr":
        try:
            import zarr
        except ImportError as exc:
            raise ImportError(f"reading {file.name} needs zarr: pip install zarr") from exc

        node = zarr.open(str(file), mode="r")
        if isinstance(node, zarr.Group):  # take its first array (OME-Zarr level 0)
            arrays = list(node.arrays())
            if not arrays:
                raise ValueError(f"{file.name} holds no array")
            return np.asarray(arrays[0][1][...])
        return np.asarray(node[...])
    raise ValueError(f"{file.name}: unsupported file type; use one of {', '.join(_SUFFIXES)}")


def load_stack(
    image: str | os.PathLike[str],
    labels: str | os.PathLike[str],
    axis: Literal["T", "Z"] = "T",
) -> LabeledStack:
    """One image (or stack) file and its instance-label file of the same shape."""
    return LabeledStack(load_array(image), load_array(labels), axis, name=Path(image).name)


def _label_file_for(image: Path, labels_dir: Path) -> Path | None:
    for stem in (image.stem, f"{image.stem}_masks", f"{image.stem}_labels", f"{image.stem}_seg"):
        for suffix in _SUFFIXES:
            candidate = labels_dir / f"{stem}{suffix}"
            if candidate.exists():
                return candidate
    return None


def load_pair_folders(
    images_dir: str | os.PathLike[str], labels_dir: str | os.PathLike[str]
) -> list[LabeledStack]:
    """Every image in ``images_dir`` with its label file in ``labels_dir`` (matched by name).

    An image without labels is an error that names it, so a typo does not silently drop data.
    """
    images_path, labels_path = Path(images_dir), Path(labels_dir)
    for folder in (images_path, labels_path):
        if not folder.is_dir():
            raise NotADirectoryError(f"not a folder: {folder}")
    images = sorted(p for p in images_path.iterdir() if p.suffix.lower() in _SUFFIXES)
    if not images:
        raise ValueError(f"no images ({', '.join(_SUFFIXES)}) in {images_path}")
    stacks, missing = [], []
    for image in images:
        label_file = _label_file_for(image, labels_path)
        if label_file is None:
            missing.append(image.name)
            continue
        stacks.append(load_stack(image, label_file))
    if missing:
        raise ValueError(
            f"no label file in {labels_path} for {', '.join(missing[:5])}"
            f"{' ...' if len(missing) > 5 else ''}; name it like the image "
            "(cell.tif -> cell.tif or cell_masks.tif)"
        )
    return stacks


def load_ctc(
    sequence_dir: str | os.PathLike[str], truth: Literal["GT", "ST"] = "GT"
) -> LabeledStack:
    """The frames of a CTC sequence that have segmentation truth, as one stack.

    ``sequence_dir`` is the image folder (``.../01``); the truth is ``.../01_GT/SEG`` (gold,
    often a few frames, so clips drawn from it jump in time) or ``.../01_ST/SEG`` (silver,
    usually every frame). 3D frames are refused: train on their planes with
    :func:`load_stack` instead.
    """
    images_dir = Path(sequence_dir)
    seg_dir = images_dir.parent / f"{images_dir.name}_{truth}" / "SEG"
    if not seg_dir.is_dir():
        raise NotADirectoryError(
            f"no segmentation truth at {seg_dir}; a CTC sequence keeps it in "
            f"<sequence>_GT/SEG (gold) or <sequence>_ST/SEG (silver)"
        )
    frames, labels = [], []
    for seg in sorted(seg_dir.glob("man_seg*.tif")):
        match = re.fullmatch(r"man_seg(\d+)", seg.stem)
        if match is None:  # man_seg_000_012.tif: a single plane of a 3D frame
            continue
        number = match.group(1)
        image = images_dir / f"t{number}.tif"
        if not image.is_file():
            raise FileNotFoundError(f"{seg.name} has no image {image.name} in {images_dir}")
        frames.append(load_array(image))
        labels.append(load_array(seg))
    if not frames:
        raise ValueError(f"no 2D frame truth (man_segTTT.tif) in {seg_dir}")
    if frames[0].ndim != 2:
        raise ValueError(f"{images_dir.name}: frames are {frames[0].ndim}D; pass 2D sequences")
    return LabeledStack(np.stack(frames), np.stack(labels), "T", name=images_dir.name)
