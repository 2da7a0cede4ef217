"""How well the demo model segments and tracks cells it never saw, against random weights.

Held-out synthetic stacks (seeds >= 5000; training used 1000-1059, validation 1900-1903):

- click IoU: one click at each cell's centre (the pixel farthest inside it, as a user clicks),
  the mask with the highest predicted IoU, IoU with the ground truth; 5 frames of 10 stacks;
- propagation: 12 moving cells, one click each on frame 0, tracked through 32 frames by the
  video predictor; the mean IoU of the tracked cells per frame (mean and worst frame).

    python scripts/evaluate_demo_model.py --weights sam2/weights/demo_cells.safetensors
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from sam2.build_sam import build_sam2, build_sam2_video_predictor
from sam2.sam2_image_predictor import SAM2ImagePredictor
from sam2.synthetic import make_tracking_timelapse

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


def propagation_ious(weights: str | None, seeds: range) -> list[float]:
    """Per-frame mean IoU of the tracked cells (cells present in the ground truth)."""
    predictor = build_sam2_video_predictor(CONFIG, weights, device="cpu")
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
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name, weights in (("demo model", args.weights), ("random weights", None)):
        torch.manual_seed(0)
        model = build_sam2(CONFIG, weights, device="cpu")
        clicks = click_ious(SAM2ImagePredictor(model), range(5000, 5010))
        torch.manual_seed(0)
        tracked = propagation_ious(weights, range(5100, 5102))
        rows.append((name, np.mean(clicks), len(clicks), np.mean(tracked), np.min(tracked)))
    print(f"weights: {Path(args.weights).name}")
    print("| weights | click IoU (mean) | clicks | propagation IoU (mean) | worst frame |")
    print("|---|---|---|---|---|")
    for name, click, n, mean, worst in rows:
        print(f"| {name} | {click:.3f} | {n} | {mean:.3f} | {worst:.3f} |")


if __name__ == "__main__":
    main()
