"""Peak memory against stack length with many objects: does it stay flat?

Each length runs in a fresh process (its peak RSS is its own): the demo model tracks
``--cells`` cells of a held-out synthetic time-lapse (seed 5300, never trained on), one click
per cell on frame 0, streaming (``keep_history=False``, the default), objects batched. The
resident memory is sampled after every tracked frame (the process's high-water mark would
include making the test data); the stack is a numpy array held in the process, so the
frames themselves (T × H × W uint16) are part of it and are reported beside it.

    python benchmarks/many_objects_memory.py --cells 50 --frames 64,500
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_many_cells import centre_click  # the sibling benchmarks' helpers
from video_predictor import machine

WEIGHTS = Path(__file__).resolve().parents[1] / "sam2" / "weights" / "demo_cells.safetensors"


def worker(cells: int, frames: int, size: int, precision: str, fast: bool) -> dict:
    import numpy as np
    import torch

    from sam2.build_sam import build_sam2_video_predictor
    from sam2.synthetic_tracking import make_tracking_timelapse
    from sam2.video.options import WindowOptions

    torch.set_num_threads(2)
    data = make_tracking_timelapse(
        seed=5300,
        n_frames=frames,
        shape=(size, size),
        n_cells=cells,
        n_divisions=0,
        n_entering=0,
        n_leaving=0,
    )
    image, first = data.image, data.labels[0].copy()
    del data  # the ground truth of every frame is not part of tracking
    predictor = build_sam2_video_predictor(
        "demo-cells", str(WEIGHTS), device="cpu", precision=precision
    )
    if fast:
        options = predictor.options.replace(window=WindowOptions())
        predictor = type(predictor)(predictor.model, options, precision=predictor.precision)
    state = predictor.init_state(image)
    for cell in np.unique(first)[1:]:
        click = centre_click(first == cell)
        predictor.add_new_points_or_box(state, 0, int(cell), points=click, labels=[1])
    start = time.perf_counter()
    done, before, peak = 0, _rss_mib(), 0.0
    with torch.inference_mode():
        for _ in predictor.propagate_in_video(state):
            done += 1
            peak = max(peak, _rss_mib())
    return {
        "frames": done,
        "s_per_frame": (time.perf_counter() - start) / done,
        "rss_before_mib": before,
        "peak_tracking_mib": peak,
        "stack_mib": image.nbytes / 2**20,
        "precision": predictor.precision,
    }


def _rss_mib() -> float:
    """Resident memory now (the high-water mark would include making the test data)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=50)
    parser.add_argument("--frames", default="64,500")
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(**json.loads(args.worker))))
        return
    rows = []
    for n in (int(f) for f in args.frames.split(",")):
        job = {
            "cells": args.cells,
            "frames": n,
            "size": args.size,
            "precision": args.precision,
            "fast": args.fast,
        }
        out = subprocess.run(
            [sys.executable, __file__, "--worker", json.dumps(job)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(f"{n} frames done", file=sys.stderr, flush=True)
    base = rows[0]["peak_tracking_mib"] - rows[0]["stack_mib"]
    from sam2.precision import bf16_units

    print(f"{machine()}; {bf16_units()[1]}")
    print(
        f"demo model, {args.cells} cells, frames of {args.size}², precision {rows[0]['precision']}"
        f"{', fast tracking' if args.fast else ''}, 2 threads\n"
    )
    print(
        "| frames | RSS before tracking MiB | peak while tracking | of which the stack | peak "
        "without it | vs first | s/frame |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        without = r["peak_tracking_mib"] - r["stack_mib"]
        print(
            f"| {r['frames']} | {r['rss_before_mib']:.0f} | {r['peak_tracking_mib']:.0f} | "
            f"{r['stack_mib']:.0f} | {without:.0f} | {without / base - 1:+.1%} | "
            f"{r['s_per_frame']:.2f} |"
        )


if __name__ == "__main__":
    main()
