"""The command line's work, without napari: read stacks, load models, track, segment, write.

``napari-sam2 track`` and ``napari-sam2 segment`` run these functions (:mod:`napari_sam2.cli`
only parses arguments), and so can a notebook or a cluster job: nothing here imports napari,
Qt or psygnal's Qt side. :func:`run_tracking` follows the cells of a seed image through the same
engine as the napari widget (:class:`~napari_sam2.tracking.engine.CellTracker`) and writes
labels, tracks, lineage, measurements, a Cell Tracking Challenge folder and a GEFF lineage
graph; :func:`run_segment` replays a session saved from the segment widget
(:func:`napari_sam2.replay.replay_session`) into a labels TIFF, frame by frame.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from napari_sam2.models import (
    TRACKING_OPTIONS,
    ModelChoice,
    default_model,
    model_loader,
    resolve_hub_id,
)
from napari_sam2.tracking.engine import CellTracker
from napari_sam2.tracking.geff_export import check_geff_path
from napari_sam2.tracking.inputs import check_inputs
from napari_sam2.tracking.params import TrackingParams
from napari_sam2.tracking.proposals import EntryDetector
from napari_sam2.tracking.results import FrameUpdate, TrackingError, TrackingResult

if TYPE_CHECKING:
    from sam2.precision import PrecisionChoice
    from sam2.sam2_video_predictor import SAM2VideoPredictor

__all__ = [
    "OUTPUTS",
    "default_out",
    "load_video_predictor",
    "model_choice",
    "read_stack",
    "run_segment",
    "run_tracking",
]

OUTPUTS = (
    "labels.tif",
    "tracks.csv",
    "lineage.csv",
    "measurements.csv",
    "ctc",
    "lineage.geff",
    "tracking.json",
)


# ---------------------------------------------------------------------------------- inputs
def read_stack(path: str | os.PathLike[str], channel: int | None = None) -> Any:
    """A (T, Y, X) array from a .tif/.tiff, .npy or .zarr (memory-mapped where possible).

    A 2D image is a one-frame stack; of a (T, C, Y, X) stack, ``channel`` picks one (a single
    channel needs no choice).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    suffix = path.suffix.lower()
    array: Any
    if suffix in (".tif", ".tiff"):
        import tifffile

        try:
            array = tifffile.memmap(path, mode="r")
        except ValueError:  # compressed or tiled: read it whole
            array = tifffile.imread(path)
    elif suffix == ".npy":
        array = np.load(path, mmap_mode="r")
    elif suffix == ".zarr" or (path / ".zarray").exists() or (path / "zarr.json").exists():
        import zarr

        array = zarr.open(str(path), mode="r")
        if not hasattr(array, "shape"):
            raise ValueError(
                f"{path} is a zarr group, not an array; name the array inside it, e.g. {path}/0"
            )
    else:
        raise ValueError(
            f"unsupported file type {suffix or '(none)'!r} for {path.name}: expected a "
            ".tif/.tiff stack, a .npy array or a .zarr array"
        )
    if array.ndim == 2:
        return np.asarray(array)[None]
    if array.ndim == 4:
        if channel is None and array.shape[1] != 1:
            raise ValueError(
                f"{path.name} has shape {tuple(array.shape)}: {array.shape[1]} channels on axis "
                "1; choose the one to track with --channel (0-based)"
            )
        index = 0 if channel is None else int(channel)
        if not 0 <= index < array.shape[1]:
            raise ValueError(f"channel {index} is out of range: {path.name} has {array.shape[1]}")
        return array[:, index]
    if channel is not None:
        raise ValueError(f"--channel given, but {path.name} of shape {tuple(array.shape)} has none")
    return array


def model_choice(
    model: str | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    config: str | None = None,
    device: str | None = None,
    image_size: int | None = None,
    precision: PrecisionChoice = "auto",
) -> ModelChoice:
    """The model named on the command line: a hub id or a name such as ``sam2.1_hiera_tiny``,
    ``tiny`` or ``demo-cells``, or a local checkpoint file (``model`` is then ignored); None
    is :func:`~napari_sam2.models.default_model`. ``image_size`` overrides the model's input
    size (smaller is faster and coarser); ``precision`` "auto" runs bf16 only where the
    hardware computes it."""
    return ModelChoice(
        hub_id=None if checkpoint is not None else resolve_hub_id(model or default_model()),
        checkpoint=None if checkpoint is None else str(checkpoint),
        config=config,
        device=device,
        image_size=image_size,
        precision=precision,
    )


