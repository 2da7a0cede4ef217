"""``precision="auto"``: bf16 only where the hardware computes it, and the user is told why."""

from __future__ import annotations

from pathlib import Path

import pytest

import sam2.precision as precision
from sam2.precision import (
    EmulatedBF16Warning,
    bf16_units,
    check_precision,
    choose_precision,
)


def test_cpu_bf16_units_follow_the_cpu_flags() -> None:
    """On Linux x86 the answer is what /proc/cpuinfo lists (avx512_bf16 or amx_bf16)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists() or "avx" not in cpuinfo.read_text():
        pytest.skip("needs Linux on x86")
    flags = precision._cpu_flags()
    has_units, found = bf16_units("cpu")
    assert has_units == bool({"avx512_bf16", "amx_bf16"} & flags)
    assert ("has bfloat16 units" in found) == has_units


@pytest.mark.parametrize("units", [True, False])
def test_auto_picks_bf16_only_with_bf16_units(units: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "bf16_units", lambda device="cpu": (units, "the CPU said so"))
    decision = choose_precision("auto", "cpu")
    assert decision.precision == ("bf16" if units else "fp32")
    assert decision.reason == f"auto: {decision.precision}, the CPU said so"
    assert check_precision("auto", "cpu") == decision.precision


def test_forced_bf16_without_units_warns_and_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "bf16_units", lambda device="cpu": (False, "no units here"))
    with pytest.warns(EmulatedBF16Warning, match="several times slower.*no units here"):
        decision = choose_precision("bf16", "cpu")
    assert decision.precision == "bf16"
    assert choose_precision("fp32", "cpu").reason == "fp32, as asked"


def test_auto_off_cpu_and_cuda_is_fp32() -> None:
    decision = choose_precision("auto", "meta")
    assert decision.precision == "fp32" and "not used on 'meta'" in decision.reason


def test_unknown_choice_names_the_options() -> None:
    with pytest.raises(ValueError, match=r"one of 'auto', 'fp32', 'bf16', got 'half'"):
        choose_precision("half")
