"""Many cells with the trained demo model: do batching, bf16 and fast tracking keep the masks?

Held-out synthetic time-lapses (seeds >= 5200; the demo model trained on 1000-1059) with
``--cells`` moving cells, one click per cell on frame 0, tracked by several variants (see
``--variants``): ours one object at a time in fp32 (the reference's order; the first variant
is the baseline), batched fp32 (the default), batched bf16, ``auto``, and fast tracking
(windows, ``TrackingOptions.window``). Printed: seconds per frame, the per-frame mask IoU of
each run against the first variant (mean and worst over frames x cells), and each run's IoU
with the ground truth.

    python benchmarks/demo_many_cells.py --cells 50 --frames 32 --seeds 5200,5201
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from sam2.build_sam import build_sam2_video_predictor
from sam2.precision import bf16_units
from sam2.sam2_video_predictor import SAM2VideoPredictor
from sam2.synthetic_tracking import make_tracking_timelapse
from sam2.video.options import WindowOptions

sys.path.insert(0, str(Path(__file__).resolve().parent))
from video_predictor import machine  # the sibling benchmark's machine description

WEIGHTS = Path(__file__).resolve().parents[1] / "sam2" / "weights" / "demo_cells.safetensors"


def centre_click(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    depth = ndimage.distance_transform_edt(mask)
    y, x = np.unravel_index(int(np.argmax(depth)), mask.shape)
    return np.array([[x, y]], dtype=np.float32)


def track(predictor: SAM2VideoPredictor, image: np.ndarray, first: np.ndarray) -> tuple:
    """(T, N, H, W) boolean masks, cell ids, and seconds per tracked frame."""
    state = predictor.init_state(image)
    cells = [int(c) for c in np.unique(first)[1:]]
    for cell in cells:
        predictor.add_new_points_or_box(
            state, 0, cell, points=centre_click(first == cell), labels=np.array([1])
        )
    masks, times = [], []
    start = time.perf_counter()
    for _, _, logits in predictor.propagate_in_video(state):
        masks.append((logits[:, 0] > 0).cpu().numpy())
        now = time.perf_counter()
        times.append(now - start)
        start = now
    return np.stack(masks), cells, float(np.mean(times[1:]))


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU over the last two axes; 1 where both are empty."""
    inter = (a & b).sum((-2, -1))
    union = (a | b).sum((-2, -1))
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=50)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--size", type=int, default=512, help="frame side in pixels")
    parser.add_argument("--seeds", default="5200")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=256, help="model input size")
    parser.add_argument(
        "--variants", default="one by one fp32,batched fp32,batched bf16,batched auto,fast fp32"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = build_sam2_video_predictor(
        "demo-cells",
        str(WEIGHTS),
        device="cpu",
        hydra_overrides_extra=[f"++model.image_size={args.image_size}"],
    )
    known = {
        "one by one fp32": (1, "fp32", None),
        "batched fp32": (16, "fp32", None),
        "batched bf16": (16, "bf16", None),
        "batched auto": (16, "auto", None),
        "fast fp32": (16, "fp32", WindowOptions()),
        "fast auto": (16, "auto", WindowOptions()),
    }
    variants = {name: known[name] for name in args.variants.split(",")}
    rows: dict[str, list] = {name: [[], [], [], []] for name in variants}
    for seed in (int(s) for s in args.seeds.split(",")):
        data = make_tracking_timelapse(
            seed=seed,
            n_frames=args.frames,
            shape=(args.size, args.size),
            n_cells=args.cells,
            n_divisions=0,
            n_entering=0,
            n_leaving=0,
        )
        reference = None
        for name, (batch, precision, window) in variants.items():
            options = base.options.replace(object_batch_size=batch, window=window)
            predictor = SAM2VideoPredictor(base.model, options, precision=precision)
            torch.manual_seed(0)
            masks, cells, seconds = track(predictor, data.image, data.labels[0])
            truth = np.stack([data.labels == c for c in cells], axis=1)  # (T, N, H, W)
            if reference is None:
                reference = masks
            agree = iou(masks, reference)
            present = truth.any((-2, -1))
            rows[name][0].append(seconds)
            rows[name][1].append(agree.ravel())
            rows[name][2].append(iou(masks, truth)[present])
            rows[name][3].append(predictor.precision)
            print(f"seed {seed}: {name} done, {seconds:.2f} s/frame", file=sys.stderr, flush=True)
    print(
        f"demo model at input {args.image_size}, {args.cells} cells, {args.frames} frames of "
        f"{args.size}², seeds "
        f"{args.seeds}; {torch.get_num_threads()} threads; {machine()}; {bf16_units()[1]}\n"
    )
    print("| run | ran as | s/frame | mask IoU vs one-by-one fp32: mean | worst | IoU with truth |")
    print("|---|---|---:|---:|---:|---:|")
    for name, (seconds, agree, truth, ran) in rows.items():
        a, t = np.concatenate(agree), np.concatenate(truth)
        print(
            f"| {name} | {ran[0]} | {np.mean(seconds):.2f} | {a.mean():.4f} | {a.min():.3f} "
            f"| {t.mean():.3f} |"
        )


if __name__ == "__main__":
    main()
