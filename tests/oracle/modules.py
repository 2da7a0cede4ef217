"""Helpers for module-level parity tests: ship our module's weights to the reference."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from tests.oracle.harness import Oracle


def randomize_(module: nn.Module, seed: int = 0, scale: float = 0.2) -> nn.Module:
    """Give every parameter and buffer random values (LayerNorm weights around 1).

    Default initialisations leave many tensors at 0 or 1, which would hide wiring mistakes.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
            if not tensor.is_floating_point():
                continue
            noise = torch.randn(tensor.shape, generator=gen) * scale
            if name.endswith("weight") and tensor.ndim == 1:  # norms and layer scales
                tensor.copy_(1.0 + noise)
            else:
                tensor.copy_(noise)
    return module


def reference_forward(
    oracle: Oracle,
    module: nn.Module,
    target: str,
    kwargs: Mapping[str, Any],
    args: Mapping[str, torch.Tensor | Sequence[torch.Tensor]],
    call_kwargs: Mapping[str, Any] | None = None,
    method: str = "forward",
) -> dict[str, np.ndarray]:
    """Run the reference ``target(**kwargs)`` with ``module``'s weights on ``args``."""
    inputs: dict[str, np.ndarray] = {
        f"sd.{k}": v.detach().cpu().numpy() for k, v in module.state_dict().items()
    }
    list_args: dict[str, int] = {}
    for name, value in args.items():
        if isinstance(value, torch.Tensor):
            inputs[name] = value.detach().cpu().numpy()
        else:
            list_args[name] = len(value)
            for i, item in enumerate(value):
                inputs[f"{name}.{i}"] = item.detach().cpu().numpy()
    return oracle.call(
        "modules:forward",
        inputs,
        target=target,
        kwargs=dict(kwargs),
        args=list(args),
        call_kwargs=dict(call_kwargs or {}),
        method=method,
        list_args=list_args,
    )


def assert_matches(ours: torch.Tensor, reference: np.ndarray, tol: float = 1e-4) -> None:
    """Equal within ``tol`` relative to the reference's largest magnitude (fp32 rounding scale)."""
    ref = torch.from_numpy(np.asarray(reference)).to(ours.dtype)
    assert ours.shape == ref.shape, f"shape {tuple(ours.shape)} != reference {tuple(ref.shape)}"
    scale = max(1.0, float(ref.abs().max()))
    torch.testing.assert_close(ours, ref, atol=tol * scale, rtol=tol)
