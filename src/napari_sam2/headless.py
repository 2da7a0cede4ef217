"""The command line's work, without napari: read stacks, load models, track, segment, write.

``napari-sam2 track`` and ``napari-sam2 segment`` run these functions (:mod:`napari_sam2.cli`
only parses arguments), and so can a notebook or a cluster job: nothing here imports napari,
Qt or psygnal's Qt side. :func:`run_tracking` follows the cells of a seed image through the same
engine as the napari widget (:class:`~napari_sam2.tracking.engine.CellTracker`) and writes
labels, tracks, lineage, measurements, a Cell Tracking Challenge folder and a GEFF lineage
graph; :func:`run_segment` (from :mod:`napari_sam2.replay`) replays a session saved from the
segment widget into a labels TIFF, frame by frame. How inputs are read and outputs written
so that nothing the user made is lost is :mod:`napari_sam2.safe_files`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from napari_sam2.models import (
    TRACKING_OPTIONS,
    ModelChoice,
    default_model,
    resolve_hub_id,
)
from napari_sam2.replay import run_segment
from napari_sam2.safe_files import (
    partial_name,
    publish,
    read_stack,
    refuse_outputs_over_inputs,
    remove_path,
    saying_kept,
    write_csv,
)
from napari_sam2.tracking.ctc_folder import check_folder
from napari_sam2.tracking.engine import CellTracker
from napari_sam2.tracking.geff_export import check_geff_path
from napari_sam2.tracking.inputs import check_inputs
from napari_sam2.tracking.params import TrackingParams
from napari_sam2.tracking.proposals import EntryDetector
from napari_sam2.tracking.results import FrameUpdate, TrackingError, TrackingResult

if TYPE_CHECKING:
    from napari_sam2.tracking.sources import SAM2MaskSource
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
STAGING = ".napari-sam2-running"  # a run's outputs until it ends: then renamed into place


# ---------------------------------------------------------------------------------- inputs
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
    hardware computes it. A device torch does not know, or an input size the model cannot
    take, is a ValueError now rather than a failure part-way through a run."""
    if image_size is not None and (image_size <= 0 or image_size % 32):
        raise ValueError(
            f"--image-size {image_size}: SAM 2 needs a positive multiple of 32 (its 4-pixel "
            "patches must tile its 8-patch windows), e.g. 256, 512 or 1024"
        )
    if device is not None:
        import torch

        try:
            torch.device(device)
        except RuntimeError as exc:
            raise ValueError(f"--device {device!r} is not a device: {exc}") from None
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
    (default: ``<stack>_tracking`` beside the stack). Inputs, options and the model are
    checked before anything is created, and the outputs are written in a hidden
    ``.napari-sam2-running`` folder and renamed into place once all are complete, so a file
    under one of these names is always a whole result. Frames finished before an error or
    Ctrl-C are kept under ``*.partial.*`` names instead (``labels.partial.tif``, ...,
    ``tracking.partial.json`` with ``"status": "failed"`` or ``"interrupted"``, the error and
    the frame range), and earlier complete results are left as they were. ``progress`` is a
    stream for a one-line progress display (None: silent). ``predictor`` skips loading a
    model; ``model`` None is :func:`model_choice`'s default. ``fast`` tracks each cell in a
    window around where it was (``sam2.video.options.WindowOptions``).
    """
    from napari_sam2.tracking.sources import sam2_mask_source

    frames = read_stack(stack, channel)
    seed_image = read_stack(seeds)
    if seed_image.shape[0] == 1 and tuple(frames.shape) != tuple(seed_image.shape):
        seed_image = seed_image[0]
    params = params or TrackingParams()
    check_inputs(frames, seed_image, seed_frame)  # before the (slow) model load
    out = Path(out_dir) if out_dir is not None else default_out(stack)
    _prepare_out(out, overwrite, {"the stack": Path(stack), "the seeds": Path(seeds)})
    if predictor is None:  # a model that fails to load leaves nothing behind
        predictor = load_video_predictor(model, progress, fast=fast)
    source = sam2_mask_source(predictor, frames, entries=entries, contrast_limits=contrast_limits)
    try:
        track = _Track(frames, seed_image, seed_frame, params, model, fast)
        return _track_into(out, track, source, progress)
    finally:
        source.close()


@dataclasses.dataclass(frozen=True)
class _Track:
    """What one tracking run works from (the arguments of :func:`run_tracking`, checked)."""

    frames: Any
    seeds: Any
    seed_frame: int
    params: TrackingParams
    model: ModelChoice | None
    fast: bool


def _track_into(
    out: Path, track: _Track, source: SAM2MaskSource, progress: IO[str] | None
) -> TrackingResult:
    """Track with the labels in ``out``'s staging folder, then publish the outputs: under
    their names if the run completed, as ``*.partial.*`` if it stopped."""
    import tifffile

    frames, staging = track.frames, out / STAGING
    remove_path(staging)  # a killed run's, discarded with --overwrite (_prepare_out)
    staging.mkdir(parents=True)
    show = _ProgressLine(progress) if progress is not None else None
    tracker: CellTracker | None = None
    failure: BaseException | None = None
    try:
        labels = tifffile.memmap(
            staging / "labels.tif", shape=frames.shape, dtype=np.uint32, photometric="minisblack"
        )
        tracker = CellTracker(frames, track.seeds, track.seed_frame, track.params, out=labels)
        try:
            for update in tracker.run(source):
                if show is not None:
                    show(update)
        except (TrackingError, KeyboardInterrupt) as exc:
            failure = exc
        result = tracker.finish(stopped=failure is not None)
        labels.flush()
        status = "complete" if failure is None else _status(failure)
        _write_outputs(staging, frames, labels, result, track.model, track.fast, status, failure)
    except BaseException as exc:  # writing failed, or a second Ctrl-C: keep the frames done
        so_far = tracker.result() if tracker is not None else None
        done = so_far is not None and so_far.last_frame >= so_far.first_frame
        publish(staging, out, OUTPUTS, complete=False, keep=done)
        error = _kept(exc, out, so_far if done else None)
        if error is exc:
            raise
        raise error from exc
    finally:
        if show is not None:
            show.close()
    done = result.last_frame >= result.first_frame
    publish(staging, out, OUTPUTS, complete=failure is None, keep=failure is None or done)
    if failure is not None:
        raise _kept(failure, out, result if done else None) from failure
    return result


def _status(failure: BaseException) -> str:
    return "interrupted" if isinstance(failure, KeyboardInterrupt) else "failed"


def _kept(failure: BaseException, out: Path, result: TrackingResult | None) -> BaseException:
    """``failure`` again, its message saying where the finished frames of ``result`` are
    (None: no frame was finished, so nothing was kept)."""
    kept = "nothing was written"
    if result is not None:
        kept = (
            f"frames {result.first_frame}–{result.last_frame} are kept in {out} as "
            "*.partial.* files (tracking.partial.json says why)"
        )
    if isinstance(failure, TrackingError):
        return TrackingError(f"{failure}; {kept}", failure.result)
    return saying_kept(failure, kept, "writing the results", any_kept=result is not None)


def default_out(stack: str | os.PathLike[str]) -> Path:
    """``<folder>/<stack name>_tracking``: where results go without ``--out``."""
    path = Path(stack)
    return path.with_name(f"{path.stem}_tracking")


def _prepare_out(
    out: Path, overwrite: bool, inputs: Mapping[str, Path | None] | None = None
) -> None:
    """Check ``out`` before any work; nothing is created or removed here. No output (nor its
    partial name) may be an input; earlier results, complete or partial, need ``overwrite``
    (and are replaced only when the new run publishes its own)."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file; the results need a folder")
    written = [out / name for name in OUTPUTS]
    ours = [*written, *(partial_name(p) for p in written), out / STAGING]
    refuse_outputs_over_inputs(ours, inputs or {}, "--out folder")
    existing = [p.name for p in ours if p.exists() or p.is_symlink()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{out} already holds tracking results ({', '.join(existing)}); choose another "
            "--out folder or pass --overwrite"
        )
    # a lineage.geff that is not ours is never replaced: say so now, not after the tracking
    check_geff_path(out / "lineage.geff", overwrite=True)
    check_geff_path(partial_name(out / "lineage.geff"), overwrite=True)
    for ctc in (out / "ctc", partial_name(out / "ctc")):  # nor a ctc folder with others' files
        if ctc.is_dir() and not ctc.is_symlink():
            check_folder(ctc, overwrite=True)


