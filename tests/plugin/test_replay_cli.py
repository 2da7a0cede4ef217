"""``napari-sam2 segment``: a session saved from the widget, replayed on the stack headless."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from napari.layers import Image

from napari_sam2.cli import main
from napari_sam2.layers import new_points_layer
from napari_sam2.prompts import save_prompts
from napari_sam2.replay import replay_session
from napari_sam2.segment.layer_prompts import read_prompts
from sam2.synthetic import make_timelapse

IMAGE_SIZE = 256


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory, fast_predictor: Any) -> dict[str, Path]:
    """A 6-frame stack, a session with one click on frame 2, and the model's checkpoint."""
    import torch

    folder = tmp_path_factory.mktemp("replay")
    stack = make_timelapse(n_frames=6, shape=(96, 128), n_cells=3, seed=4).image
    tifffile.imwrite(folder / "stack.tif", stack, photometric="minisblack")
    image = Image(stack, name="stack")
    points = new_points_layer(image)
    points.add([2, 40, 60])
    save_prompts(read_prompts(image, points, video_axis=0), folder / "stack")
    torch.save({"model": fast_predictor.model.state_dict()}, folder / "tiny.pt")
    return {
        "stack": folder / "stack.tif",
        "session": folder / "stack.sam2.json",
        "ckpt": folder / "tiny.pt",
    }


def _model_args(saved: dict[str, Path]) -> list[str]:
    return [
        "--checkpoint", str(saved["ckpt"]), "--config", "sam2.1_hiera_t",
        "--image-size", str(IMAGE_SIZE), "--device", "cpu",
    ]  # fmt: skip


