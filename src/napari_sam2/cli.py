"""``napari-sam2`` on the command line: argument parsing only; the work is in
:mod:`napari_sam2.headless`, which imports no napari.

``napari-sam2 track STACK.tif --seeds SEEDS.tif --out DIR`` seeds every object of a labels
image, follows the cells with SAM 2 through the same engine as the napari widget and writes
labels, tracks, lineage, measurements, a Cell Tracking Challenge folder and a GEFF lineage
graph; ``napari-sam2 segment STACK.tif --session S.sam2.json`` redoes a segmentation saved
from the segment widget; ``napari-sam2 train --images ... --labels ... --out DIR`` fine-tunes
a model on annotated images (:mod:`napari_sam2.fine_tune`).
:func:`~napari_sam2.headless.run_tracking` and :func:`~napari_sam2.headless.run_segment` are
the same as Python functions. Errors end a command with one line, never a traceback, and an
exit status that says whether anything was kept (:data:`EXIT_CODES`, printed by ``--help``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any

from napari_sam2.headless import (
    default_out,
    load_video_predictor,
    model_choice,
    read_stack,
    run_segment,
    run_tracking,
)
from napari_sam2.models import DEFAULT_MODEL, DEMO_MODEL, ModelChoice
from napari_sam2.safe_files import RunFailedError
from napari_sam2.tracking.params import TrackingParams
from napari_sam2.tracking.proposals import ENTRY_DETECTORS
from napari_sam2.tracking.results import TrackingError
from sam2.hub import CheckpointDownloadError
from sam2.precision import PRECISION_CHOICES

__all__ = [
    "default_out",
    "load_video_predictor",
    "main",
    "model_choice",
    "read_stack",
    "run_segment",
    "run_tracking",
]


EXIT_CODES = """\
exit status:
  0    done: every output is complete
  1    the run failed (tracking error, model download, writing results): frames finished
       are kept under *.partial.* names (labels.partial.tif, tracking.partial.json says why)
  2    bad input or options (missing or damaged file, shapes that do not fit, an output
       that would replace an input or earlier results): nothing was written
  130  interrupted (Ctrl-C): frames finished are kept under *.partial.* names
