"""The training loop: AdamW, warm-up + cosine LR, optional bf16 autocast, accumulation, resume.

One optimizer step draws ``accumulate`` micro-batches, each an image batch or (with
``video_prob``) a batch of clips, sums the per-step losses of every prediction and
back-propagates. Everything random comes from the seeded generators held here, and
:meth:`Trainer.save` writes them with the model and optimizer so :meth:`Trainer.resume`
continues exactly where training stopped.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sam2.modeling.sam2_model import SAM2Model
from sam2.training.checkpoints import check_config, save_weights
from sam2.training.data import StackDataset
from sam2.training.forward import StepPrediction, image_forward, video_forward
from sam2.training.losses import LossTerms, LossWeights, step_loss
from sam2.training.prompts import PromptOptions
from sam2.training.trainable import Trainable, apply_trainable

WEIGHTS_NAME, STATE_NAME = "weights.safetensors", "trainer_state.pt"


@dataclass(frozen=True)
class TrainingOptions:
    """Everything that decides a training run (defaults: a gentle fine-tune)."""

    steps: int = 1000
    lr: float = 1e-4
    min_lr_ratio: float = 0.1  # cosine decays to lr × this
    warmup_steps: int = 50
    weight_decay: float = 0.1  # not on biases, norms and other 1-D parameters
    grad_clip: float = 0.1  # L2 norm; 0 disables
    accumulate: int = 1  # micro-batches per optimizer step
    bf16: bool = False  # autocast the forward pass to bfloat16
    seed: int = 0
    trainable: Trainable = "all"
    lora_rank: int = 4
    lora_alpha: float = 8.0
    images_per_batch: int = 4
    clips_per_batch: int = 1
    clip_frames: int = 4
    max_objects: int = 3  # per image or clip
    video_prob: float = 0.5  # share of micro-batches that are clips
    losses: LossWeights = field(default_factory=LossWeights)
    prompts: PromptOptions = field(default_factory=PromptOptions)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.accumulate < 1:
            raise ValueError("steps and accumulate must be at least 1")
        if self.video_prob > 0 and self.clip_frames < 2:
            raise ValueError(
                f"video training needs clip_frames ≥ 2, got {self.clip_frames}; "
                "set video_prob=0 to train on single images"
            )

    def lr_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        span = max(self.steps - self.warmup_steps, 1)
        progress = min((step - self.warmup_steps) / span, 1.0)
        low = self.lr * self.min_lr_ratio
        return low + (self.lr - low) * 0.5 * (1 + math.cos(math.pi * progress))


def total_loss(preds: list[StepPrediction], weights: LossWeights) -> LossTerms:
    """Sum of :func:`step_loss` over every prediction step (normalised per object)."""
    terms = None
    for p in preds:
        t = step_loss(p.masks, p.ious, p.object_score_logits, p.targets, p.targets.shape[0], weights)
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
        self.trainable = apply_trainable(
            model, options.trainable, options.lora_rank, options.lora_alpha
        )
        decay, no_decay = [], []
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
        self.rng = np.random.default_rng(options.seed)
        self.generator = torch.Generator().manual_seed(options.seed)
        torch.manual_seed(options.seed)  # dropout and drop-path

    def _micro_batch(self) -> LossTerms:
        o = self.options
        autocast = torch.autocast(self.model.device.type, torch.bfloat16, enabled=o.bf16)
        if self.rng.random() < o.video_prob:
            clips = self.data.clip_batch(self.rng, o.clips_per_batch, o.clip_frames, o.max_objects)
            with autocast:
                preds = video_forward(
                    self.model, clips.images.to(self.model.device),
                    clips.targets.to(self.model.device), clips.clip_index.to(self.model.device),
                    self.generator, o.prompts,
                )
        else:
            batch = self.data.image_batch(self.rng, o.images_per_batch, o.max_objects)
            with autocast:
                preds = image_forward(
                    self.model, batch.images.to(self.model.device),
                    batch.targets.to(self.model.device), batch.image_index.to(self.model.device),
                    self.generator, o.prompts,
                )
        return total_loss(preds, o.losses)

    def train_step(self) -> dict[str, float]:
        """One optimizer step; returns the mean loss terms and the learning rate used."""
        o = self.options
        self.model.train()
        lr = o.lr_at(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        logs: dict[str, float] = {}
        for _ in range(o.accumulate):
            terms = self._micro_batch()
            (terms.total / o.accumulate).backward()
            for k, v in terms.as_floats().items():
                logs[k] = logs.get(k, 0.0) + v / o.accumulate
        params = [p for p in self.model.parameters() if p.requires_grad]
        if o.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, o.grad_clip)
        self.optimizer.step()
        self.step += 1
        return {**logs, "lr": lr}

    # ---------------------------------------------------------------- checkpoints
    def save(self, directory: str | os.PathLike[str]) -> Path:
        """``weights.safetensors`` + ``weights.json`` (loadable by build_sam2) and the state."""
        folder = Path(directory)
        save_weights(self.model, folder / WEIGHTS_NAME, self.model.config)
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
        return folder

    def resume(self, directory: str | os.PathLike[str]) -> None:
        """Continue from :meth:`save`'s folder (same config and options needed)."""
        folder = Path(directory)
        check_config(folder / WEIGHTS_NAME, self.model.config)
        state: dict[str, Any] = torch.load(folder / STATE_NAME, map_location="cpu", weights_only=True)
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


def options_with(options: TrainingOptions, **changes: Any) -> TrainingOptions:
    return dataclasses.replace(options, **changes)
