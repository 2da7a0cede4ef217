"""Test doubles built from synthetic ground truth: a mask source that tracks like SAM 2 would
(when the model is not what is under test), one that holds a run at a frame until the test lets
it go (to act mid-run without racing the worker), and GT folders in the CTC layout."""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Hashable
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import numpy as np

from napari_sam2.tracking.sources import PromptSeed
from sam2.synthetic import SyntheticTimelapse


class GroundTruthMaskSource:
    """Follows ground-truth cells: each object tracks the GT cell its seed mask overlaps most.

    When that cell divides, ``division="union"`` returns both daughters as one mask (what SAM 2
    does when it keeps following a dividing cell) and ``"first_daughter"`` only the first (SAM 2
    losing one daughter). Proposals are every GT cell of the frame, like a perfect "segment
    everything". ``jitter`` > 0 grows or shrinks each returned mask by up to that many pixels
    at random (seeded), so the rules also see imperfect masks.
    """

    def __init__(
        self,
        data: SyntheticTimelapse,
        division: Literal["union", "first_daughter"] = "union",
        jitter: int = 0,
        seed: int = 0,
    ) -> None:
        self.labels = data.labels
        self.division = division
        self.jitter = jitter
        self.rng = np.random.default_rng(seed)
        self.children: dict[int, list[int]] = {}
        for label, _, _, parent in data.lineage:
            if parent:
                self.children.setdefault(parent, []).append(label)
        self.present = [set(np.unique(f).tolist()) - {0} for f in self.labels]
        self.follow: dict[Hashable, set[int]] = {}
        self.tracked: list[int] = []  # frames asked for, in order
        self.added: list[tuple[int, Hashable]] = []

    def add(self, frame_idx: int, obj_id: int, mask: np.ndarray) -> None:
        under = self.labels[frame_idx][np.asarray(mask, dtype=bool)]
        under = under[under > 0]
        if not len(under):
            raise AssertionError(f"object {obj_id} added on background at frame {frame_idx}")
        self.follow[obj_id] = {int(np.bincount(under).argmax())}
        self.added.append((frame_idx, obj_id))

    def remove(self, obj_id: int) -> None:
        del self.follow[obj_id]

    def track(self, frame_idx: int) -> dict[int, np.ndarray]:
        self.tracked.append(frame_idx)
        here = self.present[frame_idx]
        out = {}
        for obj_id, cells in self.follow.items():
            now: set[int] = set()
            for cell in cells:
                if cell in here:
                    now.add(cell)
                else:
                    born = sorted(c for c in self.children.get(cell, []) if c in here)
                    now |= set(born if self.division == "union" else born[:1])
            if now:
                self.follow[obj_id] = now
            mask = np.isin(self.labels[frame_idx], sorted(now))
            out[int(obj_id)] = self._jittered(mask)  # type: ignore[call-overload]
        return out

    def _jittered(self, mask: np.ndarray) -> np.ndarray:
        if not self.jitter or not mask.any():
            return mask
        from scipy import ndimage

        steps = int(self.rng.integers(-self.jitter, self.jitter + 1))
        if steps > 0:
            return ndimage.binary_dilation(mask, iterations=steps)
        if steps < 0:
            return ndimage.binary_erosion(mask, iterations=-steps)
        return mask

    def propose(self, frame_idx: int, covered: np.ndarray) -> list[np.ndarray]:
        frame = self.labels[frame_idx]
        return [frame == cell for cell in sorted(self.present[frame_idx])]

    def segment(self, frame_idx: int, prompt: PromptSeed) -> np.ndarray:
        frame = self.labels[frame_idx]
        if prompt.points is not None:
            y, x = np.round(np.asarray(prompt.points)[0]).astype(int)
            cell = frame[y, x]
        else:
            assert prompt.box is not None
            y0, x0, y1, x1 = (round(v) for v in prompt.box)
            inside = frame[y0:y1, x0:x1]
            cell = np.bincount(inside[inside > 0]).argmax() if (inside > 0).any() else 0
        return (frame == cell) if cell else np.zeros(frame.shape, dtype=bool)


class GatedMaskSource(GroundTruthMaskSource):
    """Ground truth that waits before frame ``hold`` until the test opens ``gate``; counts
    how often it is closed."""

    def __init__(self, data: SyntheticTimelapse, hold: int) -> None:
        super().__init__(data)
        self.hold, self.gate = hold, threading.Event()
        self.closed = 0

    def close(self) -> None:
        self.closed += 1

    def track(self, frame_idx: int) -> dict[int, np.ndarray]:
        if frame_idx >= self.hold:
            self.gate.wait(timeout=30)
        return super().track(frame_idx)


def write_gt_folder(root: Path, data: SyntheticTimelapse) -> Path:
    """``root/01_GT``: ``TRA/man_track###.tif`` + ``man_track.txt``, ``SEG/man_seg###.tif``."""
    import tifffile

    gt = root / "01_GT"
    (gt / "TRA").mkdir(parents=True)
    (gt / "SEG").mkdir()
    for t, frame in enumerate(data.labels):
        tifffile.imwrite(gt / "TRA" / f"man_track{t:03d}.tif", frame.astype(np.uint16))
        tifffile.imwrite(gt / "SEG" / f"man_seg{t:03d}.tif", frame.astype(np.uint16))
    rows = "\n".join(" ".join(str(v) for v in row) for row in data.lineage)
    (gt / "TRA" / "man_track.txt").write_text(rows + "\n")
    return gt


def best_match(result: np.ndarray, gt: np.ndarray, gt_label: int) -> int:
    """The result label covering most of a GT cell on one frame (0: none)."""
    under = result[gt == gt_label]
    under = under[under > 0]
    return int(np.bincount(under).argmax()) if len(under) else 0


def evaluate(ctc_metrics: ModuleType, res: Path, gt: Path) -> dict[str, Any]:
    """py-ctcmetrics' scores (it prints; keep the test log quiet)."""
    from ctc_metrics.scripts.validate import validate_sequence

    with contextlib.redirect_stdout(io.StringIO()):
        assert validate_sequence(str(res))["Valid"] == 1
        metrics = ["Valid", "DET", "TRA", "LNK", "BC(0)", "BC(1)", "CT", "CHOTA", "SEG"]
        return ctc_metrics.evaluate_sequence(str(res), str(gt), metrics=metrics, threads=1)
