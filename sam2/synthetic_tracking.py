"""A cell-tracking benchmark with known ground truth: cells move, divide, enter and leave.

The default time-lapse keeps cells apart and divides them cleanly, so every event is easy to
see. :class:`HardCases` switches on what makes divisions hard for a tracker that follows
SAM 2's masks: daughters born touching that drift apart over several frames, daughters of
unequal size, cells dividing against the image border, and cells missing for a frame or two
(out of focus), one of them dividing while it is missing. The labels always obey the Cell
Tracking Challenge rules: a cell that comes back after a gap continues under a new label whose
parent is its label before the gap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sam2.synthetic import Cell, SyntheticTimelapse, _ellipse_mask, _render

__all__ = ["HardCases", "make_tracking_timelapse"]


@dataclass(frozen=True)
class HardCases:
    """The difficult geometries of :func:`make_tracking_timelapse` (all off by default).

    Attributes:
        touching_daughters: daughters are born overlapping by 15 % of their radii sum (so
            they touch along a straight line) and reach the usual gap only after
            ``separate_frames`` frames, as dividing cells do.
        separate_frames: frames touching daughters take to move apart.
        daughter_size_ratio: radius of the smaller daughter over the larger one (1: equal).
        border_divisions: this many of the divisions happen to cells that hug the image
            border (part of the cell outside the frame), and their daughters stay there.
        gaps: this many cells go missing for 1 to ``max_gap`` frames (not drawn) and come back.
        max_gap: the longest gap in frames.
        division_in_gap: the last division happens while its mother is missing: the mother
            is not drawn on the ``max_gap`` frames before its daughters appear.
    """

    touching_daughters: bool = False
    separate_frames: int = 8
    daughter_size_ratio: float = 1.0
    border_divisions: int = 0
    gaps: int = 0
    max_gap: int = 2
    division_in_gap: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.daughter_size_ratio <= 1:
            raise ValueError(
                f"daughter_size_ratio must be in (0, 1], got {self.daughter_size_ratio}"
            )
        if self.separate_frames < 1 or self.max_gap < 1:
            raise ValueError("separate_frames and max_gap must be at least 1 frame")


_TOUCH = 0.85  # touching daughters start with centres this fraction of their radii sum apart
_BORDER_INSIDE = 0.6  # a border cell's centre lies this many radii inside the frame


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
    hard: HardCases | None = None,
) -> SyntheticTimelapse:
    """A tracking benchmark with every event: cells move, divide, enter and leave the field.

    Unlike :func:`~sam2.synthetic.make_timelapse`, cells never touch (a soft repulsion keeps
    ``gap`` pixels between them), daughters are born ``gap`` pixels apart, and a cell crossing
    the border counts as in view while at least ``min_visible`` pixels of it are; so the labels
    obey the Cell Tracking Challenge rules (no gaps, no empty frames, parents end before
    children start). ``hard`` adds the difficult cases of :class:`HardCases`; without it the
    same seed gives the same time-lapse as before those cases existed.
    """
    hard = hard or HardCases()
    rng = np.random.default_rng(seed)
    size = np.array(shape, dtype=np.float64)
    sim = _Simulation(rng, size, gap, hard)
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
    sim.plan(divide_at, n_frames)
    image = np.zeros((n_frames, *shape), dtype=np.uint16)
    labels = np.zeros((n_frames, *shape), dtype=np.int32)
    brightness: dict[int, float] = {}
    for t in range(n_frames):
        for _ in range(enter_at.count(t)):
            sim.enter(t)
        for _ in range(divide_at.count(t)):
            mother = sim.divide(t)
            if mother is not None and t == sim.gap_mother_at:  # missing, then divided
                for before in range(max(t - sim.hard.max_gap, 1), t):
                    labels[before][labels[before] == mother.track_id] = 0
                    image[before] = _render(labels[before], brightness, rng)
        sim.move(t)
        sim.draw(t, labels[t], min_visible)
        brightness = {c.track_id: c.brightness for c in sim.cells}
        image[t] = _render(labels[t], brightness, rng)
    return SyntheticTimelapse(image=image, labels=labels, lineage=_lineage(labels, sim.cells))


def _lineage(labels: np.ndarray, cells: list[_Mover]) -> list[tuple[int, int, int, int]]:
    """CTC rows (label, start, end, parent); a cell back from a gap gets a new label whose
    parent is its label before the gap (relabelled in ``labels`` in place)."""
    rows = []
    next_label = len(cells) + 1
    last_label: dict[int, int] = {}  # a cell's label after its last gap, for its daughters
    for cell in cells:
        present = np.flatnonzero((labels == cell.track_id).any(axis=(1, 2)))
        if not len(present):
            continue
        breaks = np.flatnonzero(np.diff(present) > 1) + 1
        label, parent = cell.track_id, last_label.get(cell.parent, cell.parent)
        for k, run in enumerate(np.split(present, breaks)):
            if k:
                labels[run[0] : run[-1] + 1][labels[run[0] : run[-1] + 1] == cell.track_id] = (
                    next_label
                )
                parent, label, next_label = label, next_label, next_label + 1
            rows.append((label, int(run[0]), int(run[-1]), parent))
        last_label[cell.track_id] = label
    return rows


def _reach(shape: tuple[int, int], cell: Cell) -> np.ndarray:
    """How far each pixel lies from a cell's centre, in units of its radius (1 at its edge)."""
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return np.sqrt(
        ((yy - cell.center[0]) / cell.radii[0]) ** 2 + ((xx - cell.center[1]) / cell.radii[1]) ** 2
    )


