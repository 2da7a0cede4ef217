"""The ``napari-sam2 track`` command end to end: a tiny random-weight model for the wiring, the
demo model for real tracking."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from napari_sam2.cli import main, read_stack
from napari_sam2.tracking import read_ctc
from sam2.synthetic import SyntheticTimelapse
from tests.tracking.conftest import IMAGE_SIZE


@pytest.fixture(scope="module")
def inputs(
    tmp_path_factory: pytest.TempPathFactory,
    small_timelapse: SyntheticTimelapse,
    tiny_predictor: Any,
) -> dict[str, Path]:
    """A stack, its seed labels and a checkpoint of the tiny model, on disk."""
    import torch

    folder = tmp_path_factory.mktemp("cli")
    tifffile.imwrite(folder / "stack.tif", small_timelapse.image, photometric="minisblack")
    tifffile.imwrite(folder / "seeds.tif", small_timelapse.labels[0].astype(np.uint16))
    torch.save({"model": tiny_predictor.model.state_dict()}, folder / "tiny.pt")
    return {
        "stack": folder / "stack.tif",
        "seeds": folder / "seeds.tif",
        "ckpt": folder / "tiny.pt",
    }


def model_args(inputs: dict[str, Path]) -> list[str]:
    return [
        "--checkpoint", str(inputs["ckpt"]), "--config", "sam2.1_hiera_t",
        "--image-size", str(IMAGE_SIZE), "--device", "cpu",
    ]  # fmt: skip


def test_track_writes_every_output(
    inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """labels.tif, tracks/lineage/measurements CSVs, a CTC folder and a JSON summary, with a
    progress line on stderr; the files agree with each other."""
    out = tmp_path / "result"
    status = main(
        [
            "track",
            str(inputs["stack"]),
            "--seeds",
            str(inputs["seeds"]),
            "--out",
            str(out),
            *model_args(inputs),
            "--entry-every",
            "2",
            "--exit-after",
            "1",
        ]
    )
    err = capsys.readouterr().err
    assert status == 0, err
    assert "4/4 frames" in err and "tracked" in err
    labels = tifffile.imread(out / "labels.tif")
    seeds = tifffile.imread(inputs["seeds"])
    assert labels.shape == (4, 128, 128)
    np.testing.assert_array_equal(labels[0], seeds)
    ctc = read_ctc(out / "ctc")
    np.testing.assert_array_equal(ctc.labels, labels)
    with open(out / "measurements.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == sum(len(np.unique(f)) - 1 for f in labels)
    assert {"area", "centroid_y", "centroid_x", "mean_intensity"} <= set(rows[0])
    with open(out / "tracks.csv") as handle:
        tracks = list(csv.DictReader(handle))
    assert list(tracks[0]) == ["track_id", "t", "y", "x", "parent"] and len(tracks) == len(rows)
    summary = json.loads((out / "tracking.json").read_text())
    assert summary["params"]["entry_every"] == 2 and summary["params"]["exit_after"] == 1
    assert summary["frames"] == [0, 3] and not summary["stopped"]


def test_fast_tracking_from_the_command_line(
    inputs: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``--fast``: cells are tracked in windows around their seed masks, and the summary
    says the run was fast."""
    import sam2.video.engine as engine

    windows: list[object] = []
    original = engine.windowed_step

    def recording(*args: object, **kwargs: object) -> object:
        windows.extend(args[4])  # type: ignore[call-overload]
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "windowed_step", recording)
    out = tmp_path / "fast"
    argv = ["track", str(inputs["stack"]), "--seeds", str(inputs["seeds"]), "--out", str(out)]
    status = main([*argv, *model_args(inputs), "--fast", "--entry-every", "0"])
    assert status == 0, capsys.readouterr().err
    assert windows  # at least the first tracked frame of each seeded cell
    assert json.loads((out / "tracking.json").read_text())["fast_tracking"] is True
    assert tifffile.imread(out / "labels.tif").shape == (4, 128, 128)


