"""The command line's code paths import no napari: checked in fresh interpreters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sam2.prompts import Point, PromptSet, save_prompts

NO_NAPARI = (
    "import sys; loaded = [m for m in sys.modules if m == 'napari' or m.startswith('napari.')]; "
    "assert not loaded, loaded"
)


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=False
    )


def test_importing_the_headless_side_imports_no_napari() -> None:
    """headless, cli, replay, planning and the prompt model load without napari."""
    modules = "napari_sam2.headless, napari_sam2.cli, napari_sam2.replay, napari_sam2.prompts"
    done = _python(f"import {modules}, napari_sam2.segment.propagation; {NO_NAPARI}")
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 3-frame stack, its seeds, a one-click session and a random tiny checkpoint."""
    import torch

    from sam2.build_sam import build_sam2

    folder = tmp_path_factory.mktemp("headless")
    stack = np.zeros((3, 64, 64), np.uint16)
    stack[:, 20:40, 20:40] = 1000
    seeds = np.zeros((64, 64), np.uint16)
    seeds[22:38, 22:38] = 1
    tifffile.imwrite(folder / "stack.tif", stack, photometric="minisblack")
    tifffile.imwrite(folder / "seeds.tif", seeds)
    prompts = PromptSet("stack", (3, 64, 64), 0, (0.0, 1000.0), [Point((1, 30, 30), True, 1)])
    save_prompts(prompts, folder / "stack")
    torch.manual_seed(0)
    model = build_sam2("tiny", device="cpu", hydra_overrides_extra=["++model.image_size=256"])
    torch.save({"model": model.state_dict()}, folder / "tiny.pt")
    return {"folder": folder}


@pytest.mark.parametrize("command", ["segment", "track"])
def test_running_a_command_imports_no_napari(case: dict[str, Path], command: str) -> None:
    """``napari-sam2 segment`` and ``track`` on a tiny case succeed without importing napari."""
    folder = case["folder"]
    model = [
        "--checkpoint", str(folder / "tiny.pt"), "--config", "sam2.1_hiera_t",
        "--image-size", "256", "--device", "cpu", "--quiet",
    ]  # fmt: skip
    if command == "segment":
        args = ["segment", str(folder / "stack.tif"), "--session", str(folder / "stack.sam2.json")]
        args += ["--out", str(folder / "labels.tif"), "--overwrite"]
    else:
        args = ["track", str(folder / "stack.tif"), "--seeds", str(folder / "seeds.tif")]
        args += ["--out", str(folder / "tracked"), "--entries", "none", "--overwrite"]
    code = f"from napari_sam2.cli import main; assert main({[*args, *model]!r}) == 0; {NO_NAPARI}"
    done = _python(code)
    assert done.returncode == 0, done.stderr