@dataclass
class _Mover(Cell):
    """A cell of the tracking benchmark: roles decide how it treats the border."""

    role: str = "stay"  # "stay" bounces off the border, "enter"/"leave" cross it, "border" hugs it
    leave_at: int = -1
    visible: bool = False
    gone: bool = False
    sister: int = 0  # a touching daughter's sister, while they move apart
    hidden: set[int] = field(default_factory=set)  # frames on which it is not drawn


class _Simulation:
    """Cells with soft repulsion, divisions, and border crossings (see make_tracking_timelapse)."""

    def __init__(
        self, rng: np.random.Generator, size: np.ndarray, gap: float, hard: HardCases
    ) -> None:
        self.rng, self.size, self.gap, self.hard = rng, size, gap, hard
        self.cells: list[_Mover] = []
        self.border_mothers: list[_Mover] = []
        self.gap_mother_at = -1

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

    def plan(self, divide_at: list[int], n_frames: int) -> None:
        """Pick the hard cases' cells once the seed cells are placed (no draws without them)."""
        hard = self.hard
        free = [c for c in self.cells if c.leave_at < 0]
        if hard.border_divisions:
            free.sort(key=lambda c: float(np.min(np.minimum(c.center, self.size - c.center))))
            for cell in free[: hard.border_divisions]:
                self._to_border(cell)
            free = free[hard.border_divisions :]
        if hard.division_in_gap and divide_at:
            self.gap_mother_at = divide_at[-1]
        for cell in free[len(free) - hard.gaps :] if hard.gaps else []:
            length = int(self.rng.integers(1, hard.max_gap + 1))
            first = int(self.rng.integers(3, max(n_frames - length - 3, 4)))
            cell.hidden = set(range(first, first + length))

    def _to_border(self, cell: _Mover) -> None:
        """Move a seed cell onto its nearest border, a fifth of its width outside the frame."""
        border = np.minimum(cell.center, self.size - cell.center)
        axis = int(np.argmin(border))
        low = cell.center[axis] < self.size[axis] / 2
        inside = cell.radii.max() * _BORDER_INSIDE
        cell.center[axis] = inside if low else self.size[axis] - inside
        cell.velocity[axis] = 0.0
        cell.role = "border"
        self.border_mothers.append(cell)

    def enter(self, t: int) -> None:
        """A cell just outside one border, heading in."""
        radius = self.rng.uniform(7.0, 9.0)
        axis, side = int(self.rng.integers(2)), int(self.rng.integers(2))
        center = self.rng.uniform(radius + 20, self.size - radius - 20)
        center[axis] = -radius if side == 0 else self.size[axis] + radius
        velocity = self.rng.uniform(-0.5, 0.5, 2)
        velocity[axis] = 2.5 if side == 0 else -2.5
        self._new(center, velocity, radius, start=t, role="enter")

    def divide(self, t: int) -> _Mover | None:
        """A cell splits along a random axis into two daughters: a border cell first (if the
        hard cases ask for it), else the largest settled cell."""
        border = [c for c in self.border_mothers if c in self.alive()]
        settled = [c for c in self.alive() if c.role == "stay" and c.visible and c.leave_at < 0]
        settled = [c for c in settled if not c.hidden]
        if not border and not settled:
            return None
        mother = border[0] if border else max(settled, key=lambda c: float(np.prod(c.radii)))
        mother.end = t - 1
        angle = self.rng.uniform(0, np.pi)
        axis = np.array([np.sin(angle), np.cos(angle)])
        big = float(mother.radii.max()) / np.sqrt(1.0 + self.hard.daughter_size_ratio**2)
        sizes = (big, big * self.hard.daughter_size_ratio)
        touching = self.hard.touching_daughters
        apart = _TOUCH * (sizes[0] + sizes[1]) if touching else sizes[0] + sizes[1] + self.gap
        spread = 0.2 if touching else 0.7
        daughters = []
        for sign, radius, share in ((-1.0, sizes[0], sizes[1]), (1.0, sizes[1], sizes[0])):
            offset = apart * share / (sizes[0] + sizes[1])  # the larger one sits nearer
            daughters.append(
                self._new(
                    mother.center + sign * axis * offset,
                    mother.velocity + sign * axis * spread,
                    radius,
                    round_=True,
                    start=t,
                    parent=mother.track_id,
                    role=mother.role,
                )
            )
        if touching:
            daughters[0].sister, daughters[1].sister = daughters[1].track_id, daughters[0].track_id
        return mother

    def _needed(self, a: _Mover, b: _Mover, t: int) -> float:
        """Centre distance the repulsion keeps between two cells (less for young sisters)."""
        apart = float(a.radii.max() + b.radii.max())
        if a.sister == b.track_id:
            age = (t - a.start) / self.hard.separate_frames
            if age < 1:
                return apart * _TOUCH + age * (apart * (1 - _TOUCH) + self.gap)
        return apart + self.gap

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
                    need = self._needed(a, b, t)
                    delta = b.center - a.center
                    dist = float(np.linalg.norm(delta))
                    if dist < need:
                        push = (delta / max(dist, 1e-6)) * (need - dist) / 2
                        a.center, b.center = a.center - push, b.center + push
        for c in cells:
            lo, hi = c.radii.max() + 2, self.size - c.radii.max() - 2
            if c.role == "border":  # may reach a fifth of its width past the border
                lo, hi = c.radii.max() * _BORDER_INSIDE, self.size - c.radii.max() * _BORDER_INSIDE
            if c.role == "enter" and np.all(c.center >= lo) and np.all(c.center <= hi):
                c.role = "stay"
            if c.role in ("stay", "border"):
                for dim in range(2):
                    if not lo <= c.center[dim] <= hi[dim]:
                        c.velocity[dim] = -c.velocity[dim]
                        c.center[dim] = np.clip(c.center[dim], lo, hi[dim])

    def draw(self, t: int, labels: np.ndarray, min_visible: int) -> None:
        """Paint visible cells; border crossers count only with ``min_visible`` pixels in view."""
        alive = {c.track_id: c for c in self.alive()}
        for c in alive.values():
            mask = _ellipse_mask(labels.shape, c.center, c.radii) & (labels == 0)
            sister = alive.get(c.sister)
            if sister is not None:  # touching sisters share their overlap along a line
                mask &= _reach(labels.shape, c) <= _reach(labels.shape, sister)
            enough = int(mask.sum()) >= min_visible
            if c.role == "leave" and c.visible and not enough:
                c.gone, c.end = True, t - 1
                continue
            if c.role in ("enter", "leave") and not enough:
                continue
            if not c.visible:
                c.visible, c.start = True, t
            if t not in c.hidden:
                labels[mask] = c.track_id
