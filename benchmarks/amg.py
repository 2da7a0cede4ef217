"""Automatic mask generator: seconds per image, the reference sam2==1.1.0 against ours.

Both sides load one random checkpoint written by the reference and segment the same 1024×1024
images with a 32×32 point grid. Every run happens in a fresh process: the reference in a new
oracle subprocess (``tests/oracle``), ours in a new worker process of this script, so neither
inherits the other's caches or memory. Times cover ``generate`` only (model built beforehand).

    python benchmarks/amg.py                        # tiny, loose filters, fp32 and bf16
    python benchmarks/amg.py --preset default --precision fp32

Random weights predict IoUs near 0.5 and logits within about ±0.6, so the reference's default
filters (IoU > 0.8, stability >= 0.95 at offset 1) drop every mask before any is upsampled.
``--preset loose`` (the default here) keeps a realistic share of them in play.
See ``benchmarks/README_amg.md`` for measured results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the oracle harness lives in tests/

from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator  # noqa: E402
from sam2.build_sam import build_sam2  # noqa: E402
from sam2.intensity import choose_limits, to_unit_range  # noqa: E402
from sam2.synthetic import make_image  # noqa: E402
from tests.oracle.harness import Oracle, oracle_available  # noqa: E402

CONFIGS = {
    "tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "small": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "base_plus": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "large": "configs/sam2.1/sam2.1_hiera_l.yaml",
}
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "loose": {
        "pred_iou_thresh": 0.5,
        "stability_score_thresh": 0.15,
        "stability_score_offset": 0.05,
        "mask_threshold": 0.1,
    },
}
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def make_images(size: int, folder: Path) -> list[tuple[str, Path]]:
    """(name, npz with ``ours`` and ``reference`` images) for a photo and 16-bit cells."""
    from skimage import data as skdata
    from skimage.transform import resize

    photo = resize(skdata.astronaut(), (size, size), order=1, anti_aliasing=False)
    photo = (photo * 255).round().astype(np.uint8)
    cells = make_image(shape=(size, size), seed=5)[0]
    cells_ref = np.repeat(to_unit_range(cells, choose_limits(cells))[:, :, None], 3, axis=2)
    cases = []
    for name, ours, ref in [
        (f"astronaut {size}x{size} RGB uint8", photo, photo),
        (f"cells {size}x{size} uint16", cells, cells_ref),
    ]:
        path = folder / f"{name.split()[0]}.npz"
        np.savez(path, ours=ours, reference=ref)
        cases.append((name, path))
    return cases


# ---------------------------------------------------------------------------- one side
def run_worker(spec: dict[str, Any]) -> None:
    """Ours, in this (fresh) process: time ``generate`` and save the records."""
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    now = CLOCKS[spec["clock"]]
    model = build_sam2(
        spec["config"],
        spec["ckpt"],
        device="cpu",
        hydra_overrides_extra=[f"++model.image_size={spec['image_size']}"],
    )
    generator = SAM2AutomaticMaskGenerator(model, precision=spec["precision"], **spec["params"])
    with np.load(spec["image"]) as data:
        image = data["ours"]
    times, records = [], []
    for _ in range(spec["runs"]):
        start = now()
        records = generator.generate(image)
        times.append(now() - start)
    np.savez(
        spec["output"],
        masks=np.stack([r["segmentation"] for r in records])
        if records
        else np.zeros((0, *image.shape[:2]), dtype=bool),
        point_coords=np.array([r["point_coords"][0] for r in records]).reshape(-1, 2),
        predicted_iou=np.array([r["predicted_iou"] for r in records]),
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": times, "threads": torch.get_num_threads(), "peak_rss_mb": peak}))


def time_ours(spec: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    with np.load(spec["output"]) as data:
        result["records"] = {k: data[k] for k in data.files}
    return result


def time_reference(spec: dict[str, Any]) -> dict[str, Any]:
    oracle = Oracle()  # a fresh process for every run
    try:
        with np.load(spec["image"]) as data:
            image = data["reference"]
        out = oracle.call(
            "amg:time_generate",
            {"image": image},
            config=spec["config"],
            ckpt=spec["ckpt"],
            image_size=spec["image_size"],
            runs=spec["runs"],
            clock=spec["clock"],
            **spec["params"],
        )
    finally:
        oracle.close()
    return {
        "seconds": out["seconds"].tolist(),
        "threads": int(out["threads"]),
        "peak_rss_mb": float(out["peak_rss_mb"]),
        "records": out,
    }


def same_masks(ours: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> str:
    """'n/m': reference masks that we also return (same click, mask IoU >= 0.99)."""
    n_ref = len(ref["predicted_iou"])
    found = 0
    flat = ours["masks"].reshape(len(ours["masks"]), -1) if len(ours["masks"]) else None
    if flat is None:
        return f"0/{n_ref}"
    for point, mask in zip(ref["point_coords"], ref["masks"]):
        same = np.flatnonzero(np.abs(ours["point_coords"] - point).max(axis=1) < 1e-3)
        if same.size:
            inter = (flat[same] & mask.ravel()).sum(axis=1)
            union = np.maximum((flat[same] | mask.ravel()).sum(axis=1), 1)
            found += bool((inter / union).max() >= 0.99)
    return f"{found}/{n_ref}"


# ---------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="tiny")
    parser.add_argument("--size", type=int, default=1024, help="image side (pixels)")
    parser.add_argument("--image-size", type=int, default=1024, help="model input size")
    parser.add_argument("--points-per-side", type=int, default=32)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="loose")
    parser.add_argument("--precision", default="fp32,bf16", help="ours: fp32, bf16 or both")
    parser.add_argument("--runs", type=int, default=1, help="timed generate calls per process")
    parser.add_argument("--seed", type=int, default=0, help="checkpoint seed")
    parser.add_argument("--threads", type=int, help="torch threads, both sides (default: all)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    parser.add_argument("--no-reference", action="store_true", help="time only ours")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        run_worker(json.loads(args.worker))
        return
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by both sides
    if not oracle_available():
        parser.error("the oracle writes the checkpoint; install it (tests/oracle/harness.py)")

    config = CONFIGS[args.config]
    params = {"points_per_side": args.points_per_side, **PRESETS[args.preset]}
    precisions = args.precision.split(",")
    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="sam2-amg-bench-") as tmp:
        ckpt = str(Path(tmp) / "random.pt")
        oracle = Oracle()
        try:
            oracle.call("build:save_random_checkpoint", config=config, path=ckpt, seed=args.seed)
        finally:
            oracle.close()
        for name, image in make_images(args.size, Path(tmp)):
            spec = {
                "config": config,
                "ckpt": ckpt,
                "image": str(image),
                "image_size": args.image_size,
                "params": params,
                "runs": args.runs,
                "clock": args.clock,
                "threads": args.threads,
            }
            results = {}
            if not args.no_reference:
                results["reference fp32"] = time_reference(spec)
            for precision in precisions:
                output = str(Path(tmp) / f"ours-{precision}.npz")
                results[f"ours {precision}"] = time_ours(
                    {**spec, "precision": precision, "output": output}
                )
            rows.append((name, results))
            print(f"{name}: " + ", ".join(f"{k} {v['seconds']}" for k, v in results.items()))
    load_after = os.getloadavg()[0]
    print(report(args, rows, load_before, load_after))


def report(
    args: argparse.Namespace,
    rows: list[tuple[str, dict[str, dict[str, Any]]]],
    load_before: float,
    load_after: float,
) -> str:
    threads = {r["threads"] for _, results in rows for r in results.values()}
    lines = [
        f"SAM 2.1 {args.config}, random weights (seed {args.seed}), model input "
        f"{args.image_size}, {args.points_per_side}x{args.points_per_side} grid, preset "
        f"'{args.preset}' {PRESETS[args.preset] or '(reference defaults)'}",
        f"torch {torch.__version__}, threads {sorted(threads)}, {os.cpu_count()} CPUs "
        f"({platform.machine()}), {args.clock} clock, median of {args.runs} run(s) per process",
        "",
        f"  {'image':32}{'side':16}{'s/image':>10}{'vs ref':>8}{'masks':>7}{'same as ref':>13}"
        f"{'peak RSS MB':>13}",
    ]
    for name, results in rows:
        ref = results.get("reference fp32")
        ref_s = float(np.median(ref["seconds"])) if ref else None
        for side, r in results.items():
            seconds = float(np.median(r["seconds"]))
            ratio = f"{seconds / ref_s:.2f}" if ref_s else "-"
            n = len(r["records"]["predicted_iou"])
            same = (
                same_masks(r["records"], ref["records"]) if ref and side != "reference fp32" else ""
            )
            lines.append(
                f"  {name:32}{side:16}{seconds:>10.1f}{ratio:>8}{n:>7}{same:>13}"
                f"{r['peak_rss_mb']:>13.0f}"
            )
    lines += ["", f"load average (1 min): {load_before:.2f} before, {load_after:.2f} after"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
