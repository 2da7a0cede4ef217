"""Fine-tuning without the viewer: gather annotated data, train, keep the best checkpoint.

Used by ``napari-sam2 train`` and by the fine-tuning widget's worker alike; imports no
napari. The output folder holds ``model.safetensors`` + ``model.json`` (what
``build_sam2("model.json", "model.safetensors")``, ``--checkpoint`` on the command line and
the widgets' "local checkpoint" load; the config is found beside the weights) and
``trainer_state.pt`` (resume). The checkpoint written is always the best by validation
one-click IoU so far, so a stopped run keeps its best model.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from napari_sam2.models import ModelChoice
from sam2.training.augment import NO_AUGMENT
from sam2.training.data import LabeledStack, StackDataset, train_val_split
from sam2.training.loading import load_ctc, load_pair_folders, load_stack
from sam2.training.trainer import STATE_NAME, WEIGHTS_NAME, StepLog, Trainer, TrainingOptions
from sam2.training.validation import click_iou

__all__ = ["FineTuneResult", "Validation", "gather_stacks", "run_fine_tuning"]


@dataclass(frozen=True)
class Validation:
    """One validation: the step it followed and the mean one-click IoU on held-out data."""

    step: int
    click_iou: float


@dataclass(frozen=True)
class FineTuneResult:
    weights: Path  # the best checkpoint (model.safetensors; model.json beside it)
    before: float  # validation click IoU of the base model
    best: float  # ... of the saved checkpoint
    steps: int  # optimizer steps done
    stopped: bool  # stopped before options.steps
    history: tuple[Validation, ...]


def gather_stacks(
    images: Sequence[str | os.PathLike[str]], labels: Sequence[str | os.PathLike[str] | None]
) -> list[LabeledStack]:
    """Annotated data from pairs: file + label file, folder + label folder, or a CTC image
    folder (``.../01``) with ``None`` as its labels (its ``01_GT/SEG`` truth is used)."""
    if len(images) != len(labels):
        raise ValueError(
            f"{len(images)} image source(s) but {len(labels)} label source(s); give one "
            "labels file or folder per image (a CTC sequence folder needs none)"
        )
    stacks: list[LabeledStack] = []
    for image, label in zip(images, labels):
        image_path = Path(image)
        if label is None:
            stacks.append(load_ctc(image_path))
        elif image_path.is_dir() and Path(label).is_dir():
            stacks.extend(load_pair_folders(image_path, label))
        else:
            stacks.append(load_stack(image_path, label))
    return stacks


def _check_out(out_dir: Path, overwrite: bool) -> None:
    existing = [n for n in (WEIGHTS_NAME, STATE_NAME) if (out_dir / n).exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{out_dir} already holds a trained model ({', '.join(existing)}); choose another "
            "output folder or pass overwrite=True (--overwrite)"
        )


def run_fine_tuning(
    stacks: Sequence[LabeledStack],
    out_dir: str | os.PathLike[str],
    base: ModelChoice,
    options: TrainingOptions,
    *,
    val_fraction: float = 0.2,
    validation: Sequence[LabeledStack] | None = None,
    validate_every: int = 50,
    validation_batches: int = 6,
    overwrite: bool = False,
    stop: Callable[[], bool] | None = None,
    on_step: Callable[[StepLog], None] | None = None,
    on_validation: Callable[[Validation], None] | None = None,
    progress: IO[str] | None = None,
) -> FineTuneResult:
    """Fine-tune ``base`` on ``stacks``; whole stacks (or, for one stack, its last frames)
    are held out for validation, unless ``validation`` names the stacks that validate (then
    every one of ``stacks`` trains). ``stop()`` is checked between steps: a stopped run keeps
    the best checkpoint so far."""
    out = Path(out_dir)
    _check_out(out, overwrite)
    if validation:
        train, val = list(stacks), list(validation)
    else:
        train, val = train_val_split(list(stacks), val_fraction, seed=options.seed)
    model = base.load().model
    size = model.image_size
    train_data = StackDataset(train, size)
    val_data = StackDataset(val, size, NO_AUGMENT)  # the same crops every time: comparable
    trainer = Trainer(model, train_data, options)
    before = click_iou(model, val_data, batches=validation_batches)
    history = [Validation(0, before)]
    if on_validation is not None:
        on_validation(history[0])
    best, weights = before, trainer.save(out)  # the base model is the first "best"
    start = time.monotonic()
    for log in trainer.run(stop):
        if on_step is not None:
            on_step(log)
        if progress is not None:
            _print_step(progress, log, options.steps, time.monotonic() - start)
        if log.step % validate_every == 0 or log.step == options.steps:
            score = click_iou(model, val_data, batches=validation_batches)
            history.append(Validation(log.step, score))
            if on_validation is not None:
                on_validation(history[-1])
            if progress is not None:
                print(f"\nstep {log.step}: validation click IoU {score:.3f}", file=progress)
            if score > best:
                best, weights = score, trainer.save(out)
    if progress is not None:
        print(file=progress)
    return FineTuneResult(
        weights, before, best, trainer.step, trainer.step < options.steps, tuple(history)
    )


def _print_step(stream: IO[str], log: StepLog, steps: int, elapsed: float) -> None:
    eta = elapsed / log.step * (steps - log.step)
    print(
        f"\rstep {log.step}/{steps} loss {log.loss['total']:.3f} lr {log.lr:.1e} "
        f"({elapsed:.0f} s, ~{eta:.0f} s left)",
        end="",
        file=stream,
        flush=True,
    )
