"""Image predictor latency: the reference sam2==1.1.0 (fp32) against ours in fp32 and bf16.

All three use one random checkpoint written by the reference, the same images and the same
clicks, on the same machine. The reference runs in the oracle subprocess (``tests/oracle``) and
times itself there, so process hops are not counted. ``set_image`` runs are interleaved
(reference, ours fp32, ours bf16, repeat) so that load from other processes hits all three.

    python benchmarks/image_predictor.py --config tiny --runs 3 --clicks 20
    python benchmarks/image_predictor.py --threads 1 --clock cpu   # steady on a busy machine

Needs the oracle (``.oracle/site``, see ``tests/oracle/harness.py``); ``--no-reference``
times only ours. See ``benchmarks/README.md`` for measured results.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from skimage import data as skdata
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the oracle harness lives in tests/

from sam2.build_sam import build_sam2  # noqa: E402
from sam2.intensity import choose_limits, to_unit_range  # noqa: E402
from sam2.sam2_image_predictor import SAM2ImagePredictor  # noqa: E402
from sam2.synthetic import make_image  # noqa: E402
from sam2.transforms import upsample_logits  # noqa: E402
from tests.oracle.harness import Oracle, oracle_available  # noqa: E402

CONFIGS = {
    "tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "small": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "base_plus": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "large": "configs/sam2.1/sam2.1_hiera_l.yaml",
}
SIDES = ("reference fp32", "ours fp32", "ours bf16")
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}  # cpu: robust to load, 1 thread


@dataclass
class Case:
    """One image as we take it and as the reference takes it (float HWC in [0, 1] for 16-bit)."""

    name: str
    ours: np.ndarray
    reference: np.ndarray
    points: np.ndarray  # (1 + clicks, 2) x/y pixels; the first is the warm-up click


@dataclass
class Result:
    ref_threads: int | None = None
    set_image_s: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    predict_s: dict[str, list[float]] = field(default_factory=dict)
    low_res: dict[str, np.ndarray] = field(default_factory=dict)  # (clicks, 3, S/4, S/4)
    masks: dict[str, list[np.ndarray]] = field(default_factory=lambda: defaultdict(list))


def make_cases(clicks: int, synthetic_size: int, seed: int) -> list[Case]:
    rng = np.random.default_rng(seed)
    coffee = skdata.coffee()
    cells = make_image(shape=(synthetic_size, synthetic_size), seed=5)[0]
    cells_ref = np.repeat(to_unit_range(cells, choose_limits(cells))[:, :, None], 3, axis=2)
    cases = []
    for name, ours, ref in [
        (f"coffee {coffee.shape[0]}x{coffee.shape[1]} RGB uint8", coffee, coffee),
        (f"cells {synthetic_size}x{synthetic_size} uint16", cells, cells_ref),
    ]:
        h, w = ours.shape[:2]
        points = rng.uniform(0.05, 0.95, size=(clicks + 1, 2)) * [w, h]
        cases.append(Case(name, ours, ref, points.astype(np.float32)))
    return cases


def _time_ours(
    predictor: SAM2ImagePredictor, case: Case, result: Result, side: str, clock: str
) -> None:
    """Timed one-click predicts after one warm-up click (as the reference probe does)."""
    now = CLOCKS[clock]
    label = np.array([1], dtype=np.int32)
    predictor.predict(point_coords=case.points[:1], point_labels=label)
    times, lows = [], []
    for point in case.points[1:]:
        start = now()
        masks, _, low = predictor.predict(point_coords=point[None], point_labels=label)
        times.append(now() - start)
        lows.append(low)
        result.masks[side].append(masks > 0)
    result.predict_s[side] = times
    result.low_res[side] = np.stack(lows)


def run_case(
    case: Case, config: str, ckpt: str | None, runs: int, oracle: Oracle | None, clock: str
) -> tuple[Result, dict[str, SAM2ImagePredictor]]:
    now = CLOCKS[clock]
    model = build_sam2(config, ckpt, device="cpu")
    ours = {
        "ours fp32": SAM2ImagePredictor(model),
        "ours bf16": SAM2ImagePredictor(model, precision="bf16"),
    }
    result = Result()
    ref_inputs = {"image": case.reference}
    for round_ in range(runs):
        if oracle is not None:
            warmup = round_ == 0
            out = oracle.call(
                "bench:time_set_image",
                ref_inputs,
                config=config,
                ckpt=ckpt,
                warmup=warmup,
                clock=clock,
            )
            result.set_image_s["reference fp32"].extend(out["set_image_s"].tolist())
            result.ref_threads = int(out["threads"])
        for side, predictor in ours.items():
            if round_ == 0:
                predictor.set_image(case.ours)  # warm-up, as the reference probe does
            start = now()
            predictor.set_image(case.ours)
            result.set_image_s[side].append(now() - start)
    if oracle is not None:
        points = {"points": case.points}
        out = oracle.call("bench:time_predict", points, config=config, ckpt=ckpt, clock=clock)
        result.predict_s["reference fp32"] = out["predict_s"].tolist()
        result.low_res["reference fp32"] = out["low_res"]
    for side, predictor in ours.items():
        _time_ours(predictor, case, result, side, clock)
    return result, ours


# ---------------------------------------------------------------------------- where time goes
@contextmanager
def _stopwatch(parts: dict[str, nn.Module], totals: dict[str, float]) -> Iterator[None]:
    """Add each module's forward time (seconds) to ``totals[name]`` while the context is open."""
    handles, starts = [], {}
    for name, module in parts.items():

        def pre(_m: nn.Module, _a: object, name: str = name) -> None:
            starts[name] = time.perf_counter()

        def post(_m: nn.Module, _a: object, _o: object, name: str = name) -> None:
            totals[name] += time.perf_counter() - starts[name]

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def predict_breakdown(predictor: SAM2ImagePredictor, case: Case) -> dict[str, float]:
    """Mean milliseconds per click spent in each part of ``predict``."""
    decoder = predictor.model.sam_mask_decoder
    parts: dict[str, nn.Module] = {
        "prompt encoder": predictor.model.sam_prompt_encoder,
        "mask decoder": decoder,
        "  two-way transformer": decoder.transformer,
        "  upscaling (deconvs, LayerNorm2d, GELU)": decoder.output_upscaling,
    }
    parts.update({f"_up{i}": m for i, m in enumerate(decoder.output_upscaling)})
    totals: dict[str, float] = defaultdict(float)
    label = np.array([1], dtype=np.int32)
    clicks = case.points[1:]
    with _stopwatch(parts, totals):
        start = time.perf_counter()
        for point in clicks:
            predictor.predict(point_coords=point[None], point_labels=label)
        total = time.perf_counter() - start
    # _upscale calls the Sequential's children one by one, never the Sequential itself
    upscaling = sum(v for k, v in totals.items() if k.startswith("_up"))
    totals["  upscaling (deconvs, LayerNorm2d, GELU)"] = upscaling
    totals["  rest: hypernetwork MLPs, mask matmul, IoU head"] = (
        totals["mask decoder"] - totals["  two-way transformer"] - upscaling
    )
    low = torch.zeros(1, 3, predictor.model.image_size // 4, predictor.model.image_size // 4)
    hw = case.ours.shape[:2]
    with torch.inference_mode():
        totals["upsample logits to H x W"] = _repeat(lambda: upsample_logits(low, hw), len(clicks))
        up = upsample_logits(low, hw)
        totals["threshold in place + numpy"] = _repeat(lambda: up.gt_(0).numpy(), len(clicks))
        before = _repeat(lambda: (up > 0).float().numpy(), len(clicks))
    totals["  (was: bool, then a float copy)"] = before
    totals["predict (total)"] = total
    order = [*parts, *totals]  # parts first, in the order of the table
    return {k: 1000 * totals[k] / len(clicks) for k in dict.fromkeys(order) if k[0] != "_"}


def _repeat(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return time.perf_counter() - start


# ---------------------------------------------------------------------------- report
def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # (C, H, W) bool -> (C,)
    union = (a | b).sum(axis=(1, 2))
    return np.where(union > 0, (a & b).sum(axis=(1, 2)) / np.maximum(union, 1), 1.0)


def report(case: Case, result: Result) -> list[str]:
    med = {
        "set_image (ms)": {s: 1000 * float(np.median(v)) for s, v in result.set_image_s.items()},
        "predict, 1 click (ms)": {
            s: 1000 * float(np.median(v)) for s, v in result.predict_s.items()
        },
    }
    lines = [f"{case.name}"]
    head = f"  {'':24}" + "".join(f"{s:>16}" for s in SIDES) + f"{'fp32/ref':>10}{'bf16/ref':>10}"
    lines.append(head)
    for step, values in med.items():
        row = f"  {step:24}" + "".join(
            f"{values[s]:>16.1f}" if s in values else f"{'-':>16}" for s in SIDES
        )
        ref = values.get("reference fp32")
        for side in ("ours fp32", "ours bf16"):
            row += f"{values[side] / ref:>10.2f}" if ref else f"{'-':>10}"
        lines.append(row)
    ious = np.concatenate(
        [_iou(a, b) for a, b in zip(result.masks["ours fp32"], result.masks["ours bf16"])]
    )
    lines.append(
        f"  bf16 vs fp32 mask IoU over {ious.size} masks: mean {ious.mean():.4f}, "
        f"min {ious.min():.4f}"
    )
    if "reference fp32" in result.low_res:
        diff = np.abs(result.low_res["ours fp32"] - result.low_res["reference fp32"]).max()
        lines.append(f"  ours fp32 vs reference: max |low-res logit difference| {diff:.2e}")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="tiny")
    parser.add_argument("--runs", type=int, default=3, help="timed set_image calls per side")
    parser.add_argument("--clicks", type=int, default=20, help="timed one-click predicts")
    parser.add_argument("--synthetic-size", type=int, default=1024, help="side of the 16-bit image")
    parser.add_argument("--seed", type=int, default=0, help="checkpoint and click seed")
    parser.add_argument("--no-reference", action="store_true", help="time only ours")
    parser.add_argument("--breakdown", action="store_true", help="where predict spends time")
    parser.add_argument("--threads", type=int, help="torch threads, both sides (default: all)")
    parser.add_argument(
        "--clock", choices=sorted(CLOCKS), default="wall", help="cpu: process time (use 1 thread)"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by the oracle process
    if not args.no_reference and not oracle_available():
        parser.error("the reference oracle is not installed (tests/oracle/harness.py)")

    config = CONFIGS[args.config]
    load_before = os.getloadavg()[0]
    cases = make_cases(args.clicks, args.synthetic_size, args.seed)
    results: list[tuple[Case, Result, dict[str, SAM2ImagePredictor]]] = []
    with tempfile.TemporaryDirectory(prefix="sam2-bench-") as tmp:
        oracle = None if args.no_reference else Oracle()
        try:
            ckpt: str | None = None
            if oracle is not None:  # the reference writes the checkpoint both sides load
                ckpt = str(Path(tmp) / "random.pt")
                oracle.call(
                    "build:save_random_checkpoint", config=config, path=ckpt, seed=args.seed
                )
            else:
                torch.manual_seed(args.seed)
            for case in cases:
                results.append((case, *run_case(case, config, ckpt, args.runs, oracle, args.clock)))
        finally:
            if oracle is not None:
                oracle.close()
    load_after = os.getloadavg()[0]

    ref_threads = results[0][1].ref_threads
    lines = [
        f"SAM 2.1 {args.config}, random weights (seed {args.seed}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads (reference: {ref_threads or '-'}), "
        f"{os.cpu_count()} CPUs ({platform.machine()}), {args.clock} clock, medians of "
        f"{args.runs} set_image and {args.clicks} clicks",
        "",
    ]
    for case, result, _ in results:
        lines += [*report(case, result), ""]
    lines.append(f"load average (1 min): {load_before:.2f} before, {load_after:.2f} after")
    if args.breakdown:
        for case, _, ours in results:
            parts = {side: predict_breakdown(p, case) for side, p in ours.items()}
            lines += ["", f"predict, mean ms per click: {case.name}"]
            lines.append(f"  {'':50}" + "".join(f"{side:>12}" for side in parts))
            for name in parts["ours fp32"]:
                lines.append(f"  {name:50}" + "".join(f"{parts[s][name]:>12.2f}" for s in parts))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
