"""Fine-tuning on a few annotated tiles of a real image raises click IoU on the other tiles.

The image is the fluorescence nuclei image with hand-drawn masks that ships inside the
``stardist`` wheel (see scripts/evaluate_demo_model.py), cut into four 256 x 256 tiles
(29-40 nuclei each). Each fold is one user: one tile is the annotated "frame" that trains,
a second validates and picks the checkpoint (and, with several ``--lr``, the learning rate),
the other two are only ever scored. Fold 0 trains on tile 0 and validates on tile 1, fold 1
trains on tile 2 and validates on tile 3 (every tile scored once); folds 2-5 pair diagonal
tiles (see FOLDS). For each training
choice the demo model is fine-tuned with :func:`napari_sam2.fine_tune.run.run_fine_tuning`,
exactly as ``napari-sam2 train`` and the widget do, and scored by one click at each nucleus'
centre; the table gives the mean over folds.

    python scripts/fine_tune_demo.py --steps 150 --folds 0,1
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from evaluate_demo_model import _cpu_name, real_click_ious, stardist_nuclei

from napari_sam2.fine_tune.run import FineTuneResult, run_fine_tuning
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


#: (train tile, validation tile, test tiles); tiles 0 1 / 2 3 are the image's quadrants.
#: Folds 0-1 train and validate within one half and test on the other half; folds 2-5 train
#: and validate on diagonal quadrants (annotations spread over the image, as a user would),
#: testing on the other diagonal.
FOLDS = (
    (0, 1, (2, 3)),
    (2, 3, (0, 1)),
    (0, 3, (1, 2)),
    (3, 0, (1, 2)),
    (1, 2, (0, 3)),
    (2, 1, (0, 3)),
)
DEFAULT_LR = {"all": 3e-4, "no_image_encoder": 3e-4, "decoder": 3e-4, "lora": 1e-3}


def fine_tune(
    weights: Path, train: LabeledStack, val: LabeledStack, choice: str, lr: float, steps: int
) -> tuple[FineTuneResult, tempfile.TemporaryDirectory]:
    """One fine-tuning run; the caller scores ``result.weights`` and then cleans ``out`` up."""
    options = TrainingOptions(
        steps=steps,
        lr=lr,
        warmup_steps=10,
        trainable=choice,  # type: ignore[arg-type]
        video_fraction=0.0,
        images_per_batch=1,
        objects_per_image=12,
    )
    out = tempfile.TemporaryDirectory()
    result = run_fine_tuning(
        [train],
        out.name,
        ModelChoice(hub_id=None, checkpoint=str(weights), device="cpu"),
        options,
        validation=[val],
        validate_every=25,
    )
    return result, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=Path("sam2/weights/demo_cells.safetensors"))
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--folds", default="0,1", help="which folds of FOLDS to run")
    parser.add_argument("--choices", default=",".join(TRAINABLE_CHOICES))
    parser.add_argument(
        "--lr",
        default="",
        help="comma-separated learning rates tried per choice, the best by validation IoU "
        "kept (default: one per choice, DEFAULT_LR)",
    )
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "napari-sam2")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    parts = tiles(*stardist_nuclei(args.cache))
    stacks = [
        LabeledStack(np.stack([img]), np.stack([m]), name=f"tile{i}")
        for i, (img, m) in enumerate(parts)
    ]
    folds = [FOLDS[int(f)] for f in args.folds.split(",")]
    befores = [score(args.weights, [parts[t] for t in test]) for _, _, test in folds]
    print(f"CPU: {_cpu_name()}; {args.steps} steps each; folds {args.folds} (train, val, test):")
    print(
        "| trained | fold | lr | test click IoU before | after | validation IoU before -> best "
        "| time |"
    )
    print("|---|---|---|---|---|---|---|")
    for choice in args.choices.split(","):
        lrs = [float(x) for x in args.lr.split(",")] if args.lr else [DEFAULT_LR[choice]]
        afters = []
        for fold, ((train, val, test), before) in enumerate(zip(folds, befores, strict=True)):
            start = time.monotonic()
            runs = [
                fine_tune(args.weights, stacks[train], stacks[val], choice, lr, args.steps)
                for lr in lrs
            ]
            pick = max(range(len(lrs)), key=lambda i: runs[i][0].best)
            result = runs[pick][0]
            after = score(result.weights, [parts[t] for t in test])
            for _, out in runs:
                out.cleanup()
            afters.append(after)
            minutes = (time.monotonic() - start) / 60 / len(lrs)
            print(
                f"| {choice} | {folds[fold][:2]} | {lrs[pick]:g} | {before:.3f} | {after:.3f} | "
                f"{result.before:.3f} -> {result.best:.3f} | {minutes:.1f} min |",
                flush=True,
            )
        print(
            f"| {choice} | mean | | {np.mean(befores):.3f} | {np.mean(afters):.3f} | | |",
            flush=True,
        )


if __name__ == "__main__":
    main()
