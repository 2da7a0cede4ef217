"""Many objects per frame: seconds per tracked frame against the number of objects, ours vs the
reference ``sam2==1.1.0``, on the same random-weight checkpoint, frames and clicks.

Each run is one fresh process (``video_predictor.py``'s worker, so the two sides are set up
exactly as in that benchmark). Variants are ``side:precision[:b<batch>][:fast]``: ``ref:fp32``,
``ref:bf16`` (the whole reference run under ``torch.autocast("cpu", dtype=torch.bfloat16)``,
how its users try to run it fast), ``ours:fp32`` (objects batched, the default),
``ours:fp32:b1`` (ours one object at a time, as the reference), ``ours:bf16``, ``ours:auto``,
``ours:auto:fast`` (fast tracking: windows around each object, ``TrackingOptions.window``).
The table gives s/frame (mean over the tracked frames), the ratio to the reference in fp32 at
the same object count, CPU s/frame, peak RSS, and the extra cost of each added object
(the slope between the first and last object counts).

    python benchmarks/many_objects.py --objects 1,5,20 --speed-frames 8 \\
        --variants ref:fp32,ours:fp32,ours:fp32:b1,ours:bf16,ours:auto --ref-bf16-at 5
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from video_predictor import (  # the sibling benchmark's helpers
    REPO,
    _mean,
    _table,
    machine,
    make_checkpoint,
    make_video,
    measure,
)


def _job(variant: str, args: argparse.Namespace, ckpt: Path, video: Path, points: list) -> dict:
    side, precision, *rest = variant.split(":")
    batch = [int(r[1:]) for r in rest if r.startswith("b")]
    return {
        "impl": "reference" if side == "ref" else "ours",
        "precision": precision,
        "object_batch_size": batch[0] if batch else None,
        "window": "fast" in rest,
        "config": args.config,
        "ckpt": str(ckpt),
        "video": str(video),
        "image_size": args.speed_image_size,
        "points": points,
        "frames": args.speed_frames,
        "ours_options": {},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", default="1,5,20")
    parser.add_argument("--variants", default="ref:fp32,ours:fp32,ours:fp32:b1,ours:bf16,ours:auto")
    parser.add_argument("--ref-bf16-at", default="5", help="object counts with ref:bf16 too")
    parser.add_argument("--speed-image-size", type=int, default=1024)
    parser.add_argument("--speed-frames", type=int, default=8)
    parser.add_argument("--config", default="configs/sam2.1/sam2.1_hiera_t.yaml")
    parser.add_argument("--oracle-site", type=Path, default=REPO / ".oracle" / "site")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--retries", type=int, default=0)
    parser.add_argument("--max-others", type=float, default=0.25)
    parser.add_argument("--max-wait", type=float, default=120.0)
    parser.add_argument("--timeout", type=float, default=3600.0)
    args = parser.parse_args()
    site = args.oracle_site.resolve()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="sam2-many-objects-"))
    work.mkdir(parents=True, exist_ok=True)
    ckpt = work / "random_tiny.pt"
    if not ckpt.exists():
        make_checkpoint(args.config, ckpt, site, args.timeout)
    counts = [int(k) for k in args.objects.split(",")]
    video = work / f"frames_{args.speed_frames}"
    points = make_video(video, args.speed_frames, (480, 640), n_cells=max(counts) + 1)
    variants = args.variants.split(",")
    results: dict[tuple[int, str], dict[str, Any]] = {}
    for k in counts:
        extra = ["ref:bf16"] if str(k) in args.ref_bf16_at.split(",") else []
        for variant in variants + extra:
            print(f"{variant}, {k} object(s) ...", file=sys.stderr, flush=True)
            job = _job(variant, args, ckpt, video, points[:k])
            results[(k, variant)] = measure(job, args, site, args.retries)
    ref = {
        k: _mean(results[(k, "ref:fp32")]["wall_s"]) for k in counts if (k, "ref:fp32") in results
    }
    rows = []
    for (k, variant), r in results.items():
        wall = _mean(r["wall_s"])
        rows.append(
            [
                str(k),
                variant,
                r["precision"],
                f"{wall:.2f}",
                f"{wall / ref[k]:.2f}" if k in ref else "",
                f"{_mean(r['cpu_s']):.2f}",
                f"{r['peak_rss_mib']:.0f}",
                f"{r['others_cores']:.2f}",
            ]
        )
    lo, hi = counts[0], counts[-1]

    def per_object(v: str) -> float:
        return (_mean(results[(hi, v)]["wall_s"]) - _mean(results[(lo, v)]["wall_s"])) / (hi - lo)

    slopes = [[v, f"{per_object(v):.3f}"] for v in variants if hi > lo]
    print(
        f"# Many objects per frame ({time.strftime('%F')}): {args.config}, input "
        f"{args.speed_image_size}, {args.speed_frames} JPEG frames of 480x640, one click per "
        f"object on frame 0, mean over the {args.speed_frames - 1} tracked frames"
    )
    from sam2.precision import bf16_units

    print(f"machine: {machine()}; {bf16_units('cpu')[1]}\n")
    headers = [
        "objects",
        "variant",
        "ran as",
        "s/frame",
        "vs ref fp32",
        "CPU s/frame",
        "peak RSS MiB",
        "others' cores",
    ]
    print(_table(headers, rows) + "\n")
    if slopes:  # one object count has no slope
        print(_table(["variant", f"extra s per object per frame ({lo} → {hi})"], slopes))


if __name__ == "__main__":
    main()