def test_segment_writes_what_replay_gives(
    saved: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command's labels TIFF equals replay_session with the same weights and prompts."""
    from napari_sam2.cli import model_choice
    from napari_sam2.prompts import load_prompts

    out = tmp_path / "labels.tif"
    status = main(["segment", str(saved["stack"]), "--session", str(saved["session"]),
                   "--out", str(out), *_model_args(saved)])  # fmt: skip
    assert status == 0
    assert "segmenting 7/7 frames" in capsys.readouterr().err
    labels = tifffile.imread(out)
    assert labels.shape == (6, 96, 128) and labels.dtype == np.uint32
    loaded = model_choice(
        checkpoint=saved["ckpt"], config="sam2.1_hiera_t", device="cpu", image_size=IMAGE_SIZE
    ).load()
    stack = tifffile.imread(saved["stack"])
    expected = replay_session(stack, load_prompts(saved["session"]), lambda: loaded)
    np.testing.assert_array_equal(labels, expected)
    assert set(np.unique(labels)) <= {0, 1}


def test_segment_refuses_bad_input(
    saved: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stack of another shape, an existing output and a non-session file: status 2 and a
    reason, before any model is loaded (the checkpoint named does not exist)."""
    other = tmp_path / "other.tif"
    tifffile.imwrite(other, np.zeros((3, 96, 128), np.uint16), photometric="minisblack")
    args = ["--checkpoint", str(tmp_path / "missing.pt")]
    assert main(["segment", str(other), "--session", str(saved["session"]), *args]) == 2
    assert "was saved for (6, 96, 128)" in capsys.readouterr().err
    existing = tmp_path / "labels.tif"
    existing.write_bytes(b"")
    command = ["segment", str(saved["stack"]), "--session", str(saved["session"])]
    assert main([*command, "--out", str(existing), *args]) == 2
    assert "exists; use --overwrite" in capsys.readouterr().err
    assert main(["segment", str(saved["stack"]), "--session", str(saved["stack"])]) == 2
    assert "not a napari-sam2 session file" in capsys.readouterr().err


def test_replay_session_refuses_labels_of_another_shape() -> None:
    """Saved labels of another shape than the stack (2D for a 3D stack would be copied into
    every frame) are refused with both shapes, before any model is loaded."""
    from napari_sam2.prompts import Point, PromptSet

    session = PromptSet("stack", (3, 64, 64), 0, (0.0, 1.0), [Point((0, 5, 5), True, 1)])
    session.labels = np.ones((64, 64), np.uint32)

    def no_model() -> Any:
        raise AssertionError("the model was loaded")

    with pytest.raises(
        ValueError, match=r"shape \(64, 64\), but the stack has shape \(3, 64, 64\)"
    ):
        replay_session(np.zeros((3, 64, 64), np.uint16), session, no_model)


def _copy(saved: dict[str, Path], folder: Path) -> dict[str, Path]:
    """The stack and session in ``folder``, to change (or protect) without touching others'."""
    copies = {"stack": folder / "stack.tif", "session": folder / "stack.sam2.json"}
    for name, path in copies.items():
        path.write_bytes(saved[name].read_bytes())
    return copies


def _hashes(folder: Path) -> dict[str, str]:
    import hashlib

    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*")}


def _fast_args(saved: dict[str, Path]) -> list[str]:
    """The model at 128 px: the same wiring, a quarter of the work."""
    return [
        "--checkpoint", str(saved["ckpt"]), "--config", "sam2.1_hiera_t",
        "--image-size", "128", "--device", "cpu", "--quiet",
    ]  # fmt: skip


@pytest.mark.parametrize("kind", ["read-only", "compressed"])
def test_segment_only_reads_its_inputs(
    saved: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    """Write-protected inputs, and a zlib-compressed stack (not memory-mappable), are
    segmented; the replay gets a read-only stack, and no input changes by a byte."""
    import napari_sam2.replay as replay

    files = _copy(saved, tmp_path)
    if kind == "compressed":
        stack = tifffile.imread(files["stack"])
        tifffile.imwrite(files["stack"], stack, compression="zlib", photometric="minisblack")
    for path in files.values():
        path.chmod(0o444)
    writable: list[bool] = []
    original = replay.replay_session

    def spy(stack: Any, *args: Any, **kwargs: Any) -> Any:
        writable.append(bool(stack.flags.writeable))  # as root, chmod alone proves nothing
        return original(stack, *args, **kwargs)

    monkeypatch.setattr(replay, "replay_session", spy)
    before = _hashes(tmp_path)
    out = tmp_path / "out.tif"
    argv = ["segment", str(files["stack"]), "--session", str(files["session"]), "--out", str(out)]
    assert main([*argv, *_fast_args(saved)]) == 0, capsys.readouterr().err
    assert writable == [False]
    assert {k: v for k, v in _hashes(tmp_path).items() if k in before} == before
    assert tifffile.imread(out).shape == (6, 96, 128)


@pytest.mark.parametrize(
    ("error", "status"), [(RuntimeError("boom"), 1), (KeyboardInterrupt(), 130)]
)
def test_a_stopped_segment_keeps_its_frames_and_the_old_output(
    saved: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    error: BaseException,
    status: int,
) -> None:
    """Stopped after one frame: one line (status 1 for an error, 130 for Ctrl-C) says the
    frame is in out.partial.tif; an earlier out.tif stays byte for byte; no temporary file
    is left."""
    import napari_sam2.replay as replay

    propagate = replay.run_propagation

    def one_frame(*args: Any) -> Iterator[Any]:
        yield next(propagate(*args))
        raise error

    monkeypatch.setattr(replay, "run_propagation", one_frame)
    out = tmp_path / "out.tif"
    out.write_bytes(b"an earlier result")
    argv = ["segment", str(saved["stack"]), "--session", str(saved["session"]), "--out", str(out)]
    assert main([*argv, "--overwrite", *_fast_args(saved)]) == status
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("napari-sam2: error: ") == 1, err
    assert re.search(r"\(1 of \d+ steps\) are kept in .*out\.partial\.tif", err), err
    assert out.read_bytes() == b"an earlier result"
    assert tifffile.imread(tmp_path / "out.partial.tif").shape == (6, 96, 128)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.partial.tif", "out.tif"]
