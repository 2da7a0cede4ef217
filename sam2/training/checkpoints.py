"""Trained weights as official-key safetensors plus the config they need, and resume state.

``save_weights(model, "x.safetensors")`` writes ``x.safetensors`` (adapters merged, keys as in
Meta's checkpoints) and ``x.json`` (the :class:`SAM2Config`), so that
``build_sam2("x.json", "x.safetensors")`` (or the registered config name) loads it strictly.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

from sam2.configs import SAM2Config, config_to_dict, load_config_json
from sam2.modeling.sam2_model import SAM2Model
from sam2.training.trainable import has_lora, merge_lora


def config_path_for(weights: str | os.PathLike[str]) -> Path:
    """The JSON written beside a weights file."""
    return Path(weights).with_suffix(".json")


def save_weights(model: SAM2Model, path: str | os.PathLike[str]) -> Path:
    """Write official-key weights (fp32, LoRA merged on a copy) and ``model.config`` beside
    them (the JSON is what build_sam2 needs to rebuild the same architecture)."""
    config = model.config
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"weights are written as .safetensors, got {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    plain = merge_lora(copy.deepcopy(model)) if has_lora(model) else model
    state = {k: v.detach().float().contiguous().cpu() for k, v in plain.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp), metadata={"config": config.name})
    os.replace(tmp, path)
    config_path_for(path).write_text(json.dumps({"config": config_to_dict(config)}, indent=1))
    return path


def check_config(path: str | os.PathLike[str], expected: SAM2Config) -> None:
    """Refuse a checkpoint whose saved config is not the model's (names the differences)."""
    file = config_path_for(path)
    if not file.is_file():
        raise ValueError(f"no config {file.name} beside {Path(path).name}; cannot check it")
    saved = load_config_json(str(file))
    if saved != expected:
        a, b = config_to_dict(saved), config_to_dict(expected)
        diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        raise ValueError(
            f"checkpoint {Path(path).name} was trained with config {saved.name!r}, which differs "
            f"from the model's {expected.name!r} in {diff}; build the model from {file.name}"
        )
