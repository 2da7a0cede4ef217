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

Hardware decides whether bf16 pays: on a CPU with bfloat16 units (AVX512-BF16 or AMX) our
bf16 mode tracks about 3× faster than fp32, on an AVX2-only CPU bf16 is emulated and about 6×
*slower*. ``precision="auto"`` (:func:`choose_precision`) therefore picks bf16 only on such a
CPU or on a CUDA device with bf16 support, and says why; forcing ``"bf16"`` where it is
emulated warns.

This module imports torch only inside its functions: :data:`Precision` and :data:`PRECISIONS`
can be imported by code that must start without torch (the plugin's widgets).
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:  # torch is imported where it is used, so that the names above need no torch
    import torch
    from torch import nn

__all__ = [
    "PRECISIONS",
    "PRECISION_CHOICES",
    "EmulatedBF16Warning",
    "Precision",
    "PrecisionChoice",
    "PrecisionDecision",
    "autocast_context",
    "bf16_units",
    "check_precision",
    "choose_precision",
    "prefer_explicit_attention",
]

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
#: What a user may ask for: a precision, or ``"auto"`` (let the hardware decide).
PrecisionChoice = Literal["auto", "fp32", "bf16"]
PRECISION_CHOICES: tuple[PrecisionChoice, ...] = get_args(PrecisionChoice)

#: Device types on which ``torch.autocast`` supports bfloat16 for our ops.
_BF16_DEVICE_TYPES = ("cpu", "cuda")


class EmulatedBF16Warning(RuntimeWarning):
    """bf16 was asked for on a CPU that only emulates it (several times slower than fp32)."""


@dataclass(frozen=True)
class PrecisionDecision:
    """The precision a run uses and, for the user, why."""

    precision: Precision
    reason: str


def _cpu_flags() -> set[str]:
    """The CPU feature flags Linux reports (empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86, aarch64
            return set(value.split())
    return set()


def bf16_units(device: torch.device | str = "cpu") -> tuple[bool, str]:
    """Whether ``device`` computes bfloat16 in hardware, and what was found."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
        name = torch.cuda.get_device_name(dev) if torch.cuda.is_available() else "no CUDA device"
        return ok, f"{name} {'supports' if ok else 'lacks'} bfloat16"
    if dev.type != "cpu":
        return False, f"bf16 autocast is not used on {dev.type!r}"
    found = []
    if getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)():
        found.append("AMX")
    if getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)():
        found.append("AVX512-BF16")
    flags = _cpu_flags()
    if not found and "bf16" in flags:  # aarch64 (Neoverse V1+, Apple M2+ under Linux)
        found.append("Arm BF16")
    if found:
        return True, f"this CPU has bfloat16 units ({', '.join(found)})"
    return False, "this CPU has no bfloat16 units (AVX512-BF16/AMX), so bf16 would be emulated"


def choose_precision(choice: str, device: torch.device | str = "cpu") -> PrecisionDecision:
    """Resolve ``"auto"`` for ``device`` (bf16 only where it runs in hardware); a named
    precision is kept, with a warning when ``"bf16"`` would be emulated (slower than fp32)."""
    if choice not in PRECISION_CHOICES:
        raise ValueError(
            f"precision must be one of {', '.join(map(repr, PRECISION_CHOICES))}, got {choice!r}"
        )
    units, found = bf16_units(device)
    if choice == "auto":
        if units:
            return PrecisionDecision("bf16", f"auto: bf16, {found}")
        return PrecisionDecision("fp32", f"auto: fp32, {found}")
    if choice == "bf16" and not units:
        import torch

        if torch.device(device).type == "cpu":
            warnings.warn(
                f"precision='bf16' on a CPU without bfloat16 units runs several times slower "
                f"than fp32 ({found}); use precision='auto' or 'fp32'",
                EmulatedBF16Warning,
                stacklevel=3,
            )
    return PrecisionDecision(choice, f"{choice}, as asked")


def check_precision(precision: str, device: torch.device | str | None = None) -> Precision:
    """``precision`` as a :data:`Precision`, or a ValueError that names the options.

    ``"auto"`` is resolved for ``device`` (:func:`choose_precision`). With a ``device``, also
    checks that bf16 autocast exists there (CPU and CUDA).
    """
    if precision == "auto" or (precision == "bf16" and device is not None):
        precision = choose_precision(precision, "cpu" if device is None else device).precision
    if precision not in PRECISIONS:
        raise ValueError(
            f"precision must be one of {', '.join(map(repr, PRECISION_CHOICES))}, got {precision!r}"
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
