"""Folders of JPEG frames, preprocessed bit-for-bit like the reference video predictor."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from sam2.frames.base import LazyFrames
from sam2.transforms import IMAGENET_MEAN, IMAGENET_STD

JPEG_SUFFIXES = (".jpg", ".jpeg", ".JPG", ".JPEG")  # the reference's list, case-sensitive

_MEAN = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(3, 1, 1)
_STD = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(3, 1, 1)


def _jpeg_frames(folder: Path) -> list[Path]:
    """JPEG files sorted by their integer names, as the reference orders them."""
    if not folder.is_dir():
        raise FileNotFoundError(f"no such folder: {folder}")
    files = [p for p in folder.iterdir() if p.suffix in JPEG_SUFFIXES]
    if not files:
        raise ValueError(
            f"no JPEG frames ({', '.join(JPEG_SUFFIXES)}) in {folder}; frames must be named "
            "by their index, e.g. 00000.jpg"
        )
    numbers: dict[int, Path] = {}
    for p in files:
        try:
            n = int(p.stem)
        except ValueError:
            raise ValueError(
                f"JPEG frame {p.name!r} in {folder} is not named by an integer frame index "
                "(e.g. 00000.jpg)"
            ) from None
        if n in numbers:
            raise ValueError(f"{numbers[n].name!r} and {p.name!r} in {folder} are both frame {n}")
        numbers[n] = p
    return [numbers[n] for n in sorted(numbers)]


class JpegFolderSource(LazyFrames):
    """A folder of JPEG frames preprocessed bit-for-bit like the reference video predictor.

    PIL ``convert("RGB")`` -> ``resize((S, S))`` (bicubic, on uint8) -> /255 in float64 ->
    float32 -> mean/std. This differs slightly from the image predictor's float resize; it is
    kept so that results match the reference on its own input format.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        image_size: int,
        *,
        cache_size: int = 8,
        prefetch: int = 2,
    ) -> None:
        from PIL import Image

        self.folder = Path(folder)
        self.paths = _jpeg_frames(self.folder)
        with Image.open(self.paths[0]) as img:
            width, height = img.size  # the header only
        self._orig_hw = (height, width)
        super().__init__(len(self.paths), image_size, cache_size, prefetch)

    @property
    def orig_hw(self) -> tuple[int, int]:
        return self._orig_hw

    def _load(self, index: int) -> np.ndarray:  # (S, S, 3) uint8, resized by PIL
        from PIL import Image

        path = self.paths[index]
        with Image.open(path) as img:
            if img.size[::-1] != self._orig_hw:
                raise ValueError(
                    f"frame {path.name} is {img.size[1]}x{img.size[0]} (HxW) but the first frame "
                    f"is {self._orig_hw[0]}x{self._orig_hw[1]}; all frames must be the same size"
                )
            return np.array(img.convert("RGB").resize((self.image_size, self.image_size)))

    def _to_input(self, raw: np.ndarray) -> Tensor:
        # (S, S, 3) uint8 -> float64 in [0, 1] -> (3, S, S) float32, as the reference stores it
        unit = torch.from_numpy(raw / 255.0).permute(2, 0, 1).to(torch.float32)
        return (unit - _MEAN) / _STD
