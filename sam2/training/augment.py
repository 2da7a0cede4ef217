"""Augmentations for microscopy: flips, 90° rotations, random crops, intensity jitter.

They act on (T, H, W) float images already in [0, 1] (see :mod:`sam2.intensity`) and their
(T, H, W) labels, the same transform for every frame of a clip so tracking stays coherent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AugmentOptions:
    """Which augmentations run, and how strong they are."""

    flips: bool = True
    rot90: bool = True
    crop_fraction: tuple[float, float] = (0.7, 1.0)  # crop side / shorter image side
    gain: tuple[float, float] = (0.75, 1.25)  # contrast, around the image mean
    offset: float = 0.1  # brightness shift, ± this
    gamma: tuple[float, float] = (0.7, 1.4)
    noise: float = 0.02  # extra Gaussian noise, std up to this

    def __post_init__(self) -> None:
        low, high = self.crop_fraction
        if not 0 < low <= high <= 1:
            raise ValueError(
                f"crop_fraction must satisfy 0 < low <= high <= 1, got {self.crop_fraction}"
            )


NO_AUGMENT = AugmentOptions(
    flips=False,
    rot90=False,
    crop_fraction=(1.0, 1.0),
    gain=(1.0, 1.0),
    offset=0.0,
    gamma=(1.0, 1.0),
    noise=0.0,
)


def random_crop(
    image: np.ndarray, labels: np.ndarray, fraction: tuple[float, float], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A random square crop of (T, H, W) arrays, side = fraction × min(H, W)."""
    h, w = image.shape[-2:]
    side = max(round(min(h, w) * rng.uniform(*fraction)), 1)
    y0 = int(rng.integers(0, h - side + 1))
    x0 = int(rng.integers(0, w - side + 1))
    return image[..., y0 : y0 + side, x0 : x0 + side], labels[..., y0 : y0 + side, x0 : x0 + side]


def jitter_intensity(
    image: np.ndarray, options: AugmentOptions, rng: np.random.Generator
) -> np.ndarray:
    """Contrast, brightness, gamma and noise jitter of a [0, 1] image, clipped back to [0, 1]."""
    out = image.astype(np.float32, copy=True)
    mean = float(out.mean())
    out = (out - mean) * rng.uniform(*options.gain) + mean + rng.uniform(-1, 1) * options.offset
    out = np.clip(out, 0.0, 1.0) ** rng.uniform(*options.gamma)
    if options.noise > 0:
        out = out + rng.normal(0.0, rng.uniform(0, options.noise), out.shape).astype(np.float32)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def augment(
    image: np.ndarray, labels: np.ndarray, options: AugmentOptions, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Apply one random draw of every enabled augmentation to (T, H, W) image and labels."""
    image, labels = random_crop(image, labels, options.crop_fraction, rng)
    if options.flips and rng.random() < 0.5:
        image, labels = image[..., ::-1], labels[..., ::-1]
    if options.flips and rng.random() < 0.5:
        image, labels = image[..., ::-1, :], labels[..., ::-1, :]
    if options.rot90:
        k = int(rng.integers(4))
        image, labels = np.rot90(image, k, axes=(-2, -1)), np.rot90(labels, k, axes=(-2, -1))
    image = jitter_intensity(image, options, rng)
    return np.ascontiguousarray(image), np.ascontiguousarray(labels)
