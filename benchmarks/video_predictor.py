"""Benchmark: our SAM2VideoPredictor against the reference sam2==1.1.0, on the same machine.

Both sides load the same random-weight checkpoint (made by the reference), read the same folder
of synthetic JPEG frames, click the same cells on frame 0 and propagate forward. Every
measurement runs in a fresh subprocess, so its peak RSS is that run's own; the reference runs
with its install directory first on ``PYTHONPATH`` (it is also called ``sam2``).

* ``speed``: seconds per tracked frame (the prompted frame excluded), 1 and 5 objects, at the
  released input size (1024) by default.
* ``memory``: peak RSS over 64, 256 and 1,000 frames, 1 object, at a reduced input size (256 by
  default). Ours streams (``keep_history=False``, frames read lazily); the reference loads all
  frames at ``init_state`` and keeps every output.

Run from the repository root (see ``benchmarks/README_video.md``)::

    .venv/bin/python benchmarks/video_predictor.py --what all
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ORACLE_DIR = REPO / "tests" / "oracle"
RESULT_MARK = "@@RESULT@@ "
MIB = 1024.0 * 1024.0


# ---------------------------------------------------------------------------- worker side
def _rss_mib() -> float:
    """Current resident set size of this process."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy (all processes), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return float("nan")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    guest = sum(fields[8:10])  # already counted in user / nice
    return (sum(fields) - idle - guest) / os.sysconf("SC_CLK_TCK")


def _import_reference() -> Any:
    """The reference's ``build_sam2_video_predictor``, with the oracle's CPU shims installed."""
    sys.path.insert(0, str(ORACLE_DIR))
    import runner  # tests/oracle/runner.py

    runner._install_torchvision_nms()  # before torchvision / sam2 are imported
    import sam2

    if not os.path.abspath(sam2.__file__).startswith(os.environ["BENCH_ORACLE_SITE"]):
        raise RuntimeError(f"expected the reference sam2, imported {sam2.__file__}")
    runner._install_connected_components()
    from probes.video import _patch_memory_dtype

    from sam2.build_sam import build_sam2_video_predictor

    _patch_memory_dtype()  # the reference's fp32 crash when a frame sees no object pointer
    return build_sam2_video_predictor


def _import_ours() -> Any:
    import sam2
    from sam2.build_sam import build_sam2_video_predictor

    if not any(str(p).startswith(str(REPO / "sam2")) for p in sam2.__path__):
        raise RuntimeError(f"expected our sam2, imported {list(sam2.__path__)}")
    return build_sam2_video_predictor


