"""Probes about building the reference model and moving state dicts in and out of it."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from sam2.build_sam import build_sam2, build_sam2_video_predictor


def build(config: str, ckpt: str | None = None, video: bool = False, **kwargs: Any) -> Any:
    """The reference model for a config name, random or loaded from ``ckpt`` (strict)."""
    overrides = [f"++model.{k}={v}" for k, v in kwargs.pop("overrides", {}).items()]
    builder = build_sam2_video_predictor if video else build_sam2
    return builder(config, ckpt, device="cpu", hydra_overrides_extra=overrides, **kwargs)


def state_dict_spec(inputs: dict[str, np.ndarray], config: str) -> dict[str, Any]:
    """Key names, shapes and parameter count of a freshly built reference model."""
    model = build(config)
    sd = model.state_dict()
    return {
        "names": np.array(list(sd)),
        "shapes": np.array(json.dumps([list(t.shape) for t in sd.values()])),
        "param_count": np.array(sum(p.numel() for p in model.parameters())),
    }


def save_random_checkpoint(
    inputs: dict[str, np.ndarray], config: str, path: str, seed: int
) -> dict:
    """Write ``{"model": state_dict}`` of a reference model initialised with ``seed``."""
    torch.manual_seed(seed)
    model = build(config)
    torch.save({"model": model.state_dict()}, path)
    return {"param_count": np.array(sum(p.numel() for p in model.parameters()))}


def load_checkpoint(inputs: dict[str, np.ndarray], config: str, path: str) -> dict:
    """Load a checkpoint strictly into the reference; returns a checksum of the loaded weights."""
    model = build(config, ckpt=path)
    total = sum(float(t.double().sum()) for t in model.state_dict().values())
    return {"checksum": np.array(total)}