def load_video_predictor(
    choice: ModelChoice | None = None, progress: IO[str] | None = None, *, fast: bool = False
) -> SAM2VideoPredictor:
    """A tracking video predictor of ``choice`` (None: :func:`model_choice`'s default),
    tracking in windows if ``fast``; the precision chosen, and why, is written to
    ``progress``."""
    from sam2.video.options import WindowOptions

    loaded = (choice or model_choice()).load()
    if progress is not None:
        progress.write(f"precision {loaded.precision_reason}\n")
    options = TRACKING_OPTIONS.replace(window=WindowOptions() if fast else None)
    return loaded.video_predictor(options)


# ---------------------------------------------------------------------------------- running
def run_tracking(
    stack: str | os.PathLike[str],
    seeds: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    seed_frame: int = 0,
    model: ModelChoice | None = None,
    entries: EntryDetector = "threshold",
    params: TrackingParams | None = None,
    contrast_limits: tuple[float, float] | None = None,
    channel: int | None = None,
    overwrite: bool = False,
    progress: IO[str] | None = None,
    predictor: SAM2VideoPredictor | None = None,
    fast: bool = False,
) -> TrackingResult:
    """Track the cells of ``seeds`` (labels of frame ``seed_frame``) through ``stack``.

    Writes ``labels.tif``, ``tracks.csv``, ``lineage.csv``, ``measurements.csv``, a ``ctc``
    folder, the lineage graph ``lineage.geff`` (GEFF) and ``tracking.json`` into ``out_dir``
    (default: ``<stack>_tracking`` beside the stack). Frames finished before an error or
    Ctrl-C are written too. ``progress`` is a stream for a one-line progress display (None:
    silent). ``predictor`` skips loading a model; ``model`` None is :func:`model_choice`'s
    default. ``fast`` tracks each cell in a window around where it was
    (``sam2.video.options.WindowOptions``).
    """
    import tifffile

    from napari_sam2.tracking.sources import sam2_mask_source

    frames = read_stack(stack, channel)
    seed_image = read_stack(seeds)
    if seed_image.shape[0] == 1 and tuple(frames.shape) != tuple(seed_image.shape):
        seed_image = seed_image[0]
    params = params or TrackingParams()
    check_inputs(frames, seed_image, seed_frame)  # before the (slow) model load
    out = Path(out_dir) if out_dir is not None else default_out(stack)
    _prepare_out(out, overwrite)
    labels = tifffile.memmap(
        out / "labels.tif", shape=tuple(frames.shape), dtype=np.uint32, photometric="minisblack"
    )
    if predictor is None:
        predictor = load_video_predictor(model, progress, fast=fast)
    source = sam2_mask_source(predictor, frames, entries=entries, contrast_limits=contrast_limits)
    tracker = CellTracker(frames, seed_image, seed_frame, params, out=labels)
    show = _ProgressLine(progress) if progress is not None else None
    failure: BaseException | None = None
    try:
        for update in tracker.run(source):
            if show is not None:
                show(update)
    except TrackingError as exc:
        failure = exc
    except KeyboardInterrupt as exc:
        failure = exc
    finally:
        source.close()
    result = tracker.finish(stopped=failure is not None)
    labels.flush()
    _write_outputs(out, frames, labels, result, model, fast)
    if show is not None:
        show.close()
    if failure is not None:
        raise failure
    return result


def default_out(stack: str | os.PathLike[str]) -> Path:
    """``<folder>/<stack name>_tracking``: where results go without ``--out``."""
    path = Path(stack)
    return path.with_name(f"{path.stem}_tracking")


