"""The training loop: AdamW, warm-up + cosine LR, optional bf16 autocast, accumulation, resume.

One optimizer step draws ``accumulate`` micro-batches, each a batch of images or (with
probability ``video_fraction``) a batch of clips, sums the losses of every prediction step
and back-propagates. Everything random comes from the seeded generators held here, and
:meth:`Trainer.save` writes them with the model and optimizer, so :meth:`Trainer.resume`
continues exactly where training stopped.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from sam2.modeling.sam2_model import SAM2Model
from sam2.training.checkpoints import check_config, save_weights
from sam2.training.data import StackDataset
from sam2.training.forward import StepPrediction, image_forward, video_forward
from sam2.training.losses import LossTerms, LossWeights, step_loss
from sam2.training.prompts import PromptOptions
from sam2.training.trainable import Trainable, apply_trainable

__all__ = ["StepLog", "Trainer", "TrainingOptions", "save_weights", "total_loss"]

WEIGHTS_NAME, STATE_NAME = "model.safetensors", "trainer_state.pt"


@dataclass(frozen=True)
class TrainingOptions:
    """Everything that decides a training run (defaults: a gentle fine-tune)."""

    steps: int = 1000  # optimizer steps; the LR schedule spans them
    lr: float = 1e-4
    min_lr_ratio: float = 0.1  # cosine decays to lr × this
    warmup_steps: int = 50
    weight_decay: float = 0.1  # not on biases, norms and other 1-D parameters
    grad_clip: float = 0.1  # L2 norm of all trained gradients (the release's); 0 disables
    accumulate: int = 1  # micro-batches per optimizer step
    bf16: bool = False  # autocast the forward pass to bfloat16
    seed: int = 0
    trainable: Trainable = "all"
    lora_rank: int = 4
    lora_alpha: float = 8.0
    images_per_batch: int = 2
    objects_per_image: int = 4  # per image or clip, at most
    video_fraction: float = 0.5  # share of micro-batches that are clips
    clips_per_batch: int = 1
    clip_frames: int = 4
    losses: LossWeights = field(default_factory=LossWeights)
    prompts: PromptOptions = field(default_factory=PromptOptions)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.accumulate < 1:
            raise ValueError(
                f"steps and accumulate must be at least 1, got {self.steps}, {self.accumulate}"
            )
        if not 0 <= self.video_fraction <= 1:
            raise ValueError(f"video_fraction must be in [0, 1], got {self.video_fraction}")
        if self.video_fraction > 0 and self.clip_frames < 2:
            raise ValueError(
                f"video training needs clip_frames >= 2, got {self.clip_frames}; "
                "set video_fraction=0 to train on single images"
            )

    def lr_at(self, step: int) -> float:
        """Linear warm-up, then cosine decay to ``lr × min_lr_ratio`` at ``steps``."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        span = max(self.steps - self.warmup_steps, 1)
        progress = min((step - self.warmup_steps) / span, 1.0)
        low = self.lr * self.min_lr_ratio
        return low + (self.lr - low) * 0.5 * (1 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class StepLog:
    """What one optimizer step did (loss terms averaged over its micro-batches)."""

    step: int  # steps done after this one (1 for the first)
    kind: Literal["image", "video", "mixed"]
    loss: dict[str, float]  # total, mask, dice, iou, object_score
    lr: float
    seconds: float


def total_loss(preds: list[StepPrediction], weights: LossWeights) -> LossTerms:
    """Sum of :func:`step_loss` over every prediction step (each normalised per object)."""
    terms: LossTerms | None = None
    for p in preds:
        n = p.targets.shape[0]
        t = step_loss(p.masks, p.ious, p.object_score_logits, p.targets, n, weights)
        terms = t if terms is None else terms + t
    if terms is None:
        raise ValueError("no prediction step to compute a loss on")
    return terms


class Trainer:
    """Trains ``model`` on ``data`` as ``options`` say (the model is changed in place)."""

    def __init__(self, model: SAM2Model, data: StackDataset, options: TrainingOptions) -> None:
        if data.image_size != model.image_size:
            raise ValueError(
                f"the dataset makes {data.image_size}-pixel inputs but the model takes "
                f"{model.image_size}; build the StackDataset with image_size={model.image_size}"
            )
        self.model, self.data, self.options = model, data, options
        #: Names of the parameters that train (everything else is frozen).
        self.trained = apply_trainable(
            model, options.trainable, options.lora_rank, options.lora_alpha
        )
        decay: list[torch.nn.Parameter] = []
        no_decay: list[torch.nn.Parameter] = []
        for name, p in model.named_parameters():
            if p.requires_grad:
                (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
        self.optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": options.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=options.lr,
        )
        self.step = 0
        self.rng = np.random.default_rng(options.seed)  # data draws and augmentation
        self.generator = torch.Generator().manual_seed(options.seed)  # prompt simulation
        torch.manual_seed(options.seed)  # dropout and drop-path

    def _micro_batch(self) -> tuple[LossTerms, bool]:
        """Loss of one drawn batch, and whether it was a batch of clips."""
        o, device = self.options, self.model.device
        autocast = torch.autocast(device.type, torch.bfloat16, enabled=o.bf16)
        video = bool(self.rng.random() < o.video_fraction)
        forward: Callable[..., list[StepPrediction]]
        if video:
            clips = self.data.clip_batch(
                self.rng, o.clips_per_batch, o.clip_frames, o.objects_per_image
            )
            forward, tensors = video_forward, (clips.images, clips.targets, clips.clip_index)
        else:
            batch = self.data.image_batch(self.rng, o.images_per_batch, o.objects_per_image)
            forward, tensors = image_forward, (batch.images, batch.targets, batch.image_index)
        images, targets, index = (t.to(device) for t in tensors)
        with autocast:
            preds = forward(self.model, images, targets, index, self.generator, o.prompts)
        return total_loss(preds, o.losses), video

    def train_step(self) -> StepLog:
        """One optimizer step."""
        o = self.options
        start = time.perf_counter()
        self.model.train()
        lr = o.lr_at(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        logs: dict[str, float] = {}
        kinds = set()
        for _ in range(o.accumulate):
            terms, video = self._micro_batch()
            kinds.add(video)
            (terms.total / o.accumulate).backward()
            for k, v in terms.as_floats().items():
                logs[k] = logs.get(k, 0.0) + v / o.accumulate
        params = [p for p in self.model.parameters() if p.requires_grad]
        if o.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, o.grad_clip)
        self.optimizer.step()
        self.step += 1
        kind: Literal["image", "video", "mixed"] = (
            "mixed" if len(kinds) > 1 else ("video" if kinds == {True} else "image")
        )
        return StepLog(self.step, kind, logs, lr, time.perf_counter() - start)

    def run(self, stop: Callable[[], bool] | None = None) -> Iterator[StepLog]:
        """Steps until ``options.steps`` are done or ``stop()`` says so (checked before each)."""
        while self.step < self.options.steps and not (stop is not None and stop()):
            yield self.train_step()

    # ---------------------------------------------------------------- checkpoints
    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``model.safetensors`` + ``model.json`` (what build_sam2 loads, adapters
        merged) and the resume state into ``directory``; returns the weights' path."""
        folder = Path(directory)
        weights = save_weights(self.model, folder / WEIGHTS_NAME)
        state = {
            "model": self.model.state_dict(),  # with adapters, for resuming
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "numpy_rng": self.rng.bit_generator.state,
            "torch_generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "options": repr(self.options),
        }
        tmp = folder / (STATE_NAME + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, folder / STATE_NAME)
        return weights

    def resume(self, directory: str | os.PathLike[str]) -> None:
        """Continue from :meth:`save`'s folder (same config and options needed).

        The state is read with ``weights_only=True``: tensors and plain containers only, so
        a resume file cannot run code.
        """
        folder = Path(directory)
        check_config(folder / WEIGHTS_NAME, self.model.config)
        state: dict[str, Any] = torch.load(
            folder / STATE_NAME, map_location="cpu", weights_only=True
        )
        if state["options"] != repr(self.options):
            raise ValueError(
                "the checkpoint was trained with other TrainingOptions:\n"
                f"  saved: {state['options']}\n  given: {self.options!r}"
            )
        self.model.load_state_dict(state["model"], strict=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.rng.bit_generator.state = state["numpy_rng"]
        self.generator.set_state(state["torch_generator"])
        torch.set_rng_state(state["torch_rng"])
