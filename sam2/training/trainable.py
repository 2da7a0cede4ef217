"""What is trained: whole model, parts of it, or low-rank adapters (LoRA) on attention layers.

LoRA adds ``lora_A`` (r, in) and ``lora_B`` (out, r) beside the frozen ``weight`` of every
linear layer inside an attention module, so the output is ``W x + b + (alpha / r) B A x``;
:func:`merge_lora` folds ``(alpha / r) B A`` into ``W`` and gives back plain ``nn.Linear``
layers, whose state dict has exactly the official checkpoint's keys.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sam2.modeling.attention import Attention
from sam2.modeling.hiera import MultiScaleAttention

Trainable = Literal["all", "no_image_encoder", "decoder", "lora"]
TRAINABLE_CHOICES: tuple[str, ...] = get_args(Trainable)
_ATTENTION_TYPES = (Attention, MultiScaleAttention)


class LoRALinear(nn.Linear):
    """A frozen linear layer plus a trainable low-rank update (B starts at zero: no change)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        if rank < 1:
            raise ValueError(f"LoRA rank must be at least 1, got {rank}")
        super().__init__(
            base.in_features,
            base.out_features,
            bias=base.bias is not None,
            device=base.weight.device,
            dtype=base.weight.dtype,
        )
        with torch.no_grad():
            self.weight.copy_(base.weight)
            if base.bias is not None and self.bias is not None:
                self.bias.copy_(base.bias)
        self.rank, self.alpha = rank, float(alpha)
        self.scaling = self.alpha / rank
        device, dtype = base.weight.device, base.weight.dtype
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, device=device, dtype=dtype))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, device=device, dtype=dtype))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def forward(self, x: Tensor) -> Tensor:
        update = F.linear(F.linear(x, self.lora_A), self.lora_B) * self.scaling
        return F.linear(x, self.weight, self.bias) + update

    def merged(self) -> nn.Linear:
        """A plain linear layer computing the same function."""
        plain = nn.Linear(
            self.in_features,
            self.out_features,
            bias=self.bias is not None,
            device=self.weight.device,
            dtype=self.weight.dtype,
        )
        with torch.no_grad():
            plain.weight.copy_(self.weight + (self.lora_B @ self.lora_A) * self.scaling)
            if self.bias is not None and plain.bias is not None:
                plain.bias.copy_(self.bias)
        return plain


def add_lora(model: nn.Module, rank: int = 4, alpha: float = 8.0) -> list[str]:
    """Wrap every linear layer of every attention module in place; returns their names."""
    wrapped = []
    for name, module in list(model.named_modules()):
        if not isinstance(module, _ATTENTION_TYPES):
            continue
        for child_name, child in list(module.named_children()):
            if type(child) is nn.Linear:
                setattr(module, child_name, LoRALinear(child, rank, alpha))
                wrapped.append(f"{name}.{child_name}" if name else child_name)
    if not wrapped:
        raise ValueError("the model has no attention linear layers to add LoRA adapters to")
    return wrapped


def has_lora(model: nn.Module) -> bool:
    return any(isinstance(m, LoRALinear) for m in model.modules())


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its weight, in place; the model is returned for chaining."""
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, LoRALinear):
                setattr(module, child_name, child.merged())
    return model


def _prefixes(choice: str) -> tuple[str, ...] | None:
    """Parameter-name prefixes that train (None: all parameters)."""
    if choice == "all":
        return None
    if choice == "decoder":
        return ("sam_mask_decoder.",)
    return ()  # no_image_encoder and lora: handled by name below


def apply_trainable(
    model: nn.Module, choice: Trainable, lora_rank: int = 4, lora_alpha: float = 8.0
) -> list[str]:
    """Freeze what ``choice`` does not train (adds adapters for ``"lora"``).

    Returns the names of the trainable parameters. ``"decoder"`` trains the SAM mask decoder
    only; ``"no_image_encoder"`` everything but ``image_encoder``; ``"lora"`` only adapters.
    """
    if choice not in TRAINABLE_CHOICES:
        raise ValueError(f"trainable must be one of {TRAINABLE_CHOICES}, got {choice!r}")
    if choice == "lora" and not has_lora(model):
        add_lora(model, lora_rank, lora_alpha)
    names = []
    prefixes = _prefixes(choice)
    for name, param in model.named_parameters():
        if choice == "lora":
            train = name.endswith(("lora_A", "lora_B"))
        elif choice == "no_image_encoder":
            train = not name.startswith("image_encoder.")
        else:
            train = prefixes is None or name.startswith(prefixes)
        param.requires_grad_(train)
        if train:
            names.append(name)
    return names