def _prepare_out(out: Path, overwrite: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    existing = [name for name in OUTPUTS if (out / name).exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{out} already holds tracking results ({', '.join(existing)}); choose another "
            "--out folder or pass --overwrite"
        )
    # a lineage.geff that is not ours is never replaced: say so now, not after the tracking
    check_geff_path(out / "lineage.geff", overwrite=True)
    if (out / "labels.tif").exists():
        (out / "labels.tif").unlink()


def _write_outputs(
    out: Path,
    frames: Any,
    labels: Any,
    result: TrackingResult,
    model: ModelChoice | None,
    fast: bool = False,
) -> None:
    from napari_sam2.tracking.ctc import write_ctc
    from napari_sam2.tracking.geff_export import write_geff
    from napari_sam2.tracking.measurements import write_measurements_csv
    from napari_sam2.tracking.tracks import tracks_layer_data

    tracks = tracks_layer_data(labels, result.lineage)
    names = ["track_id", "t", *("zyx"[3 - (tracks.data.shape[1] - 2) :])]
    _write_csv(
        out / "tracks.csv",
        [*names, "parent"],
        [[*_numbers(row), parent] for row, parent in zip(tracks.data, tracks.features["parent"])],
    )
    present = {int(i) for i in np.unique(tracks.data[:, 0])} if len(tracks.data) else set()
    rows = [list(r) for r in result.lineage.rows() if r[0] in present]
    _write_csv(out / "lineage.csv", ["track_id", "start", "end", "parent"], rows)
    write_measurements_csv(out / "measurements.csv", labels, frames, result.lineage)
    if present:
        write_ctc(out / "ctc", labels, result.lineage, allow_empty_frames=True, overwrite=True)
    summary = {
        "frames": [result.first_frame, result.last_frame],
        "stopped": result.stopped,
        "tracks": len(present),
        "divisions": [
            {"mother": e.track_id, "daughters": list(e.related), "frame": e.frame, "rule": e.rule}
            for e in result.divisions
        ],
        "params": result.params.to_dict(),
        "model": dataclasses.asdict(model) if model is not None else None,
        "fast_tracking": fast,
        "lineage": result.lineage.to_dict(),
    }
    (out / "tracking.json").write_text(json.dumps(summary, indent=1))
    write_geff(out / "lineage.geff", labels, result.lineage, overwrite=True)


def _numbers(row: np.ndarray) -> list[Any]:
    return [int(row[0]), int(row[1]), *(round(float(v), 3) for v in row[2:])]


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    import csv

    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


class _ProgressLine:
    """``tracking ██████░░░░ 12/40 frames · 31 cells · 2 divisions · 0.8 s/frame · ETA 22 s``."""

    def __init__(self, stream: IO[str], width: int = 24) -> None:
        self.stream, self.width = stream, width
        self.start = time.perf_counter()
        self.divisions = 0
        self.open = False

    def __call__(self, update: FrameUpdate) -> None:
        self.divisions += sum(e.kind == "division" for e in update.events)
        elapsed = time.perf_counter() - self.start
        per_frame = elapsed / max(update.done, 1)
        filled = round(self.width * update.done / max(update.total, 1))
        bar = "█" * filled + "░" * (self.width - filled)
        eta = per_frame * (update.total - update.done)
        self.stream.write(
            f"\rtracking {bar} {update.done}/{update.total} frames · {update.n_active} cells · "
            f"{self.divisions} divisions · {per_frame:.1f} s/frame · ETA {eta:.0f} s "
        )
        self.stream.flush()
        self.open = True

    def close(self) -> None:
        if self.open:
            self.stream.write("\n")
            self.stream.flush()


# ---------------------------------------------------------------------------------- segment
def run_segment(
    stack: str | os.PathLike[str],
    session: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    model: ModelChoice | None = None,
    overwrite: bool = False,
    progress: IO[str] | None = None,
) -> Path:
    """Replay a saved session's prompts on ``stack`` and write the labels as a TIFF.

    The stack is read as saved (any number of leading axes); the labels file is written
    frame by frame (a memory-mapped TIFF), so an interrupted run keeps the frames done.
    """
    import tifffile

    from napari_sam2.prompts import load_prompts
    from napari_sam2.replay import replay_session

    saved = load_prompts(session)
    path = Path(stack)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    data = np.load(path, mmap_mode="r") if path.suffix == ".npy" else tifffile.memmap(path)
    if tuple(data.shape) != saved.image_shape:
        raise ValueError(
            f"{path.name} has shape {tuple(data.shape)} but {Path(session).name} was saved for "
            f"{saved.image_shape}"
        )
    target = Path(out) if out else path.with_name(f"{path.stem}_sam2_labels.tif")
    if target.exists() and not overwrite:
        raise ValueError(f"{target} exists; use --overwrite to replace it")
    loader = model_loader(model or model_choice())
    loaded = loader()  # load before the output file is created, as before
    if progress is not None:
        progress.write(f"precision {loaded.precision_reason}\n")
    labels = tifffile.memmap(target, shape=data.shape, dtype=np.uint32, photometric="minisblack")
    if saved.labels is not None:
        labels[...] = saved.labels
        saved.labels = None
    start = time.perf_counter()

    def report(done: int, total: int) -> None:
        if progress is not None:
            per_frame = (time.perf_counter() - start) / done
            progress.write(
                f"\rsegmenting {done}/{total} frames · {per_frame:.1f} s/frame · "
                f"ETA {per_frame * (total - done):.0f} s "
            )
            progress.flush()

    try:
        replay_session(data, saved, loader, out=labels, progress=report)
    finally:
        labels.flush()
        if progress is not None:
            progress.write("\n")
    return target
