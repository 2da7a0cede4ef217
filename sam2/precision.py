"""Numerical precision of inference: float32 (the default, the reference's CPU numbers) or bf16.

``"bf16"`` runs the model under ``torch.autocast(device, dtype=torch.bfloat16)``: convolutions,
linear layers, matmuls and attention take bfloat16 inputs, other ops follow their inputs, and
the weights stay float32. Measured on a 2-core CPU with bf16 matrix units (tiny encoder at
1024², ``benchmarks/README.md``): fp32 1.37 s, autocast 0.61 s, weights converted with
``model.to(torch.bfloat16)`` 0.58 s, with the same mask agreement. We chose autocast because

* it casts where the reference does when it runs under CUDA autocast (``sam2-model-spec.md``
  §6, pitfalls 25 and 27): the FPN's top-down sum and the decoder's image-side residual
  stream stay float32, nn.LayerNorm statistics and the fused attention's softmax are
  computed in float32, and the hand-written LayerNorm2d runs in its input's dtype;
* it leaves the model untouched: a model shared with another predictor keeps its weights, and
  the prompt encoder's random-Fourier matrix stays float32 (converted weights would also need
  dtype special cases, as the FPN hands float32 features to the next layers).

CPU autocast, unlike CUDA's, leaves LayerNorm in its input dtype: statistics are still
accumulated in float32, but the output stays bfloat16 where CUDA would return float32 (in Hiera
after its first pooling block, and in the decoder's few prompt tokens).

Attention kernels: the explicit matmul → softmax → matmul path (``use_sdpa = False``) was
meant for CPU bf16, but with torch 2.13 the fused CPU kernel gains from bf16 too and is as fast
or faster at every attention shape in SAM 2 (a global Hiera block: 27 ms fused, 105 ms
explicit), so bf16 mode keeps the fused kernel. :func:`prefer_explicit_attention` switches a
whole model, for older torch builds and for tests.

This module imports torch only inside its functions: :data:`Precision` and :data:`PRECISIONS`
can be imported by code that must start without torch (the plugin's widgets).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:  # torch is imported where it is used, so that the names above need no torch
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
        import torch

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
    import torch

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