def _write_outputs(
    out: Path,
    frames: Any,
    labels: Any,
    result: TrackingResult,
    model: ModelChoice | None,
    fast: bool = False,
    status: str = "complete",
    failure: BaseException | None = None,
) -> None:
    """Every output but the labels (already in ``out``) from ``result``; ``status`` and the
    ``failure`` that stopped the run go into tracking.json."""
    from napari_sam2.tracking.ctc import write_ctc
    from napari_sam2.tracking.geff_export import write_geff
    from napari_sam2.tracking.measurements import write_measurements_csv
    from napari_sam2.tracking.tracks import tracks_layer_data

    tracks = tracks_layer_data(labels, result.lineage)
    names = ["track_id", "t", *("zyx"[3 - (tracks.data.shape[1] - 2) :])]
    write_csv(
        out / "tracks.csv",
        [*names, "parent"],
        [[*_numbers(row), parent] for row, parent in zip(tracks.data, tracks.features["parent"])],
    )
    present = {int(i) for i in np.unique(tracks.data[:, 0])} if len(tracks.data) else set()
    rows = [list(r) for r in result.lineage.rows() if r[0] in present]
    write_csv(out / "lineage.csv", ["track_id", "start", "end", "parent"], rows)
    write_measurements_csv(out / "measurements.csv", labels, frames, result.lineage)
    if present:
        write_ctc(out / "ctc", labels, result.lineage, allow_empty_frames=True, overwrite=True)
    summary = {
        "status": status,
        "error": None if failure is None else str(failure) or type(failure).__name__,
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
