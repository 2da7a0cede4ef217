"""How well the demo model segments and tracks cells it never saw, against random weights.

Held-out synthetic stacks (seeds >= 5000; training used 1000-1059, validation 1900-1903):

- click IoU: one click at each cell's centre (the pixel farthest inside it, as a user clicks),
  the mask with the highest predicted IoU, IoU with the ground truth; 5 frames of 10 stacks;
- propagation: 12 moving cells, one click each on frame 0, tracked through 32 frames by the
  video predictor; the mean IoU of the tracked cells per frame (mean and worst frame);
- real microscopy: the fluorescence nuclei image with its hand-drawn masks that ships inside
  the ``stardist`` wheel (BSD-3; from the 2018 Data Science Bowl), fetched from the package
  registry with ``pip download`` (no install); one click at each nucleus' centre. No training
  step or threshold ever saw it.

    python scripts/evaluate_demo_model.py --weights sam2/weights/demo_cells.safetensors
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from sam2.build_sam import build_sam2, build_sam2_video_predictor
from sam2.precision import Precision
from sam2.sam2_image_predictor import SAM2ImagePredictor
from sam2.synthetic_tracking import make_tracking_timelapse

CONFIG = "demo-cells"


def centre_click(mask: np.ndarray) -> np.ndarray:
    """(1, 2) x, y of the pixel deepest inside ``mask``."""
    depth = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(depth)), mask.shape)
    return np.array([[x, y]], dtype=np.float32)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def click_ious(predictor: SAM2ImagePredictor, seeds: range) -> list[float]:
    scores = []
    for seed in seeds:
        data = make_tracking_timelapse(seed=seed, n_frames=30)
        for t in (0, 7, 14, 21, 28):
            predictor.set_image(data.image[t])
            for cell in np.unique(data.labels[t])[1:]:
                gt = data.labels[t] == cell
                if gt.sum() < 30:
                    continue
                masks, ious, _ = predictor.predict(
                    point_coords=centre_click(gt), point_labels=np.array([1])
                )
                scores.append(iou(masks[int(np.argmax(ious))] > 0, gt))
    return scores


def stardist_nuclei(cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """The 2D nuclei image and masks of the stardist wheel (downloaded once into ``cache``)."""
    import io
    import subprocess
    import sys
    import zipfile

    import tifffile

    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob("stardist-*.whl"))
    if not wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(cache), "stardist"],
            check=True,
        )
        wheels = sorted(cache.glob("stardist-*.whl"))
    with zipfile.ZipFile(wheels[-1]) as wheel:
        read = wheel.read
        image = tifffile.imread(io.BytesIO(read("stardist/data/images/img2d.tif")))
        masks = tifffile.imread(io.BytesIO(read("stardist/data/images/mask2d.tif")))
    return image, masks


def real_click_ious(predictor: SAM2ImagePredictor, image: np.ndarray, masks: np.ndarray) -> list:
    predictor.set_image(image)
    scores = []
    for cell in np.unique(masks)[1:]:
        gt = masks == cell
        if gt.sum() < 30:
            continue
        out, ious, _ = predictor.predict(point_coords=centre_click(gt), point_labels=np.array([1]))
        scores.append(iou(out[int(np.argmax(ious))] > 0, gt))
    return scores


def propagation_ious(
    weights: str | None, seeds: range, precision: Precision = "fp32"
) -> list[float]:
    """Per-frame mean IoU of the tracked cells (cells present in the ground truth)."""
    predictor = build_sam2_video_predictor(CONFIG, weights, device="cpu", precision=precision)
    per_frame = []
    for seed in seeds:
        data = make_tracking_timelapse(
            seed=seed,
            n_frames=32,
            shape=(256, 256),
            n_cells=12,
            n_divisions=0,
            n_entering=0,
            n_leaving=0,
        )
        state = predictor.init_state(data.image)
        cells = [int(c) for c in np.unique(data.labels[0])[1:]]
        for cell in cells:
            predictor.add_new_points_or_box(
                state, 0, cell, points=centre_click(data.labels[0] == cell), labels=np.array([1])
            )
        for frame, obj_ids, logits in predictor.propagate_in_video(state):
            masks = (logits[:, 0] > 0).cpu().numpy()
            scores = [
                iou(masks[i], data.labels[frame] == obj)
                for i, obj in enumerate(obj_ids)
                if (data.labels[frame] == obj).any()
            ]
            per_frame.append(float(np.mean(scores)))
    return per_frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="sam2/weights/demo_cells.safetensors")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "napari-sam2")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    image, masks = stardist_nuclei(args.cache)
    rows = []
    runs: list[tuple[str, str | None, Precision]] = [
        ("demo model", args.weights, "fp32"),
        ("demo model, bf16 autocast", args.weights, "bf16"),
        ("random weights", None, "fp32"),
    ]
    for name, weights, precision in runs:
        torch.manual_seed(0)
        model = build_sam2(CONFIG, weights, device="cpu")
        predictor = SAM2ImagePredictor(model, precision=precision)
        clicks = click_ious(predictor, range(5000, 5010))
        real = real_click_ious(predictor, image, masks)
        torch.manual_seed(0)
        tracked = propagation_ious(weights, range(5100, 5102), precision)
        rows.append((name, clicks, real, tracked))
    print(f"weights: {Path(args.weights).name}; CPU: {_cpu_name()}")
    print(
        "| weights | synthetic click IoU (n) | real nuclei click IoU (n) "
        "| propagation IoU, mean | worst frame |"
    )
    print("|---|---|---|---|---|")
    for name, clicks, real, tracked in rows:
        print(
            f"| {name} | {np.mean(clicks):.3f} ({len(clicks)}) | {np.mean(real):.3f} "
            f"({len(real)}) | {np.mean(tracked):.3f} | {np.min(tracked):.3f} |"
        )


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


if __name__ == "__main__":
    main()
