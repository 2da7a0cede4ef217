"""Fine-tuning on a few annotated tiles of a real image raises click IoU on the other tiles.

The image is the fluorescence nuclei image with hand-drawn masks that ships inside the
``stardist`` wheel (see scripts/evaluate_demo_model.py), cut into four 256 x 256 tiles:
tiles 0 and 1 are the user's annotated "frames" (one trains, one validates and picks the
checkpoint), tiles 2 and 3 are only ever scored. For each training choice the demo model is
fine-tuned with :func:`napari_sam2.fine_tune.run.run_fine_tuning`, exactly as ``napari-sam2
train`` and the widget do, and scored by one click at each nucleus' centre.

    python scripts/fine_tune_demo.py --weights sam2/weights/demo_cells.safetensors --steps 150
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from evaluate_demo_model import _cpu_name, real_click_ious, stardist_nuclei

from napari_sam2.fine_tune.run import run_fine_tuning
from napari_sam2.models import ModelChoice
from sam2.build_sam import build_sam2
from sam2.sam2_image_predictor import SAM2ImagePredictor
from sam2.training.data import LabeledStack
from sam2.training.trainable import TRAINABLE_CHOICES
from sam2.training.trainer import TrainingOptions


def tiles(image: np.ndarray, masks: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    h, w = image.shape[0] // 2, image.shape[1] // 2
    return [
        (image[y : y + h, x : x + w], masks[y : y + h, x : x + w]) for y in (0, h) for x in (0, w)
    ]


def score(weights: Path, test: list[tuple[np.ndarray, np.ndarray]]) -> float:
    predictor = SAM2ImagePredictor(build_sam2(str(weights.with_suffix(".json")), str(weights)))
    return float(np.mean([s for img, m in test for s in real_click_ious(predictor, img, m)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=Path("sam2/weights/demo_cells.safetensors"))
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "napari-sam2")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    parts = tiles(*stardist_nuclei(args.cache))
    annotated = [
        LabeledStack(np.stack([img]), np.stack([m]), name=f"tile{i}")
        for i, (img, m) in enumerate(parts[:2])
    ]
    test = parts[2:]
    before = score(args.weights, test)
    print(f"CPU: {_cpu_name()}; {args.steps} steps each; test tiles 2 and 3 only")
    print("| trained | test click IoU before | after | validation IoU before -> best | time |")
    print("|---|---|---|---|---|")
    for choice in TRAINABLE_CHOICES:
        options = TrainingOptions(
            steps=args.steps,
            lr=1e-3 if choice == "lora" else 3e-4,
            warmup_steps=10,
            trainable=choice,
            video_fraction=0.0,
            images_per_batch=1,
            objects_per_image=12,
        )
        start = time.monotonic()
        with tempfile.TemporaryDirectory() as out:
            result = run_fine_tuning(
                annotated,
                out,
                ModelChoice(hub_id=None, checkpoint=str(args.weights), device="cpu"),
                options,
                val_fraction=0.5,
                validate_every=25,
            )
            after = score(result.weights, test)
        minutes = (time.monotonic() - start) / 60
        print(
            f"| {choice} | {before:.3f} | {after:.3f} | {result.before:.3f} -> "
            f"{result.best:.3f} | {minutes:.1f} min |",
            flush=True,
        )


if __name__ == "__main__":
    main()
