"""``napari-sam2 track`` and ``segment`` given bad inputs, failing or stopped: nothing the user
made is lost, and nothing half-done looks like a result (issue #16).

Every test hashes the files it starts from and checks them byte for byte afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from napari_sam2.cli import main
from napari_sam2.headless import OUTPUTS
from napari_sam2.prompts import Point, PromptSet, save_prompts

SHAPE = (3, 64, 64)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, fast_predictor: Any) -> Path:
    """The random tiny model's weights, loaded by ``--checkpoint`` (real loads, ~0.3 s; run
    at 128 px, where a 3-frame run takes about a second)."""
    import torch

    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    torch.save({"model": fast_predictor.model.state_dict()}, path)
    return path


@pytest.fixture
def case(tmp_path: Path) -> dict[str, Path]:
    """A 3-frame stack with one bright square, its seeds, and a session with one click and
    saved labels (``stack.labels.tif``) beside it."""
    stack = np.zeros(SHAPE, np.uint16)
    stack[:, 20:40, 20:40] = 1000
    seeds = np.zeros(SHAPE[1:], np.uint16)
    seeds[22:38, 22:38] = 1
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    tifffile.imwrite(tmp_path / "seeds.tif", seeds)
    labels = np.zeros(SHAPE, np.uint32)
    labels[0, 2:6, 2:6] = 7
    prompts = PromptSet("stack", SHAPE, 0, (0.0, 1000.0), [Point((1, 30, 30), True, 1)])
    session = save_prompts(prompts, tmp_path / "stack")
    # the labels as the widget saves them, written here with an explicit photometric (a
    # (3, Y, X) array would otherwise be taken for RGB planes)
    tifffile.imwrite(tmp_path / "stack.labels.tif", labels, photometric="minisblack")
    document = json.loads(session.read_text())
    session.write_text(json.dumps({**document, "labels": "stack.labels.tif"}))
    return {
        "folder": tmp_path,
        "stack": tmp_path / "stack.tif",
        "seeds": tmp_path / "seeds.tif",
        "session": session,
        "labels": tmp_path / "stack.labels.tif",
    }


def model_args(checkpoint: Path) -> list[str]:
    return [
        "--checkpoint", str(checkpoint), "--config", "sam2.1_hiera_t",
        "--image-size", "128", "--device", "cpu", "--quiet",
    ]  # fmt: skip


def hashes(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (links as what they point to) with its SHA-256."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def one_error_line(err: str) -> str:
    """The single ``napari-sam2: error:`` line of stderr, which holds no traceback."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("napari-sam2:")]
    assert len(lines) == 1 and lines[0].startswith("napari-sam2: error: "), err
    return lines[0]


