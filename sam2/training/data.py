"""Training data: image stacks with instance labels, split, sampled into image and clip batches.

A :class:`LabeledStack` is one (T or Z, Y, X) image with labels of the same shape (0 is
background, other values instance ids, constant along T for a track). Loaders for tif, zarr
or Cell Tracking Challenge folders only need to produce these. :class:`StackDataset` draws
augmented, resized, normalised batches from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sam2.intensity import choose_limits, to_unit_range
from sam2.training.augment import AugmentOptions, augment
from sam2.transforms import IMAGENET_MEAN, IMAGENET_STD


@dataclass
class LabeledStack:
    """One stack and its instance labels; a 2D image is a stack of one plane."""

    image: np.ndarray  # (T, Y, X) any int/float dtype, or (Y, X)
    labels: np.ndarray  # same shape, integer ids
    axis: Literal["T", "Z"] = "T"
    name: str = "stack"

    def __post_init__(self) -> None:
        image, labels = np.asarray(self.image), np.asarray(self.labels)
        if image.ndim == 2:
            image = image[None]
        if labels.ndim == 2:
            labels = labels[None]
        if image.ndim != 3:
            raise ValueError(
                f"{self.name}: expected a (Y, X) image or a (T|Z, Y, X) stack, got shape "
                f"{np.asarray(self.image).shape}; pass one channel"
            )
        if labels.shape != image.shape:
            raise ValueError(
                f"{self.name}: labels of shape {labels.shape} do not match the image's "
                f"{image.shape}; each plane needs its label plane of the same size"
            )
        if not np.issubdtype(labels.dtype, np.integer) and labels.dtype != np.bool_:
            raise ValueError(f"{self.name}: labels must be integers, got {labels.dtype}")
        if not labels.any():
            raise ValueError(f"{self.name}: the labels are empty (all 0); nothing to learn from")
        self.image, self.labels = image, labels.astype(np.int64, copy=False)
        self.unit = to_unit_range(image, choose_limits(image))  # once per stack, as inference

    @property
    def num_frames(self) -> int:
        return int(self.image.shape[0])


@dataclass
class ImageBatch:
    images: Tensor  # (I, 3, S, S) normalised
    targets: Tensor  # (N, 1, S, S) bool
    image_index: Tensor  # (N,) long: image of each object


@dataclass
class ClipBatch:
    images: Tensor  # (C·T, 3, S, S) normalised, clip-major
    targets: Tensor  # (T, N, 1, S, S) bool
    clip_index: Tensor  # (N,) long: clip of each object


def normalise(unit: np.ndarray, size: int) -> Tensor:
    """(T, H, W) [0, 1] planes -> (T, 3, S, S) model input, as sam2.transforms.preprocess."""
    x = torch.from_numpy(np.ascontiguousarray(unit, dtype=np.float32))[:, None]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x.expand(-1, 3, -1, -1) - mean) / std


def resize_labels(labels: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W) ids -> (T, S, S) by nearest neighbour."""
    _t, h, w = labels.shape
    ys = np.minimum(((np.arange(size) + 0.5) * h / size).astype(int), h - 1)
    xs = np.minimum(((np.arange(size) + 0.5) * w / size).astype(int), w - 1)
    return labels[:, ys][:, :, xs]


def train_val_split(
    stacks: Sequence[LabeledStack], val_fraction: float = 0.2, seed: int = 0
) -> tuple[list[LabeledStack], list[LabeledStack]]:
    """Whole stacks held out for validation; a single stack is split into two frame ranges."""
    if not stacks:
        raise ValueError("no stacks to split")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    if len(stacks) == 1:
        s = stacks[0]
        if s.num_frames < 2:
            raise ValueError(f"{s.name}: one plane cannot be split; give a validation stack")
        cut = max(1, min(s.num_frames - 1, round(s.num_frames * (1 - val_fraction))))
        part = [
            LabeledStack(s.image[a:b], s.labels[a:b], s.axis, f"{s.name}[{a}:{b}]")
            for a, b in ((0, cut), (cut, s.num_frames))
        ]
        return [part[0]], [part[1]]
    order = np.random.default_rng(seed).permutation(len(stacks))
    n_val = max(1, round(len(stacks) * val_fraction))
    val = [stacks[i] for i in sorted(order[:n_val])]
    return [stacks[i] for i in sorted(order[n_val:])], val


class StackDataset:
    """Random augmented image and clip batches from labelled stacks."""

    def __init__(
        self,
        stacks: Sequence[LabeledStack],
        image_size: int,
        augment_options: AugmentOptions | None = None,
        min_area: int = 20,
    ) -> None:
        if not stacks:
            raise ValueError("a StackDataset needs at least one LabeledStack")
        self.stacks = list(stacks)
        self.image_size = image_size
        self.augment = augment_options or AugmentOptions()
        self.min_area = min_area
        self._weights = np.array([s.num_frames for s in self.stacks], dtype=np.float64)

    def _draw(
        self, rng: np.random.Generator, num_frames: int, max_objects: int
    ) -> tuple[Tensor, np.ndarray, list[int]]:
        """One augmented (T, 3, S, S) clip, its (T, S, S) labels, objects seen in frame 0."""
        ok = np.array([s.num_frames >= num_frames for s in self.stacks])
        if not ok.any():
            longest = max(s.num_frames for s in self.stacks)
            raise ValueError(
                f"clips of {num_frames} frames need a stack that long; the longest has "
                f"{longest} (a single frame cannot train the video memory)"
            )
        p = self._weights * ok
        for _ in range(20):
            stack = self.stacks[int(rng.choice(len(self.stacks), p=p / p.sum()))]
            start = int(rng.integers(0, stack.num_frames - num_frames + 1))
            unit = stack.unit[start : start + num_frames]
            labels = stack.labels[start : start + num_frames]
            if num_frames > 1 and rng.random() < 0.5:  # time (or z) runs backwards too
                unit, labels = unit[::-1], labels[::-1]
            unit, labels = augment(unit, labels, self.augment, rng)
            labels = resize_labels(labels, self.image_size)
            values, counts = np.unique(labels[0], return_counts=True)
            ids = [int(i) for i, c in zip(values, counts) if i != 0 and c >= self.min_area]
            if ids:
                chosen = rng.permutation(ids)[:max_objects].tolist()
                return normalise(unit, self.image_size), labels, chosen
        raise ValueError("could not draw a crop holding an object; lower min_area or crop less")

    def image_batch(
        self, rng: np.random.Generator, num_images: int, max_objects: int
    ) -> ImageBatch:
        images, targets, index = [], [], []
        for i in range(num_images):
            image, labels, ids = self._draw(rng, 1, max_objects)
            images.append(image)
            targets += [torch.from_numpy(labels[0] == obj)[None] for obj in ids]
            index += [i] * len(ids)
        return ImageBatch(torch.cat(images), torch.stack(targets), torch.tensor(index))

    def clip_batch(
        self, rng: np.random.Generator, num_clips: int, num_frames: int, max_objects: int
    ) -> ClipBatch:
        if num_frames < 2:
            raise ValueError(f"video clips need at least 2 frames, got {num_frames}")
        images, targets, index = [], [], []
        for c in range(num_clips):
            clip, labels, ids = self._draw(rng, num_frames, max_objects)
            images.append(clip)
            targets += [torch.from_numpy(labels == obj)[:, None] for obj in ids]  # (T, 1, S, S)
            index += [c] * len(ids)
        return ClipBatch(torch.cat(images), torch.stack(targets, dim=1), torch.tensor(index))