errors are one line on stderr: "napari-sam2: error: ..."; outputs are written under
temporary names and renamed into place when complete, and inputs are only ever read."""


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's wrapping for descriptions, but the exit status table keeps its lines."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("exit status:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-sam2",
        description="SAM 2 for microscopy, without the viewer.",
        epilog=EXIT_CODES,
        formatter_class=_HelpFormatter,
    )
    commands = parser.add_subparsers(dest="command")
    track = commands.add_parser(
        "track",
        help="track cells through a time-lapse from seed labels",
        description="Track every object of a seed labels image through a (T, Y, X) stack, "
        "with divisions, cells entering and leaving; writes labels, tracks, lineage, "
        "measurements, a Cell Tracking Challenge folder and the lineage graph as GEFF "
        "(lineage.geff).",
        epilog=EXIT_CODES,
        formatter_class=_HelpFormatter,
    )
    track.add_argument("stack", help="the time-lapse: .tif/.tiff, .npy or .zarr (T, Y, X)")
    track.add_argument(
        "--seeds", required=True, help="labels of the seed frame (Y, X) or all (T, Y, X)"
    )
    track.add_argument("--seed-frame", type=int, default=0, help="frame the seeds are on (0)")
    track.add_argument("--out", help="output folder (default: <stack>_tracking)")
    track.add_argument("--channel", type=int, help="channel to track in a (T, C, Y, X) stack")
    model = track.add_argument_group("model")
    _model_arguments(model)
    model.add_argument(
        "--contrast-limits",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="intensity window for the model (default: robust percentiles of the stack)",
    )
    model.add_argument(
        "--fast",
        action="store_true",
        help="fast tracking: each cell in a window around where it was (much cheaper for small "
        "cells in large frames; masks agree closely with full SAM 2, not exactly)",
    )
    rules = track.add_argument_group("tracking rules (see TrackingParams)")
    rules.add_argument(
        "--entries",
        choices=ENTRY_DETECTORS,
        default="threshold",
        help="how new cells are found: bright regions (threshold), SAM 2's automatic masks "
        "(sam2) or not at all (none)",
    )
    for f in fields(TrackingParams):
        default = f.default
        rules.add_argument(
            "--" + f.name.replace("_", "-"),
            type=type(default),
            default=default,
            help=f"default {default}",
        )
    track.add_argument("--overwrite", action="store_true", help="replace earlier results in --out")
    track.add_argument("--quiet", action="store_true", help="no progress line")

    segment = commands.add_parser(
        "segment",
        help="redo a segmentation saved from the widget (a .sam2.json session) on a stack",
        description="Replay the prompts of a session saved with 'Save session…' on the stack "
        "it was made for: every prompted position is propagated through the whole video "
        "axis; writes a uint32 labels TIFF.",
        epilog=EXIT_CODES,
        formatter_class=_HelpFormatter,
    )
    segment.add_argument("stack", help="the stack as saved: .tif/.tiff or .npy")
    segment.add_argument("--session", required=True, help="the .sam2.json session file")
    segment.add_argument("--out", help="labels TIFF (default: <stack>_sam2_labels.tif)")
    _model_arguments(segment.add_argument_group("model"))
    segment.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    segment.add_argument("--quiet", action="store_true", help="no progress line")
    _train_parser(commands)
    return parser


def _train_parser(commands: Any) -> None:
    from sam2.training.trainable import TRAINABLE_CHOICES

    train = commands.add_parser(
        "train",
        help="fine-tune SAM 2 on annotated images or stacks",
        description="Fine-tune a model on images with instance labels (files, folders of "
        "pairs, or CTC sequences); the best checkpoint by validation one-click IoU is kept "
        "in --out as model.safetensors + model.json (load it with --checkpoint).",
    )
    train.add_argument(
        "--images", nargs="+", required=True, help="image files, folders or CTC sequence folders"
    )
    train.add_argument(
        "--labels",
        nargs="+",
        help="one labels file or folder per --images entry ('-' for a CTC sequence, whose "
        "<sequence>_GT/SEG truth is used)",
    )
    train.add_argument("--out", required=True, help="output folder for the trained model")
    base = train.add_argument_group("base model")
    _model_arguments(base, name="--base")
    what = train.add_argument_group("training")
    what.add_argument("--trainable", choices=TRAINABLE_CHOICES, default="decoder")
    what.add_argument("--steps", type=int, default=300)
    what.add_argument("--lr", type=float, default=1e-4)
    what.add_argument("--val-fraction", type=float, default=0.2)
    what.add_argument("--validate-every", type=int, default=50, help="steps between validations")
    what.add_argument("--video-fraction", type=float, default=0.0, help="share of clip batches")
    what.add_argument("--accumulate", type=int, default=1, help="micro-batches per step")
    what.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    what.add_argument("--seed", type=int, default=0)
    train.add_argument("--overwrite", action="store_true", help="replace a model in --out")
    train.add_argument("--quiet", action="store_true", help="no progress line")


def _model_arguments(group: Any, name: str = "--model") -> None:
    group.add_argument(
        name,
        dest="model",
        help=f"hub id or name (default: {DEFAULT_MODEL} if it is in the Hugging Face cache, "
        f"else {DEMO_MODEL}, the offline demo model)",
    )
    group.add_argument("--checkpoint", help="local .pt/.safetensors file instead of --model")
    group.add_argument("--config", help="config of --checkpoint if its name does not tell")
    group.add_argument("--device", help="cpu, cuda, mps (default: the best available)")
    group.add_argument("--image-size", type=int, help="model input size (smaller: faster)")
    group.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default="auto",
        help="auto (default): bf16 where the CPU/GPU has bfloat16 units, else fp32",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``napari-sam2`` command; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "segment":
        return _exit_code(lambda: _segment(args))
    if args.command == "track":
        return _exit_code(lambda: _track(args))
    if args.command == "train":
        return _exit_code(lambda: _train(args))
    parser.print_help(sys.stderr)
    return 2


def _exit_code(run: Callable[[], str]) -> int:
    """Run a subcommand: print its summary and return 0, or print one line
    ``napari-sam2: error: ...`` (no traceback) and return the documented status (EXIT_CODES)."""
    try:
        summary = run()
    except KeyboardInterrupt as exc:
        return _fail(f"interrupted (Ctrl-C); {exc or 'nothing was written'}", 130)
    except (TrackingError, RunFailedError, CheckpointDownloadError) as exc:
        return _fail(str(exc), 1)
    except (ValueError, TypeError, OSError, ImportError) as exc:
        return _fail(str(exc), 2)
    print(summary, file=sys.stderr)
    return 0


def _fail(message: str, status: int) -> int:
    """The one error line: a multi-line message (a checkpoint's key lists) is joined."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    print(f"napari-sam2: error: {'; '.join(lines) or 'failed'}", file=sys.stderr)
    return status


def _model(args: argparse.Namespace) -> ModelChoice:
    """The model the command line names (``--model`` or ``--checkpoint``)."""
    return model_choice(
        args.model, args.checkpoint, args.config, args.device, args.image_size, args.precision
    )


def _track(args: argparse.Namespace) -> str:
    params = TrackingParams(**{f.name: getattr(args, f.name) for f in fields(TrackingParams)})
    result = run_tracking(
        args.stack,
        args.seeds,
        args.out,
        seed_frame=args.seed_frame,
        model=_model(args),
        entries=args.entries,
        params=params,
        contrast_limits=tuple(args.contrast_limits) if args.contrast_limits else None,
        channel=args.channel,
        overwrite=args.overwrite,
        progress=None if args.quiet else sys.stderr,
        fast=args.fast,
    )
    where = args.out or default_out(args.stack)
    return (
        f"tracked {len(result.lineage)} tracks ({len(result.divisions)} divisions) over frames "
        f"{result.first_frame}–{result.last_frame}; results in {where}"
    )


def _segment(args: argparse.Namespace) -> str:
    target = run_segment(
        args.stack,
        args.session,
        args.out,
        model=_model(args),
        overwrite=args.overwrite,
        progress=None if args.quiet else sys.stderr,
    )
    return f"labels written to {target}"


def _train(args: argparse.Namespace) -> str:
    from napari_sam2.fine_tune.run import gather_stacks, run_fine_tuning
    from sam2.training.trainer import TrainingOptions

    labels = args.labels or ["-"] * len(args.images)
    stacks = gather_stacks(args.images, [None if x == "-" else x for x in labels])
    options = TrainingOptions(
        steps=args.steps,
        lr=args.lr,
        warmup_steps=min(50, max(args.steps // 10, 1)),
        trainable=args.trainable,
        video_fraction=args.video_fraction,
        accumulate=args.accumulate,
        bf16=args.bf16,
        seed=args.seed,
    )
    result = run_fine_tuning(
        stacks,
        args.out,
        _model(args),
        options,
        val_fraction=args.val_fraction,
        validate_every=args.validate_every,
        overwrite=args.overwrite,
        progress=None if args.quiet else sys.stderr,
    )
    ended = "stopped" if result.stopped else "done"
    return (
        f"{ended} after {result.steps} steps: validation click IoU {result.before:.3f} -> "
        f"{result.best:.3f}; best model in {result.weights}"
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