def worker(job: dict[str, Any]) -> dict[str, Any]:
    """One measured run: build, init_state, click, propagate; times and memory."""
    impl = job["impl"]
    start = time.perf_counter()
    build = _import_reference() if impl == "reference" else _import_ours()
    import numpy as np
    import torch

    torch.manual_seed(0)
    overrides = [f"++model.image_size={job['image_size']}"]
    extra = {"precision": job["precision"]} if impl == "ours" else {}
    predictor = build(
        job["config"], job["ckpt"], device="cpu", hydra_overrides_extra=overrides, **extra
    )
    if impl == "ours" and (job.get("object_batch_size") or job.get("window")):
        from sam2.video.options import WindowOptions

        options = predictor.options.replace(
            object_batch_size=job.get("object_batch_size") or 16,  # 1: one object at a time
            window=WindowOptions() if job.get("window") else None,  # fast tracking
        )
        predictor = type(predictor)(predictor.model, options, precision=predictor.precision)
    rss_model = _rss_mib()
    build_s = time.perf_counter() - start
    # the reference at its fastest on CPU: the whole run under bf16 autocast, as users try it
    autocast = contextlib.ExitStack()
    if impl == "reference" and job["precision"] == "bf16":
        autocast.enter_context(torch.autocast("cpu", dtype=torch.bfloat16))

    t0 = time.perf_counter()
    if impl == "reference":
        state = predictor.init_state(video_path=job["video"], offload_video_to_cpu=True)
    else:
        state = predictor.init_state(job["video"], **job.get("ours_options", {}))
    init_s = time.perf_counter() - t0
    rss_init = _rss_mib()

    t0 = time.perf_counter()
    for obj_id, xy in enumerate(job["points"], start=1):
        predictor.add_new_points_or_box(
            state,
            frame_idx=0,
            obj_id=obj_id,
            points=np.array([xy], dtype=np.float32),
            labels=np.array([1], dtype=np.int32),
        )
    prompt_s = time.perf_counter() - t0

    n = job["frames"]
    sample_every = max(n // 8, 1)
    wall, cpu, trace = [], [], []
    areas: list[int] = []
    t_wall, t_cpu = time.perf_counter(), time.process_time()
    busy0, cpu0, wall0 = _machine_busy_s(), t_cpu, t_wall
    with torch.inference_mode():
        for i, (_, _, masks) in enumerate(predictor.propagate_in_video(state)):
            areas = [int(a) for a in (masks > 0).flatten(1).sum(1)]  # consume, then drop
            del masks
            now_wall, now_cpu = time.perf_counter(), time.process_time()
            wall.append(now_wall - t_wall)
            cpu.append(now_cpu - t_cpu)
            t_wall, t_cpu = now_wall, now_cpu
            if i % sample_every == 0 or i == n - 1:
                trace.append((i, round(_rss_mib(), 1)))
    # CPU time other processes took while we tracked, in cores (0 = a quiet machine)
    others = (_machine_busy_s() - busy0 - (time.process_time() - cpu0)) / (t_wall - wall0)
    autocast.close()
    return {
        "impl": impl,
        "precision": predictor.precision if impl == "ours" else job["precision"],
        "frames_done": len(wall),
        "build_s": build_s,
        "init_s": init_s,
        "prompt_s": prompt_s,
        "first_s": wall[0],  # preflight (memory of the prompted frame) + its output
        "wall_s": wall[1:],  # one per tracked frame
        "cpu_s": cpu[1:],
        "rss_model_mib": rss_model,
        "rss_init_mib": rss_init,
        "rss_end_mib": _rss_mib(),
        "peak_rss_mib": _peak_rss_mib(),
        "rss_trace": trace,
        "last_areas": areas,
        "threads": torch.get_num_threads(),
        "others_cores": max(others, 0.0),
    }


# ---------------------------------------------------------------------------- driver side
def make_video(folder: Path, n_frames: int, shape: tuple[int, int], n_cells: int) -> list:
    """JPEG frames of synthetic cells; returns the (x, y) centroid of each cell on frame 0."""
    import numpy as np
    from PIL import Image

    from sam2.synthetic import make_timelapse

    folder.mkdir(parents=True, exist_ok=True)
    data = make_timelapse(
        n_frames=n_frames, shape=shape, n_cells=n_cells, division_frames=(), seed=4
    )
    for t, frame in enumerate(data.image):
        lo, hi = np.percentile(frame, [1, 99.5])
        gray = np.clip((frame - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)
        Image.fromarray(np.stack([gray] * 3, axis=-1)).save(folder / f"{t:05d}.jpg", quality=95)
    centroids = []
    for track_id in range(1, n_cells + 1):
        yy, xx = np.nonzero(data.labels[0] == track_id)
        centroids.append([float(xx.mean()), float(yy.mean())])
    return centroids


def first_frames(src: Path, dst: Path, n: int) -> Path:
    """A folder holding links to the first ``n`` frames of ``src``."""
    dst.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.glob("*.jpg"))[:n]:
        if not (dst / path.name).is_symlink():  # a --workdir kept from an earlier run
            (dst / path.name).symlink_to(path)
    return dst


def run_worker(job: dict[str, Any], oracle_site: Path, timeout: float) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter; its JSON result."""
    env = dict(os.environ)
    env["TQDM_DISABLE"] = "1"
    keep = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    keep = [p for p in keep if Path(p).resolve() != oracle_site.resolve()]
    if job["impl"] == "reference":
        env["PYTHONPATH"] = os.pathsep.join([str(oracle_site), *keep])
        env["BENCH_ORACLE_SITE"] = str(oracle_site.resolve())
    else:
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), *keep])
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(job)]
    proc = subprocess.run(
        cmd, env=env, cwd=str(REPO), capture_output=True, text=True, timeout=timeout
    )
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK) :])
    raise RuntimeError(
        f"{job['impl']} run failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n"
        f"{proc.stderr[-5000:]}"
    )


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.rjust(w) for h, w in zip(headers, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"
    body = ["| " + " | ".join(c.rjust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    return "\n".join([line, sep, *body])


def _options(args: argparse.Namespace) -> str:
    return f"; ours init_state options {args.ours_options}" if args.ours_options else ""


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def wait_until_quiet(max_cores: float, max_wait: float, window: float = 5.0) -> float:
    """Wait (at most ``max_wait`` s) until other processes use ≤ ``max_cores`` CPU cores."""
    deadline = time.monotonic() + max_wait
    while True:
        before = _machine_busy_s()
        time.sleep(window)
        used = (_machine_busy_s() - before) / window
        if used <= max_cores or time.monotonic() >= deadline:
            return used
        _log(f"  other processes use {used:.2f} CPU cores: waiting for a quiet machine")


def measure(job: dict[str, Any], args: argparse.Namespace, site: Path, retries: int) -> dict:
    """One run; rerun up to ``retries`` times while other processes loaded the machine."""
    runs = []
    for attempt in range(retries + 1):
        wait_until_quiet(args.max_others, args.max_wait)  # load slows both sides many-fold
        r = run_worker(job, site, args.timeout)
        runs.append(r)
        per_frame = " ".join(f"{x:.2f}" for x in r["wall_s"])
        _log(
            f"  {_mean(r['wall_s']):.3f} s/frame wall, {_mean(r['cpu_s']):.3f} CPU s/frame, "
            f"others used {r['others_cores']:.2f} cores; peak RSS {r['peak_rss_mib']:.0f} MiB "
            f"(after build {r['rss_model_mib']:.0f}, after init {r['rss_init_mib']:.0f}); "
            f"per frame [{per_frame if len(r['wall_s']) <= 12 else '...'}]; "
            f"RSS trace {r['rss_trace']}; last masks' areas {r['last_areas']}"
        )
        if r["others_cores"] <= args.max_others:
            break
        if attempt < retries:
            _log(f"  machine busy (> {args.max_others} cores used by others): running again")
    return min(runs, key=lambda r: (r["others_cores"] > args.max_others, _mean(r["wall_s"])))


def bench_speed(args: argparse.Namespace, work: Path, ckpt: Path, site: Path) -> str:
    n_objects = [int(x) for x in args.objects.split(",")]
    video = work / f"speed_{args.speed_frames}"
    points = make_video(video, args.speed_frames, (480, 640), n_cells=max(n_objects) + 1)
    results: dict[tuple[int, str], dict[str, Any]] = {}
    runs = [("ours", "fp32"), ("reference", "fp32")]
    if args.bf16:
        runs.append(("ours", "bf16"))
    for k in n_objects:
        for impl, precision in runs:
            job = {
                "impl": impl,
                "precision": precision,
                "config": args.config,
                "ckpt": str(ckpt),
                "video": str(video),
                "image_size": args.speed_image_size,
                "points": points[:k],
                "frames": args.speed_frames,
                "ours_options": args.ours_options,
            }
            _log(f"speed: {impl} {precision}, {k} object(s), input {args.speed_image_size} ...")
            results[(k, impl if precision == "fp32" else f"{impl} {precision}")] = measure(
                job, args, site, args.retries
            )
    rows = []
    labels = ["fp32", "bf16"] if args.bf16 else ["fp32"]
    for k, label in [(k, p) for k in n_objects for p in labels]:
        o = results[(k, "ours" if label == "fp32" else f"ours {label}")]
        f = results[(k, "reference")]
        ow, fw = _mean(o["wall_s"]), _mean(f["wall_s"])
        oc, fc = _mean(o["cpu_s"]), _mean(f["cpu_s"])
        rows.append(
            [
                str(k),
                label,
                f"{ow:.2f}",
                f"{fw:.2f}",
                f"{ow / fw:.2f}",
                f"{o['wall_s'][-1]:.2f} / {f['wall_s'][-1]:.2f}",
                f"{oc:.2f} / {fc:.2f}",
                f"{oc / fc:.2f}",
                f"{o['init_s']:.1f} / {f['init_s']:.1f}",
                f"{o['peak_rss_mib']:.0f} / {f['peak_rss_mib']:.0f}",
                f"{o['others_cores']:.2f} / {f['others_cores']:.2f}",
            ]
        )
    tracked = args.speed_frames - 1
    header = (
        f"Speed: {args.config}, input {args.speed_image_size}x{args.speed_image_size}, the "
        "reference in fp32, ours in fp32 and (with --bf16) bf16 autocast, "
        f"{args.speed_frames} JPEG frames of 480x640, clicks on frame 0, mean over the "
        f"{tracked} tracked frames; {o['threads']} torch threads{_options(args)}\n"
    )
    return header + _table(
        [
            "objects",
            "ours precision",
            "ours s/frame",
            "ref s/frame",
            "ours/ref",
            "last frame s (ours / ref)",
            "CPU s/frame (ours / ref)",
            "CPU ours/ref",
            "init_state s (ours / ref)",
            "peak RSS MiB (ours / ref)",
            "others' cores (ours / ref)",
        ],
        rows,
    )


def bench_memory(args: argparse.Namespace, work: Path, ckpt: Path, site: Path) -> str:
    counts = [int(x) for x in args.frames.split(",")]
    full = work / f"memory_{max(counts)}_all"
    points = make_video(full, max(counts), (256, 256), n_cells=2)
    results: dict[tuple[int, str], dict[str, Any]] = {}
    for n in counts:
        video = first_frames(full, work / f"memory_{n}", n)
        for impl in ("ours", "reference"):
            job = {
                "impl": impl,
                "config": args.config,
                "ckpt": str(ckpt),
                "video": str(video),
                "image_size": args.image_size,
                "points": points[:1],
                "frames": n,
                "ours_options": args.ours_options,
            }
            _log(f"memory: {impl}, {n} frames, input {args.image_size} ...")
            results[(n, impl)] = measure(job, args, site, retries=0)
    base = counts[0]
    rows = []
    for n in counts:
        o, f = results[(n, "ours")], results[(n, "reference")]
        og = o["peak_rss_mib"] / results[(base, "ours")]["peak_rss_mib"] - 1
        fg = f["peak_rss_mib"] / results[(base, "reference")]["peak_rss_mib"] - 1
        rows.append(
            [
                str(n),
                f"{o['peak_rss_mib']:.0f}",
                f"{f['peak_rss_mib']:.0f}",
                f"{og:+.1%}",
                f"{fg:+.1%}",
                f"{o['peak_rss_mib'] / f['peak_rss_mib']:.2f}",
                f"{o['rss_init_mib']:.0f} / {f['rss_init_mib']:.0f}",
                f"{o['init_s']:.1f} / {f['init_s']:.1f}",
                f"{_mean(o['wall_s']):.3f} / {_mean(f['wall_s']):.3f}",
            ]
        )
    header = (
        f"Peak RSS: {args.config}, REDUCED input size {args.image_size}x{args.image_size} (the "
        f"released models use 1024), 1 object, JPEG frames of 256x256, fp32; ours streaming "
        f"(keep_history=False), reference init_state(offload_video_to_cpu=True){_options(args)}\n"
    )
    return header + _table(
        [
            "frames",
            "ours MiB",
            "ref MiB",
            f"ours vs {base}",
            f"ref vs {base}",
            "ours/ref",
            "RSS after init_state (ours / ref)",
            "init_state s (ours / ref)",
            "s/frame (ours / ref)",
        ],
        rows,
    )


def make_checkpoint(config: str, path: Path, site: Path, timeout: float) -> None:
    """A random-weight checkpoint built by the reference (tests/oracle/probes/build.py)."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import runner; "
        "runner._install_torchvision_nms(); import sam2; runner._install_connected_components(); "
        "from probes.build import save_random_checkpoint; "
        "save_random_checkpoint({}, sys.argv[2], sys.argv[3], seed=0)"
    )
    env = dict(os.environ, PYTHONPATH=str(site))
    subprocess.run(
        [sys.executable, "-c", code, str(ORACLE_DIR), config, str(path)],
        env=env,
        cwd=str(REPO),
        check=True,
        timeout=timeout,
        capture_output=True,
    )


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(
            line.split(":", 1)[1].strip() for line in out.splitlines() if "Model name" in line
        )
    except (OSError, subprocess.CalledProcessError, StopIteration):
        pass
    return f"{os.cpu_count()} CPU cores ({model}), {platform.system()} {platform.release()}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--what", choices=["speed", "memory", "all"], default="all")
    parser.add_argument(
        "--frames", default="64,256,1000", help="video lengths of the memory runs (first = base)"
    )
    parser.add_argument(
        "--image-size", type=int, default=256, help="model input size of the memory runs"
    )
    parser.add_argument(
        "--speed-image-size", type=int, default=1024, help="model input size of the speed runs"
    )
    parser.add_argument(
        "--speed-frames",
        type=int,
        default=8,
        help="frames of the speed video (from the 8th on, a frame attends to all 7 memories)",
    )
    parser.add_argument("--objects", default="1,5", help="object counts of the speed runs")
    parser.add_argument("--bf16", action="store_true", help="also time ours with precision='bf16'")
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        help="reruns of a speed run while other processes used the machine",
    )
    parser.add_argument(
        "--max-others",
        type=float,
        default=0.25,
        help="CPU cores other processes may use during a speed run before it is rerun",
    )
    parser.add_argument(
        "--max-wait",
        type=float,
        default=900.0,
        help="seconds to wait for a quiet machine before each speed run",
    )
    parser.add_argument(
        "--ours-options",
        type=json.loads,
        default={},
        help="JSON keyword arguments for our init_state, e.g. '{\"prefetch\": 0}'",
    )
    parser.add_argument("--config", default="configs/sam2.1/sam2.1_hiera_t.yaml")
    parser.add_argument("--checkpoint", type=Path, help="default: a random one made by the ref")
    parser.add_argument(
        "--oracle-site",
        type=Path,
        default=Path(os.environ.get("NAPARI_SAM2_ORACLE_SITE", REPO / ".oracle" / "site")),
        help="where the reference sam2==1.1.0 is installed",
    )
    parser.add_argument("--workdir", type=Path, help="keep videos and checkpoint here")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per run")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        result = worker(json.loads(args.worker))
        print(RESULT_MARK + json.dumps(result), flush=True)
        return

    site = args.oracle_site.resolve()
    if not (site / "sam2" / "build_sam.py").is_file():
        parser.error(f"the reference sam2==1.1.0 is not installed in {site}")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="sam2-video-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        ckpt = args.checkpoint
        if ckpt is None:
            ckpt = work / "random_tiny.pt"
            if not ckpt.exists():
                _log(f"making a random checkpoint with the reference: {ckpt}")
                make_checkpoint(args.config, ckpt, site, args.timeout)
        print(f"# SAM 2 video predictor: ours vs reference sam2==1.1.0 ({time.strftime('%F')})")
        print(f"machine: {machine()}; checkpoint: random weights ({ckpt.name})\n")
        if args.what in ("speed", "all"):
            print(bench_speed(args, work, ckpt, site) + "\n", flush=True)
        if args.what in ("memory", "all"):
            print(bench_memory(args, work, ckpt, site) + "\n", flush=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
