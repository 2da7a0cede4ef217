"""Numerical precision of inference: float32 (the default, the reference's CPU numbers) or bf16.

``"bf16"`` runs the model under ``torch.autocast(device, dtype=torch.bfloat16)``: convolutions,
linear layers, matmuls and attention take bfloat16 inputs, everything else follows its inputs,
and the weights themselves stay float32. We chose autocast over converting the weights
(``model.to(torch.bfloat16)``) because, measured on a 2-core CPU with bf16 matrix units
(``benchmarks/README.md``), the speed is nearly the same (tiny encoder at 1024²: 0.61 s under
autocast, 0.58 s with bf16 weights, 1.37 s in fp32), while autocast

* keeps the residual streams, LayerNorms and softmax of the image encoder and the mask decoder
  in float32 wherever their input is float32, and casts exactly where the reference does when
  it runs under autocast on CUDA (``sam2-model-spec.md`` §6, pitfalls 25 and 27);
* leaves the model untouched, so a model shared with another predictor keeps its fp32
  weights, and the random-Fourier prompt encoding keeps its float32 matrix (in bf16 it would
  lose the precision of the point positions).

CPU autocast, unlike CUDA's, does not force LayerNorm or softmax to float32; they then run in
float32 because the predictor feeds them float32 tensors.

Attention kernels: the explicit matmul → softmax → matmul path (``use_sdpa = False``) was
meant for CPU bf16, but with torch ≥ 2.5 the fused CPU kernel gains as much from bf16 and is
the faster of the two at every size in SAM 2, so bf16 mode keeps the fused kernel.
:func:`prefer_explicit_attention` remains for older torch builds and for tests.
"""

from __future__ import annotations

import contextlib
from typing import Literal, get_args

import torch
from torch import nn

__all__ = [
    "PRECISIONS",
    "Precision",
    "autocast_context",
    "check_precision",
    "prefer_explicit_attention",
]

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[Precision, ...] = get_args(Precision)

#: Device types on which ``torch.autocast`` supports bfloat16 for our ops.
_BF16_DEVICE_TYPES = ("cpu", "cuda")


def check_precision(precision: str, device: torch.device | str | None = None) -> Precision:
    """``precision`` as a :data:`Precision`, or a ValueError that names the options.

    With a ``device``, also checks that bf16 autocast exists there (CPU and CUDA).
    """
    if precision not in PRECISIONS:
        raise ValueError(
            f"precision must be one of {', '.join(map(repr, PRECISIONS))}, got {precision!r}"
        )
    if precision == "bf16" and device is not None:
        device_type = torch.device(device).type
        if device_type not in _BF16_DEVICE_TYPES:
            raise ValueError(
                f"precision='bf16' runs under torch.autocast, which this package supports on "
                f"{' and '.join(_BF16_DEVICE_TYPES)}, not on {device_type!r}; use "
                "precision='fp32' there"
            )
    return precision


def autocast_context(
    precision: Precision, device: torch.device | str
) -> contextlib.AbstractContextManager[None]:
    """The context to run model code in: bf16 autocast on ``device``'s type, or nothing.

    ``"fp32"`` gives a null context, so the fp32 path is exactly the code without this module.
    """
    check_precision(precision, device)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


def prefer_explicit_attention(model: nn.Module, enabled: bool = True) -> int:
    """Switch every attention block of ``model`` to the explicit path (or back to the kernel).

    Sets ``use_sdpa = not enabled`` on each submodule that has a ``use_sdpa`` attribute
    (``Attention``, ``RoPEAttention``, Hiera's ``MultiScaleAttention``). The attribute is typed
    ``Final`` because a block normally keeps its path for life; setting it on the instance is
    how a whole built model is switched. Returns the number of blocks switched.
    """
    count = 0
    for module in model.modules():
        if isinstance(getattr(module, "use_sdpa", None), bool):
            setattr(module, "use_sdpa", not enabled)  # noqa: B010 (Final-typed attribute)
            count += 1
    return count
