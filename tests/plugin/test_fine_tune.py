"""Fine-tuning without the viewer: ``napari-sam2 train`` and :func:`run_fine_tuning`."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from napari_sam2.cli import main
from napari_sam2.fine_tune.run import gather_stacks, run_fine_tuning
from napari_sam2.models import ModelChoice
from sam2.build_sam import build_model, build_sam2
from sam2.configs import resolve_config
from sam2.synthetic import make_timelapse
from sam2.training.augment import NO_AUGMENT
from sam2.training.checkpoints import save_weights
from sam2.training.data import LabeledStack, StackDataset
from sam2.training.trainer import TrainingOptions
from sam2.training.validation import click_iou


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight demo-architecture model at 128 px, saved as a trained model is."""
    torch.manual_seed(0)
    model = build_model(resolve_config("demo-cells").replace(image_size=128))
    return save_weights(model, tmp_path_factory.mktemp("base") / "base.safetensors")


@pytest.fixture(scope="module")
def annotated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("data")
    data = make_timelapse(n_frames=6, shape=(128, 128), n_cells=4, division_frames=(), seed=11)
    tifffile.imwrite(folder / "cells.tif", data.image, photometric="minisblack")
    labels = data.labels.astype(np.uint16)
    tifffile.imwrite(folder / "cells_labels.tif", labels, photometric="minisblack")
    return folder / "cells.tif", folder / "cells_labels.tif"


def test_train_command_writes_a_model_that_loads_and_never_overwrites(
    base: Path, annotated: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A few decoder steps from the command line: the best checkpoint loads strict with the
    config found beside it; a second run into the same folder is refused, file untouched."""
    image, labels = annotated
    out = tmp_path / "tuned"
    argv = ["train", "--images", str(image), "--labels", str(labels), "--checkpoint", str(base)]
    argv += ["--out", str(out), "--steps", "3", "--validate-every", "2", "--device", "cpu"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "validation click IoU" in err and "best model in" in err
    weights = out / "model.safetensors"
    model = build_sam2(str(out / "model.json"), str(weights), device="cpu")
    assert model.image_size == 128
    tuned = ModelChoice(hub_id=None, checkpoint=str(weights), device="cpu").load()
    assert tuned.model.image_size == 128  # the config was found beside the weights
    before = weights.read_bytes()
    assert main(argv) == 2
    assert "already holds a trained model" in capsys.readouterr().err
    assert weights.read_bytes() == before


def test_stop_keeps_the_best_checkpoint_and_reports_progress(
    base: Path, annotated: tuple[Path, Path], tmp_path: Path
) -> None:
    """Stopped after 2 of 50 steps: the run says so, and the folder holds a loadable model
    whose validation score is the best seen."""
    stacks = gather_stacks([annotated[0]], [annotated[1]])
    seen: list[int] = []
    stream = io.StringIO()
    result = run_fine_tuning(
        stacks,
        tmp_path / "run",
        ModelChoice(hub_id=None, checkpoint=str(base), device="cpu"),
        TrainingOptions(steps=50, lr=1e-3, warmup_steps=1, trainable="decoder", video_fraction=0),
        validate_every=1,
        validation_batches=1,
        stop=lambda: len(seen) >= 2,
        on_step=lambda log: seen.append(log.step),
        progress=stream,
    )
    assert result.stopped and result.steps == 2 and seen == [1, 2]
    assert [v.step for v in result.history] == [0, 1, 2]
    assert result.best == max(v.click_iou for v in result.history)
    assert "step 2/50" in stream.getvalue()
    build_sam2(str(result.weights.with_suffix(".json")), str(result.weights), device="cpu")


def test_named_validation_stacks_validate_and_all_others_train(
    base: Path, annotated: tuple[Path, Path], tmp_path: Path
) -> None:
    """With ``validation`` given, the score before training is the base model's on exactly
    those stacks (not on frames split off the training stack)."""
    train = gather_stacks([annotated[0]], [annotated[1]])
    other = make_timelapse(n_frames=2, shape=(128, 128), n_cells=5, division_frames=(), seed=12)
    held_out = LabeledStack(other.image, other.labels.astype(np.int32), name="held-out")
    result = run_fine_tuning(
        train,
        tmp_path / "run",
        ModelChoice(hub_id=None, checkpoint=str(base), device="cpu"),
        TrainingOptions(steps=1, warmup_steps=1, trainable="decoder", video_fraction=0),
        validation=[held_out],
        validation_batches=1,
    )
    model = ModelChoice(hub_id=None, checkpoint=str(base), device="cpu").load().model
    expected = click_iou(model, StackDataset([held_out], 128, NO_AUGMENT), batches=1)
    assert result.history[0].click_iou == pytest.approx(expected, abs=1e-6)


def test_mismatched_sources_are_refused(annotated: tuple[Path, Path]) -> None:
    with pytest.raises(ValueError, match="one labels file or folder per image"):
        gather_stacks([annotated[0], annotated[0]], [annotated[1]])
    assert main(["train", "--images", "/nonexistent.tif", "--labels", "x.tif", "--out", "o"]) == 2
