"""Score the demo model's cell tracking with py-ctcmetrics on held-out synthetic time-lapses.

Runs the same tracker as the widget and ``napari-sam2 track`` (SAM 2 mask source, the
default TrackingParams, threshold entry detector) from the ground truth of frame 0 on
time-lapses whose seeds no training step used (>= 6000), writes a CTC result folder and
prints TRA, DET, LNK and division detection (BC(0)), demo model against random weights.

    python scripts/score_demo_tracking.py --seeds 6000 6001 6002
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from napari_sam2.models import TRACKING_OPTIONS, LoadedModel
from napari_sam2.tracking import TrackingParams, track_cells, write_ctc
from napari_sam2.tracking.sources import sam2_mask_source
from sam2.build_sam import build_model, build_sam2_hf
from sam2.configs import DEMO_CELLS
from sam2.hub import DEMO_MODEL_ID
from sam2.synthetic_tracking import make_tracking_timelapse
from tests.tracking.ground_truth import write_gt_folder

METRICS = ["Valid", "DET", "TRA", "LNK", "BC(0)"]


def score(model: Any, seed: int, frames: int, root: Path) -> dict[str, Any]:
    """Track one synthetic time-lapse and score it against its ground truth."""
    import ctc_metrics.scripts.evaluate as evaluate

    data = make_tracking_timelapse(seed=seed, n_frames=frames, shape=(256, 256), n_cells=10)
    predictor = LoadedModel(model).video_predictor(TRACKING_OPTIONS)
    source = sam2_mask_source(predictor, data.image)
    result = track_cells(data.image, data.labels[0], 0, source, TrackingParams())
    write_ctc(root / "01_RES", result.labels, result.lineage, allow_empty_frames=True)
    gt = write_gt_folder(root, data)
    with contextlib.redirect_stdout(io.StringIO()):
        return evaluate.evaluate_sequence(str(root / "01_RES"), str(gt), metrics=METRICS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[6000, 6001, 6002])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = {
        "demo model": build_sam2_hf(DEMO_MODEL_ID, device="cpu"),
        "random weights": build_model(DEMO_CELLS).eval(),
    }
    print("| weights | seed | TRA | DET | LNK | divisions: BC(0) (GT) | s |")
    print("|---|---|---|---|---|---|---|")
    for name, model in models.items():
        rows = []
        for seed in args.seeds:
            start = time.monotonic()
            with tempfile.TemporaryDirectory() as tmp:
                s = score(model, seed, args.frames, Path(tmp))
            seconds = time.monotonic() - start
            print(
                f"| {name} | {seed} | {s['TRA']:.3f} | {s['DET']:.3f} | {s['LNK']:.3f} "
                f"| {s['BC(0)']:.3f} ({s['gt_divisions']}) | {seconds:.0f} |",
                flush=True,
            )
            rows.append([s["TRA"], s["DET"], s["LNK"], s["BC(0)"]])
        tra, det, lnk, bc = np.mean(rows, axis=0)
        print(f"| {name} | mean | {tra:.3f} | {det:.3f} | {lnk:.3f} | {bc:.3f} | |")
    print(f"CPU: {_cpu_name()}, {args.threads} thread(s)")


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    main()