def track(case: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["track", str(case["stack"]), "--seeds", str(case["seeds"]), "--out", str(out),
            "--entries", "none", *extra]  # fmt: skip


def segment(case: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["segment", str(case["stack"]), "--session", str(case["session"]), "--out", str(out),
            *extra]  # fmt: skip


# ------------------------------------------------------------------ 1: outputs over inputs
@pytest.mark.parametrize(
    ("name", "role"),
    [
        ("stack", "is the stack"),
        ("symlink", "links to the stack"),
        ("hardlink", "links to the stack"),
        ("session", "is the session file"),
        ("labels", "is the session's labels"),
    ],
)
def test_segment_refuses_an_output_that_is_an_input(
    case: dict[str, Path],
    checkpoint: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    role: str,
) -> None:
    """``--out`` naming the stack, the session file or its labels, directly or through a
    link, is refused with status 2 even with --overwrite; no file changes."""
    folder = case["folder"]
    out = {"symlink": folder / "out.tif", "hardlink": folder / "out.tif"}.get(name, case.get(name))
    assert out is not None
    if name == "symlink":
        out.symlink_to(case["stack"])
    elif name == "hardlink":
        os.link(case["stack"], out)
    before = hashes(folder)
    status = main([*segment(case, out, "--overwrite"), *model_args(checkpoint)])
    line = one_error_line(capsys.readouterr().err)
    assert status == 2
    assert role in line and "would destroy the input" in line, line
    assert hashes(folder) == before


@pytest.mark.parametrize("layout", ["labels.tif", "linked folder", "inside ctc"])
def test_track_refuses_an_out_folder_holding_an_input(
    tmp_path: Path,
    case: dict[str, Path],
    checkpoint: Path,
    capsys: pytest.CaptureFixture[str],
    layout: str,
) -> None:
    """A results folder where an output name is the stack or the seeds (itself, through a
    linked folder, or inside the ``ctc`` folder a run replaces) is refused, with --overwrite
    too; the inputs are untouched."""
    data = tmp_path / "data"
    data.mkdir()
    out = data
    if layout == "labels.tif":
        case["stack"] = case["stack"].rename(data / "labels.tif")
    elif layout == "linked folder":
        case["seeds"] = case["seeds"].rename(data / "labels.tif")
        out = tmp_path / "results"
        out.symlink_to(data, target_is_directory=True)
    else:
        (data / "ctc").mkdir()
        case["stack"] = case["stack"].rename(data / "ctc" / "stack.tif")
    before = hashes(tmp_path)
    status = main([*track(case, out, "--overwrite"), *model_args(checkpoint)])
    line = one_error_line(capsys.readouterr().err)
    assert status == 2
    assert "the stack" in line or "the seeds" in line, line
    assert hashes(tmp_path) == before


def test_track_overwrite_keeps_files_we_did_not_write_in_the_ctc_folder(
    tmp_path: Path, case: dict[str, Path], checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A results folder whose ``ctc`` holds a file no export of ours wrote (a hand-corrected
    mask) is refused before tracking, with --overwrite too; the file stays."""
    out = tmp_path / "results"
    (out / "ctc").mkdir(parents=True)
    (out / "ctc" / "mask000.tif").write_bytes(b"hand-corrected")
    before = hashes(tmp_path)
    status = main([*track(case, out, "--overwrite"), *model_args(checkpoint)])
    line = one_error_line(capsys.readouterr().err)
    assert status == 2 and "no napari-sam2 CTC export wrote" in line, line
    assert hashes(tmp_path) == before


# ------------------------------------------------------------------ 3: damaged stacks
def truncated_stack(path: Path, keep_frames: int) -> np.ndarray:
    """A zlib-compressed (3, 64, 64) TIFF cut 10 bytes into frame ``keep_frames``'s data."""
    stack = np.random.default_rng(1).integers(0, 1000, SHAPE).astype(np.uint16)
    tifffile.imwrite(path, stack, compression="zlib", photometric="minisblack")
    with tifffile.TiffFile(path) as tif:
        cut = tif.pages[keep_frames].dataoffsets[0] + 10
    path.write_bytes(path.read_bytes()[:cut])
    return stack


@pytest.mark.parametrize("command", ["track", "segment"])
def test_a_truncated_compressed_stack_is_refused(
    case: dict[str, Path], checkpoint: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """A compressed stack cut inside frame 1 is refused naming the file and the frame, not
    run as a one-frame stack; nothing is written."""
    truncated_stack(case["stack"], keep_frames=1)
    before = hashes(case["folder"])
    out = case["folder"] / "out"
    argv = track(case, out) if command == "track" else segment(case, out.with_suffix(".tif"))
    status = main([*argv, *model_args(checkpoint)])
    line = one_error_line(capsys.readouterr().err)
    assert status == 2
    assert "stack.tif is damaged or truncated from frame 1 on" in line, line
    assert hashes(case["folder"]) == before


# ------------------------------------------------------------------ 5: session labels
@pytest.mark.parametrize("labels_shape", [(64, 64), (2, 64, 64), (3, 32, 32)])
def test_segment_refuses_session_labels_of_another_shape(
    case: dict[str, Path],
    checkpoint: Path,
    capsys: pytest.CaptureFixture[str],
    labels_shape: tuple[int, ...],
) -> None:
    """Saved labels whose shape is not the stack's (2D for a 3D stack: once copied into every
    frame) are refused with both shapes named; no output is written."""
    tifffile.imwrite(case["labels"], np.ones(labels_shape, np.uint32), photometric="minisblack")
    before = hashes(case["folder"])
    status = main([*segment(case, case["folder"] / "out.tif"), *model_args(checkpoint)])
    line = one_error_line(capsys.readouterr().err)
    assert status == 2
    assert f"shape {labels_shape}" in line and f"shape {SHAPE}" in line, line
    assert "stack.labels.tif" in line, line
    assert hashes(case["folder"]) == before


# ------------------------------------------------------------------ 8: failed runs
@pytest.fixture
def offline_hub(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty Hugging Face cache, offline: a hub model cannot be had."""
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path_factory.mktemp("empty_cache")))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


@pytest.mark.parametrize("command", ["track", "segment"])
@pytest.mark.parametrize(
    ("model", "status", "message"),
    [
        (["--checkpoint", "{folder}/bad.pt", "--config", "sam2.1_hiera_t"], 2, "bad.pt"),
        (["--model", "tiny"], 1, "not in the Hugging Face cache"),
        (["--checkpoint", "{ckpt}", "--config", "sam2.1_hiera_t", "--device", "gpu9"], 2, "gpu9"),
        (["--checkpoint", "{ckpt}", "--config", "sam2.1_hiera_t", "--image-size", "100"], 2, "32"),
    ],
    ids=["bad-checkpoint", "offline-hub", "bad-device", "bad-image-size"],
)
@pytest.mark.usefixtures("offline_hub")
def test_a_model_that_cannot_run_leaves_nothing(
    case: dict[str, Path],
    checkpoint: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    model: list[str],
    status: int,
    message: str,
) -> None:
    """A bad checkpoint, an offline hub or a bad model option ends with one error line and
    its status before any output exists (no all-zero labels.tif blocking the rerun)."""
    folder = case["folder"]
    (folder / "bad.pt").write_bytes(b"not a checkpoint")
    before = hashes(folder)
    args = [a.format(folder=folder, ckpt=checkpoint) for a in model]
    out = folder / "out"
    argv = track(case, out) if command == "track" else segment(case, out)
    assert main([*argv, *args, "--quiet"]) == status
    assert message in one_error_line(capsys.readouterr().err)
    assert hashes(folder) == before and not out.exists()


def stop_at_frame(monkeypatch: pytest.MonkeyPatch, frame: int, error: BaseException) -> None:
    """Make the tracker raise ``error`` when it reaches ``frame``."""
    from napari_sam2.tracking.engine import CellTracker

    step = CellTracker._step

    def failing(self: CellTracker, t: int, source: Any) -> Any:
        if t == frame:
            raise error
        return step(self, t, source)

    monkeypatch.setattr(CellTracker, "_step", failing)


@pytest.mark.parametrize(
    ("error", "status", "said"),
    [(RuntimeError("boom"), 1, "failed"), (KeyboardInterrupt(), 130, "interrupted")],
    ids=["error", "ctrl-c"],
)
def test_a_stopped_track_keeps_its_frames_under_partial_names(
    case: dict[str, Path],
    checkpoint: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    error: BaseException,
    status: int,
    said: str,
) -> None:
    """A run stopped on frame 2 keeps frames 0–1 as labels.partial.tif (and the other
    outputs as *.partial.*, tracking.partial.json saying why); no file has a result's name."""
    stop_at_frame(monkeypatch, 2, error)
    before = hashes(case["folder"])
    out = case["folder"] / "out"
    assert main([*track(case, out), *model_args(checkpoint)]) == status
    line = one_error_line(capsys.readouterr().err)
    assert "frames 0–1 are kept in" in line and "partial" in line, line
    assert sorted(p.name for p in out.iterdir()) == [
        "ctc.partial", "labels.partial.tif", "lineage.partial.csv", "lineage.partial.geff",
        "measurements.partial.csv", "tracking.partial.json", "tracks.partial.csv",
    ]  # fmt: skip
    labels = tifffile.imread(out / "labels.partial.tif")
    assert labels[0].any() and labels[1].any() and not labels[2].any()
    summary = json.loads((out / "tracking.partial.json").read_text())
    assert summary["status"] == said and summary["frames"] == [0, 1] and summary["stopped"]
    assert {k: v for k, v in hashes(case["folder"]).items() if k in before} == before


def test_a_failed_rerun_leaves_earlier_results_whole(
    case: dict[str, Path],
    checkpoint: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--overwrite replaces results only with complete ones: a failed rerun leaves them byte
    for byte and only adds its partial files."""
    out = case["folder"] / "out"
    argv = [*track(case, out), *model_args(checkpoint)]
    assert main(argv) == 0
    complete = hashes(out)
    stop_at_frame(monkeypatch, 2, RuntimeError("boom"))
    assert main([*argv, "--overwrite"]) == 1
    now = hashes(out)
    assert {k: v for k, v in now.items() if ".partial" not in k} == complete
    assert "labels.partial.tif" in now and "tracking.partial.json" in now


def test_partial_results_need_overwrite_and_a_complete_run_clears_them(
    case: dict[str, Path],
    checkpoint: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stopped run's partial files are results too: a rerun without --overwrite is
    refused naming them; with it, the complete run leaves only complete outputs."""
    out = case["folder"] / "out"
    argv = [*track(case, out), *model_args(checkpoint)]
    with monkeypatch.context() as patch:
        stop_at_frame(patch, 1, KeyboardInterrupt())
        assert main(argv) == 130
    partial = hashes(out)
    capsys.readouterr()
    assert main(argv) == 2
    assert "labels.partial.tif" in one_error_line(capsys.readouterr().err)
    assert hashes(out) == partial
    assert main([*argv, "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)


def test_results_that_cannot_be_written_keep_the_labels(
    case: dict[str, Path],
    checkpoint: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A full disk while writing the CSVs: status 1, the tracked frames kept as
    labels.partial.tif, no file under a result's name."""
    import napari_sam2.tracking.measurements as measurements

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(measurements, "write_measurements_csv", full)
    out = case["folder"] / "out"
    assert main([*track(case, out), *model_args(checkpoint)]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "No space left on device" in line and "frames 0–2 are kept" in line, line
    assert not any((out / name).exists() for name in ("labels.tif", "tracks.csv"))
    assert tifffile.imread(out / "labels.partial.tif")[2].any()
    assert not (out / ".napari-sam2-running").exists()
