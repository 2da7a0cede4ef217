"""Synthetic microscopy data with known ground truth: noisy 16-bit cells that move and divide.

Part of the library (numpy only) so that its own tests, the training scripts and the plugin's
sample data all draw from one generator: every workflow can be tried offline and, because every
cell's mask and lineage are known, it is the ground truth for tracking and training.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Cell:
    """One cell track: an ellipse that moves with constant velocity and may divide once."""

    track_id: int
    center: np.ndarray  # (2,) y, x
    velocity: np.ndarray  # (2,) pixels per frame
    radii: np.ndarray  # (2,) semi-axes along y, x
    brightness: float
    start: int
    parent: int = 0
    end: int = -1  # last frame (inclusive); -1 while alive


@dataclass
class SyntheticTimelapse:
    """Image stack, ground-truth labels and lineage (CTC-style rows: id, start, end, parent)."""

    image: np.ndarray  # (T, Y, X) uint16
    labels: np.ndarray  # (T, Y, X) int32, track ids
    lineage: list[tuple[int, int, int, int]] = field(default_factory=list)


def _ellipse_mask(shape: tuple[int, int], center: np.ndarray, radii: np.ndarray) -> np.ndarray:
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return ((yy - center[0]) / radii[0]) ** 2 + ((xx - center[1]) / radii[1]) ** 2 <= 1.0


def _render(
    labels: np.ndarray, brightness: dict[int, float], rng: np.random.Generator
) -> np.ndarray:
    """Cells brighter than the background, blurred edges, shot and read noise, 16-bit."""
    from scipy import ndimage

    signal = np.full(labels.shape, 400.0)
    for track_id, level in brightness.items():
        signal[labels == track_id] = level
    signal = ndimage.gaussian_filter(signal, sigma=1.2)
    noisy = rng.poisson(signal).astype(np.float64) + rng.normal(0.0, 60.0, labels.shape)
    return np.clip(noisy, 0, 65535).astype(np.uint16)


def make_timelapse(
    n_frames: int = 24,
    shape: tuple[int, int] = (256, 256),
    n_cells: int = 6,
    division_frames: tuple[int, ...] = (8, 15),
    seed: int = 0,
) -> SyntheticTimelapse:
    """Cells drifting across the field; at each of ``division_frames`` the largest cell divides."""
    rng = np.random.default_rng(seed)
    margin = 30.0
    cells: list[Cell] = []
    for i in range(n_cells):
        cells.append(
            Cell(
                track_id=i + 1,
                center=rng.uniform(margin, np.array(shape) - margin),
                velocity=rng.uniform(-1.5, 1.5, size=2),
                radii=rng.uniform(9.0, 14.0, size=2),
                brightness=float(rng.uniform(1800, 3500)),
                start=0,
            )
        )
    image = np.zeros((n_frames, *shape), dtype=np.uint16)
    labels = np.zeros((n_frames, *shape), dtype=np.int32)
    for t in range(n_frames):
        if t in division_frames:
            alive = [c for c in cells if c.end < 0]
            mother = max(alive, key=lambda c: float(np.prod(c.radii)))
            mother.end = t - 1
            axis = (
                np.array([0.0, 1.0]) if mother.radii[1] >= mother.radii[0] else np.array([1.0, 0.0])
            )
            for sign in (-1.0, 1.0):
                cells.append(
                    Cell(
                        track_id=len(cells) + 1,
                        center=mother.center + sign * axis * mother.radii.max() * 0.6,
                        velocity=mother.velocity + sign * axis * 0.8,
                        radii=mother.radii * 0.75,
                        brightness=mother.brightness,
                        start=t,
                        parent=mother.track_id,
                    )
                )
        for cell in (c for c in cells if c.end < 0):
            if t > cell.start:
                cell.center = cell.center + cell.velocity
            for dim in range(2):  # bounce off the borders so cells stay in view
                if not margin / 2 <= cell.center[dim] <= shape[dim] - margin / 2:
                    cell.velocity[dim] *= -1
                    cell.center[dim] = np.clip(
                        cell.center[dim], margin / 2, shape[dim] - margin / 2
                    )
            mask = _ellipse_mask(shape, cell.center, cell.radii) & (labels[t] == 0)
            labels[t][mask] = cell.track_id
        image[t] = _render(labels[t], {c.track_id: c.brightness for c in cells}, rng)
    for cell in cells:
        if cell.end < 0:
            cell.end = n_frames - 1
    lineage = [(c.track_id, c.start, c.end, c.parent) for c in cells]
    return SyntheticTimelapse(image=image, labels=labels, lineage=lineage)


def make_zstack(
    n_slices: int = 24, shape: tuple[int, int] = (256, 256), n_cells: int = 5, seed: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Ellipsoidal nuclei in a (Z, Y, X) stack: 16-bit image and ground-truth labels."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.ogrid[:n_slices, : shape[0], : shape[1]]
    labels = np.zeros((n_slices, *shape), dtype=np.int32)
    brightness: dict[int, float] = {}
    for i in range(n_cells):
        c = rng.uniform([4, 30, 30], [n_slices - 4, shape[0] - 30, shape[1] - 30])
        r = rng.uniform([4, 12, 12], [8, 20, 20])
        inside = ((zz - c[0]) / r[0]) ** 2 + ((yy - c[1]) / r[1]) ** 2 + (
            (xx - c[2]) / r[2]
        ) ** 2 <= 1
        labels[inside & (labels == 0)] = i + 1
        brightness[i + 1] = float(rng.uniform(1800, 3500))
    image = np.stack([_render(labels[z], brightness, rng) for z in range(n_slices)])
    return image, labels


def make_image(shape: tuple[int, int] = (256, 256), seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """One 2D 16-bit frame with a few cells, and its ground-truth labels."""
    data = make_timelapse(n_frames=1, shape=shape, n_cells=7, division_frames=(), seed=seed)
    return data.image[0], data.labels[0]
