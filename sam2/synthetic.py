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


def make_tracking_timelapse(
    n_frames: int = 30,
    shape: tuple[int, int] = (192, 192),
    n_cells: int = 8,
    n_divisions: int = 3,
    n_entering: int = 2,
    n_leaving: int = 2,
    seed: int = 0,
    min_visible: int = 30,
    gap: float = 2.0,
) -> SyntheticTimelapse:
    """A tracking benchmark with every event: cells move, divide, enter and leave the field.

    Unlike :func:`make_timelapse`, cells never touch (a soft repulsion keeps ``gap`` pixels
    between them), daughters are born ``gap`` pixels apart, and a cell crossing the border
    counts as in view while at least ``min_visible`` pixels of it are; so the labels obey the
    Cell Tracking Challenge rules (no gaps, no empty frames, parents end before children start).
    """
    rng = np.random.default_rng(seed)
    size = np.array(shape, dtype=np.float64)
    sim = _Simulation(rng, size, gap)
    for _ in range(n_cells):
        sim.place()
    nearest_border = sorted(
        sim.cells, key=lambda c: float(np.min(np.minimum(c.center, size - c.center)))
    )
    for cell in nearest_border[:n_leaving]:
        cell.leave_at = int(rng.integers(n_frames // 4, max(n_frames // 2, n_frames // 4 + 1)))
    enter_at = sorted(int(f) for f in rng.integers(2, max(3, 2 * n_frames // 3), n_entering))
    span = max(n_frames - 8, 1)
    divide_at = [4 + round(i * span / max(n_divisions, 1)) for i in range(n_divisions)]
    image = np.zeros((n_frames, *shape), dtype=np.uint16)
    labels = np.zeros((n_frames, *shape), dtype=np.int32)
    for t in range(n_frames):
        for _ in range(enter_at.count(t)):
            sim.enter(t)
        for _ in range(divide_at.count(t)):
            sim.divide(t)
        sim.move(t)
        sim.draw(t, labels[t], min_visible)
        image[t] = _render(labels[t], {c.track_id: c.brightness for c in sim.cells}, rng)
    rows = []
    for cell in sim.cells:
        present = np.flatnonzero((labels == cell.track_id).any(axis=(1, 2)))
        if len(present):
            rows.append((cell.track_id, int(present[0]), int(present[-1]), cell.parent))
    return SyntheticTimelapse(image=image, labels=labels, lineage=rows)


@dataclass
class _Mover(Cell):
    """A cell of the tracking benchmark: roles decide how it treats the border."""

    role: str = "stay"  # "stay" bounces off the border, "enter"/"leave" cross it
    leave_at: int = -1
    visible: bool = False
    gone: bool = False


class _Simulation:
    """Cells with soft repulsion, divisions, and border crossings (see make_tracking_timelapse)."""

    def __init__(self, rng: np.random.Generator, size: np.ndarray, gap: float) -> None:
        self.rng, self.size, self.gap = rng, size, gap
        self.cells: list[_Mover] = []

    def _new(
        self,
        center: np.ndarray,
        velocity: np.ndarray,
        radius: float,
        round_: bool = False,
        **kw: object,
    ) -> _Mover:
        stretch = 1.0 if round_ else self.rng.uniform(1.0, 1.15)
        cell = _Mover(
            track_id=len(self.cells) + 1,
            center=np.asarray(center, dtype=np.float64),
            velocity=np.asarray(velocity, dtype=np.float64),
            radii=np.array([radius * stretch, radius / stretch]),
            brightness=float(self.rng.uniform(1800, 3500)),
            **kw,  # type: ignore[arg-type]
        )
        self.cells.append(cell)
        return cell

    def alive(self) -> list[_Mover]:
        return [c for c in self.cells if c.end < 0 and not c.gone]

    def place(self) -> None:
        """A new cell at t=0, away from the border and from the others."""
        radius = self.rng.uniform(7.0, 10.0)
        for _ in range(500):
            center = self.rng.uniform(radius * 1.2 + 6, self.size - radius * 1.2 - 6)
            if all(
                np.linalg.norm(center - c.center) > radius * 1.2 + c.radii.max() + self.gap + 4
                for c in self.alive()
            ):
                break
        self._new(center, self.rng.uniform(-1.0, 1.0, 2), radius, start=0)

    def enter(self, t: int) -> None:
        """A cell just outside one border, heading in."""
        radius = self.rng.uniform(7.0, 9.0)
        axis, side = int(self.rng.integers(2)), int(self.rng.integers(2))
        center = self.rng.uniform(radius + 20, self.size - radius - 20)
        center[axis] = -radius if side == 0 else self.size[axis] + radius
        velocity = self.rng.uniform(-0.5, 0.5, 2)
        velocity[axis] = 2.5 if side == 0 else -2.5
        self._new(center, velocity, radius, start=t, role="enter")

    def divide(self, t: int) -> None:
        """The largest settled cell splits along a random axis into two separated daughters."""
        settled = [c for c in self.alive() if c.role == "stay" and c.visible and c.leave_at < 0]
        if not settled:
            return
        mother = max(settled, key=lambda c: float(np.prod(c.radii)))
        mother.end = t - 1
        angle = self.rng.uniform(0, np.pi)
        axis = np.array([np.sin(angle), np.cos(angle)])
        radius = float(mother.radii.max()) / np.sqrt(2.0)
        for sign in (-1.0, 1.0):
            self._new(
                mother.center + sign * axis * (radius + self.gap / 2),
                mother.velocity + sign * axis * 0.7,
                radius,
                round_=True,
                start=t,
                parent=mother.track_id,
            )

    def move(self, t: int) -> None:
        cells = self.alive()
        for c in cells:
            if c.role == "stay" and c.leave_at == t:
                c.role = "leave"
                border = np.minimum(c.center, self.size - c.center)
                axis = int(np.argmin(border))
                c.velocity = np.zeros(2)
                c.velocity[axis] = -3.0 if c.center[axis] < self.size[axis] / 2 else 3.0
            if t > c.start:
                c.center = c.center + c.velocity + self.rng.normal(0.0, 0.2, 2)
                c.radii = np.minimum(c.radii * 1.01, 11.0)
        for _ in range(10):  # soft repulsion: keep ``gap`` free pixels between cells
            for i, a in enumerate(cells):
                for b in cells[i + 1 :]:
                    need = a.radii.max() + b.radii.max() + self.gap
                    delta = b.center - a.center
                    dist = float(np.linalg.norm(delta))
                    if dist < need:
                        push = (delta / max(dist, 1e-6)) * (need - dist) / 2
                        a.center, b.center = a.center - push, b.center + push
        for c in cells:
            lo, hi = c.radii.max() + 2, self.size - c.radii.max() - 2
            if c.role == "enter" and np.all(c.center >= lo) and np.all(c.center <= hi):
                c.role = "stay"
            if c.role == "stay":
                for dim in range(2):
                    if not lo <= c.center[dim] <= hi[dim]:
                        c.velocity[dim] = -c.velocity[dim]
                        c.center[dim] = np.clip(c.center[dim], lo, hi[dim])

    def draw(self, t: int, labels: np.ndarray, min_visible: int) -> None:
        """Paint visible cells; border crossers count only with ``min_visible`` pixels in view."""
        for c in self.alive():
            mask = _ellipse_mask(labels.shape, c.center, c.radii) & (labels == 0)
            enough = int(mask.sum()) >= min_visible
            if c.role == "leave" and c.visible and not enough:
                c.gone, c.end = True, t - 1
                continue
            if c.role in ("enter", "leave") and not enough:
                continue
            if not c.visible:
                c.visible, c.start = True, t
            labels[mask] = c.track_id


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
