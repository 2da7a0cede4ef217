"""Run one reference module on given weights and inputs (module-level parity)."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import torch


def _resolve(target: str) -> Any:
    module_name, _, attr = target.rpartition(".")
    return getattr(importlib.import_module(module_name), attr)


def _flatten(result: Any, prefix: str = "out") -> dict[str, np.ndarray]:
    """Tensors, tuples/lists and dicts of tensors -> {"out", "out.0", "out.key", ...}."""
    if isinstance(result, torch.Tensor):
        return {prefix: result.detach().float().numpy()}
    if isinstance(result, (tuple, list)):
        flat: dict[str, np.ndarray] = {}
        for i, item in enumerate(result):
            flat.update(_flatten(item, f"{prefix}.{i}"))
        return flat
    if isinstance(result, dict):
        flat = {}
        for key, item in result.items():
            flat.update(_flatten(item, f"{prefix}.{key}"))
        return flat
    if result is None:
        return {}
    return {prefix: np.asarray(result)}


def forward(
    inputs: dict[str, np.ndarray],
    target: str,
    kwargs: dict[str, Any],
    args: list[str],
    call_kwargs: dict[str, Any] | None = None,
    method: str = "forward",
    list_args: dict[str, int] | None = None,
) -> dict[str, np.ndarray]:
    """Build ``target(**kwargs)``, load ``sd.*`` inputs strictly, call ``method(*args)``.

    ``args`` name the input arrays passed positionally; ``list_args`` maps a name to a count of
    inputs ``name.0 .. name.{n-1}`` passed as one list argument. Kwargs whose value is a dict
    ``{"__module__": target, "kwargs": {...}}`` are built first (nested modules).
    """

    def build(value: Any) -> Any:
        if isinstance(value, dict) and "__module__" in value:
            return _resolve(value["__module__"])(
                **{k: build(v) for k, v in value["kwargs"].items()}
            )
        if isinstance(value, dict) and "__class__" in value:  # a class, e.g. an activation
            return _resolve(value["__class__"])
        return value

    module = _resolve(target)(**{k: build(v) for k, v in kwargs.items()})
    state = {k[3:]: torch.from_numpy(v) for k, v in inputs.items() if k.startswith("sd.")}
    module.load_state_dict(state, strict=True)
    module.eval()
    positional: list[Any] = []
    for name in args:
        if list_args and name in list_args:
            positional.append(
                [torch.from_numpy(inputs[f"{name}.{i}"]) for i in range(list_args[name])]
            )
        else:
            positional.append(torch.from_numpy(inputs[name]))
    with torch.no_grad():
        result = getattr(module, method)(*positional, **(call_kwargs or {}))
    return _flatten(result)
