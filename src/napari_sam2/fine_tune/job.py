"""One fine-tuning run in a napari worker: settings, progress, ETA, Stop, and the result.

The worker body is :func:`napari_sam2.fine_tune.run.run_fine_tuning`, whose callbacks run in the
worker thread; they emit private signals of :class:`FineTuneJob`, which Qt delivers on the
main thread (the job lives there), where the progress bar, ETA and status sentences are made.
This is not a :class:`~napari_sam2.jobs.LayerJob`: that lifecycle drives generator workers
that write layers and stops them with ``worker.quit()``, while a training run writes files and
is stopped between optimizer steps through ``run_fine_tuning(stop=...)``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from qtpy.QtCore import QObject, Signal

from napari_sam2.fine_tune.training_data import PairArrays, pair_stacks
from napari_sam2.jobs import Failure
from napari_sam2.models import USER_MODELS, ModelChoice
from napari_sam2.run_state import RunState

if TYPE_CHECKING:
    from napari.qt.threading import FunctionWorker
    from napari.utils import progress

    from napari_sam2.fine_tune.run import FineTuneResult, Validation
    from sam2.training.trainable import Trainable
    from sam2.training.trainer import StepLog, TrainingOptions

__all__ = ["CLIP_FRAMES", "VALIDATION_BATCHES", "FineTuneJob", "FineTuneSettings", "describe"]

CLIP_FRAMES = 4  # frames per training clip when clips are on
VALIDATION_BATCHES = 6  # seeded batches of 2 planes per validation (more: steadier, slower)


@dataclass(frozen=True)
class FineTuneSettings:
    """What the controls ask for: where the model goes and how it is trained."""

    out_dir: Path
    trainable: Trainable = "decoder"
    steps: int = 300
    lr: float = 1e-4
    val_fraction: float = 0.2
    validate_every: int = 50
    clips: bool = False  # also train on clips (the video memory), not only single planes
    overwrite: bool = False
    validation_batches: int = VALIDATION_BATCHES

    def options(self) -> TrainingOptions:
        """The trainer's options (imports torch)."""
        from sam2.training.trainer import TrainingOptions

        return TrainingOptions(
            steps=self.steps,
            lr=self.lr,
            warmup_steps=min(50, max(self.steps // 10, 1)),  # as the command line does
            trainable=self.trainable,
            video_fraction=0.5 if self.clips else 0.0,
            clip_frames=CLIP_FRAMES,
        )


class FineTuneJob(QObject):
    """Runs one fine-tuning at a time; every public signal is emitted on the main thread.

    ``step`` and ``validation`` carry the runner's records (for a plot), ``failed`` an
    expected failure (bad data, missing checkpoint) for a notification, ``done`` the result;
    the status line and whether a run is going are ``state``, the
    :class:`~napari_sam2.run_state.RunState` the other widgets' controllers keep too.
    """

    step = Signal(object)  # StepLog
    validation = Signal(object)  # Validation
    failed = Signal(str)
    done = Signal(object)  # FineTuneResult
    _worker_step = Signal(object)  # emitted in the worker thread, delivered queued
    _worker_validation = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = RunState()
        self._worker: FunctionWorker[FineTuneResult | Failure] | None = None
        self._stop_event = threading.Event()
        self._pbar: progress | None = None
        self._steps = 1
        self._train_started = 0.0
        self._before: float | None = None
        self._best = 0.0
        self._worker_step.connect(self._on_step)
        self._worker_validation.connect(self._on_validation)

    @property
    def running(self) -> bool:
        return self.state.running

    def start(
        self, pairs: Sequence[PairArrays], settings: FineTuneSettings, base: ModelChoice
    ) -> None:
        """Train ``base`` on ``pairs`` in a worker thread (checked inputs only)."""
        from napari.qt.threading import create_worker
        from napari.utils import progress

        if self.running:
            raise RuntimeError("a fine-tuning run is already going; stop it first")
        self._stop_event = threading.Event()
        self._steps, self._before, self._best = settings.steps, None, 0.0
        self._pbar = progress(total=settings.steps, desc="Fine-tuning SAM 2")
        worker = create_worker(_train, list(pairs), settings, base, self._stop_event, self)
        # not through this object: these must run even if the widget and job are deleted
        worker.returned.connect(_register)
        worker.finished.connect(self._pbar.close)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_errored)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self.state.running = True
        self._say("Loading the base model and scoring it on the validation planes…")
        worker.start()

    def stop(self) -> None:
        """Stop after the step in flight; the best checkpoint so far is kept and listed."""
        if self.running and not self._stop_event.is_set():
            self._stop_event.set()
            self._say("Stopping after the current step; the best model so far is kept…")

    def _say(self, text: str) -> None:
        self.state.status = text

    def _on_validation(self, validation: Validation) -> None:
        if self._before is None:
            self._before = validation.click_iou
            self._train_started = time.perf_counter()  # the ETA counts training steps only
            self._say(f"Base model: validation click IoU {validation.click_iou:.3f}.")
        self._best = max(self._best, validation.click_iou)
        self.validation.emit(validation)

    def _on_step(self, log: StepLog) -> None:
        if self._pbar is not None:
            self._pbar.update(1)
        elapsed = time.perf_counter() - self._train_started
        eta = elapsed / log.step * (self._steps - log.step)
        self.step.emit(log)
        if not self._stop_event.is_set():
            self._say(
                f"Step {log.step}/{self._steps}, loss {log.loss['total']:.3f} "
                f"(~{eta:.0f} s left); validation click IoU {self._before or 0.0:.3f} → "
                f"best {self._best:.3f}"
            )

    def _on_returned(self, result: FineTuneResult | Failure) -> None:
        if isinstance(result, Failure):
            self.failed.emit(result.message)
            return
        self._say(describe(result))
        self.done.emit(result)

    def _on_errored(self, exc: BaseException) -> None:
        # napari shows the error itself, with its traceback
        self._say(f"Fine-tuning failed: {type(exc).__name__}: {exc}")

    def _on_finished(self) -> None:
        self._worker, self._pbar = None, None  # the bar was closed by the worker's signal
        self.state.running = False


def describe(result: FineTuneResult) -> str:
    """Where the model is, and the validation click IoU before → after."""
    ended = f"Stopped after {result.steps} steps" if result.stopped else f"{result.steps} steps"
    text = (
        f"{ended}: validation click IoU {result.before:.3f} → {result.best:.3f}. "
        f"Saved to {result.weights}; listed as 'fine-tuned: {result.weights.parent.name}' in "
        "the model lists."
    )
    if result.best <= result.before:
        text += (
            " No step beat the base model, so the saved model is its copy: try a lower "
            "learning rate, more steps or more labelled planes."
        )
    return text


def _train(
    pairs: list[PairArrays],
    settings: FineTuneSettings,
    base: ModelChoice,
    stop: threading.Event,
    job: FineTuneJob,
) -> FineTuneResult | Failure:
    """The worker body: the headless runner, with expected failures returned as sentences."""
    from napari_sam2.fine_tune.run import run_fine_tuning

    try:
        stacks = pair_stacks(pairs, with_clips=settings.clips)
        return run_fine_tuning(
            stacks,
            settings.out_dir,
            base,
            settings.options(),
            val_fraction=settings.val_fraction,
            validate_every=settings.validate_every,
            validation_batches=settings.validation_batches,
            overwrite=settings.overwrite,
            stop=stop.is_set,
            on_step=job._worker_step.emit,
            on_validation=job._worker_validation.emit,
        )
    except (ValueError, OSError) as exc:  # bad data, missing checkpoint, folder not writable
        return Failure(f"Fine-tuning did not run: {exc}")


def _register(result: FineTuneResult | Failure) -> None:
    """List a finished (or stopped) run's model in every widget's model list."""
    if not isinstance(result, Failure):
        USER_MODELS.add(result.weights)