def test_existing_results_need_overwrite(
    inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second run into the same folder stops with a hint instead of mixing results."""
    (tmp_path / "tracks.csv").write_text("old")
    status = main(
        [
            "track",
            str(inputs["stack"]),
            "--seeds",
            str(inputs["seeds"]),
            "--out",
            str(tmp_path),
            *model_args(inputs),
        ]
    )
    assert status == 2 and "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("seeds", "message"),
    [
        (np.zeros((64, 64), np.uint16), "fit neither a frame"),
        (np.zeros((128, 128), np.uint16), "contain no objects"),
    ],
    ids=["shape", "empty"],
)
def test_bad_seeds_fail_before_loading_a_model(
    inputs: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    seeds: np.ndarray,
    message: str,
) -> None:
    """Seeds of the wrong shape or without objects exit with status 2 and a reason; the
    checkpoint named does not even exist, so no model was loaded."""
    tifffile.imwrite(tmp_path / "seeds.tif", seeds)
    status = main(
        [
            "track",
            str(inputs["stack"]),
            "--seeds",
            str(tmp_path / "seeds.tif"),
            "--checkpoint",
            str(tmp_path / "missing.pt"),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert status == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_missing_files_and_unknown_models(
    inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing stack and an unknown model name are reported, not raised."""
    assert main(["track", str(tmp_path / "nope.tif"), "--seeds", str(inputs["seeds"])]) == 2
    assert "no such file" in capsys.readouterr().err
    status = main(
        [
            "track",
            str(inputs["stack"]),
            "--seeds",
            str(inputs["seeds"]),
            "--model",
            "sam3-giant",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert status == 2 and "unknown model 'sam3-giant'" in capsys.readouterr().err


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a subcommand the usage goes to stderr with status 2."""
    assert main([]) == 2
    assert "track" in capsys.readouterr().err


def test_read_stack_formats(tmp_path: Path) -> None:
    """tif, npy and zarr stacks load as (T, Y, X); a 2D image is a one-frame stack."""
    import zarr

    stack = np.arange(2 * 4 * 5, dtype=np.uint16).reshape(2, 4, 5)
    tifffile.imwrite(tmp_path / "a.tif", stack, photometric="minisblack")
    np.save(tmp_path / "a.npy", stack)
    z = zarr.open(str(tmp_path / "a.zarr"), mode="w", shape=stack.shape, dtype=stack.dtype)
    z[:] = stack
    for name in ("a.tif", "a.npy", "a.zarr"):
        np.testing.assert_array_equal(np.asarray(read_stack(tmp_path / name)), stack)
    tifffile.imwrite(tmp_path / "one.tif", stack[0])
    assert read_stack(tmp_path / "one.tif").shape == (1, 4, 5)
    tcyx = np.stack([stack, stack + 1], axis=1)
    tifffile.imwrite(tmp_path / "tcyx.tif", tcyx, photometric="minisblack")
    np.testing.assert_array_equal(read_stack(tmp_path / "tcyx.tif", channel=1), stack + 1)
    with pytest.raises(ValueError, match="2 channels on axis 1; choose the one to track"):
        read_stack(tmp_path / "tcyx.tif")
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"unsupported file type '\.png'"):
        read_stack(tmp_path / "a.png")


def test_track_the_sample_time_lapse_with_the_demo_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``napari-sam2 track --model demo-cells`` on the plugin's sample time-lapse, offline:
    every seeded cell is followed, each id on its own ground-truth cell, until the divisions."""
    from napari_sam2._sample_data import sample_timelapse
    from sam2.synthetic import make_timelapse

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ((image, _, _),) = sample_timelapse()
    truth = make_timelapse().labels  # the sample's ground truth
    tifffile.imwrite(tmp_path / "stack.tif", image, photometric="minisblack")
    tifffile.imwrite(tmp_path / "seeds.tif", truth[0].astype(np.uint16))
    out = tmp_path / "result"
    args = ["track", str(tmp_path / "stack.tif"), "--seeds", str(tmp_path / "seeds.tif")]
    status = main([*args, "--out", str(out), "--model", "demo-cells", "--device", "cpu"])
    err = capsys.readouterr().err
    assert status == 0, err
    assert "precision auto: " in err  # the default, and what it chose on this CPU and why
    labels = tifffile.imread(out / "labels.tif")
    ious = []
    for t in range(1, 8):  # the first division is at frame 8
        for cell in np.unique(truth[0])[1:]:
            gt, tracked = truth[t] == cell, labels[t] == cell
            ious.append((gt & tracked).sum() / (gt | tracked).sum())
    # measured: mean 0.859, worst 0.557 (the sample's cells touch; random weights lose them)
    assert np.mean(ious) >= 0.75 and np.min(ious) >= 0.4, np.round(ious, 2)


def _damage_cut_in_frame_1(path: Path) -> None:
    with tifffile.TiffFile(path) as tif:
        cut = tif.pages[1].dataoffsets[0] + 10
    path.write_bytes(path.read_bytes()[:cut])


def _damage_cut_after_frame_1(path: Path) -> None:
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[1]
        cut = page.dataoffsets[-1] + page.databytecounts[-1]
    path.write_bytes(path.read_bytes()[:cut])


def _damage_zeros_in_frame_2(path: Path) -> None:
    with tifffile.TiffFile(path) as tif:
        start = tif.pages[2].dataoffsets[0]
    data = bytearray(path.read_bytes())
    data[start + 2 : start + 40] = bytes(38)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("compression", "damage", "message"),
    [
        ("zlib", _damage_cut_in_frame_1, "damaged or truncated from frame 1 on"),
        ("zlib", _damage_cut_after_frame_1, "damaged or truncated from frame 2 on"),
        (None, _damage_cut_in_frame_1, "damaged or truncated from frame 1 on"),
        ("zlib", _damage_zeros_in_frame_2, "frame 2 of .*a.tif cannot be decoded"),
    ],
    ids=["zlib-cut-in-frame-1", "zlib-cut-after-frame-1", "raw-cut-in-frame-1", "zlib-bad-bytes"],
)
def test_read_stack_refuses_a_damaged_multi_page_tiff(
    tmp_path: Path, compression: str | None, damage: Any, message: str
) -> None:
    """A multi-page TIFF that is cut off or has an undecodable frame is refused, naming the
    file and the frame, never read as the frames before it."""
    stack = np.random.default_rng(0).integers(0, 1000, (4, 32, 40)).astype(np.uint16)
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, stack, compression=compression, photometric="minisblack")
    np.testing.assert_array_equal(np.asarray(read_stack(path)), stack)  # whole: read
    damage(path)
    with pytest.raises(ValueError, match=message):
        read_stack(path)


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_read_stack_gives_read_only_arrays(tmp_path: Path, compression: str | None) -> None:
    """Memory-mapped or decoded, a stack cannot be written through what read_stack gives."""
    stack = np.arange(3 * 8 * 8, dtype=np.uint16).reshape(3, 8, 8)
    tifffile.imwrite(tmp_path / "a.tif", stack, compression=compression, photometric="minisblack")
    array = read_stack(tmp_path / "a.tif")
    np.testing.assert_array_equal(array, stack)
    with pytest.raises(ValueError, match="read-only"):
        array[0, 0, 0] = 1


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    """``--help`` of the command and of track and segment lists statuses 0, 1, 2 and 130."""
    for argv in (["--help"], ["track", "--help"], ["segment", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        text = capsys.readouterr().out
        assert "exit status:" in text and "130  interrupted" in text, argv
        assert "  1    the run failed" in text and "  2    bad input" in text, argv
