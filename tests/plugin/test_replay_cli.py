"""``napari-sam2 segment``: a session saved from the widget, replayed on the stack headless."""

from __future__ import annotations

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
