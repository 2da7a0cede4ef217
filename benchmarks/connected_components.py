"""Connected components with areas: our extension against the scikit-image fallback and SciPy.

Times ``sam2.connected_components.connected_components`` with ``use_extension=True`` (the C++
kernel) and ``use_extension=False`` (scikit-image, what runs where the extension is not built),
and SciPy's ``ndimage.label`` with the same area computation, on masks of smooth random blobs
(thresholded blurred noise, like predicted masks). Each call returns labels and per-pixel areas
for a (N, 1, S, S) bool tensor. Runs of the three are interleaved so that load from other
processes falls on all of them; all three are checked to agree before timing.

    python benchmarks/connected_components.py                      # 256²×1, 1024²×1, 1024²×16
    python benchmarks/connected_components.py --threads 1 --clock cpu

See ``benchmarks/README_cc.md`` for measured results.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from scipy import ndimage

from sam2.connected_components import connected_components, load_extension

Components = tuple[torch.Tensor, torch.Tensor]
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}  # cpu: robust to load


def blobs(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """(n, 1, size, size) bool: Gaussian-blurred noise (sigma 4 px) above zero."""
    noise = np.random.default_rng(seed).standard_normal((n, size, size)).astype(np.float32)
    return torch.from_numpy(ndimage.gaussian_filter(noise, (0, 4, 4)) > 0)[:, None]


def scipy_components(mask: torch.Tensor) -> Components:
    """SciPy's labelling with the same areas computation as our fallback."""
    host = mask.numpy()
    labels = np.zeros(host.shape, dtype=np.int32)
    areas = np.zeros(host.shape, dtype=np.int32)
    for n in range(host.shape[0]):
        image_labels, _ = ndimage.label(host[n, 0], structure=np.ones((3, 3), dtype=bool))
        sizes = np.bincount(image_labels.ravel()).astype(np.int32)
        sizes[0] = 0
        labels[n, 0] = image_labels
        areas[n, 0] = np.take(sizes, image_labels)
    return torch.from_numpy(labels), torch.from_numpy(areas)


METHODS: dict[str, Callable[[torch.Tensor], Components]] = {
    "extension": lambda mask: connected_components(mask, use_extension=True),
    "scikit-image fallback": lambda mask: connected_components(mask, use_extension=False),
    "scipy": scipy_components,
}


def same_result(a: Components, b: Components) -> bool:
    """Same foreground, same areas, and labels that induce the same partition of each image."""
    if not torch.equal(a[1], b[1]) or not torch.equal(a[0] > 0, b[0] > 0):
        return False
    for la, lb in zip(a[0], b[0]):  # labels are unique within an image only
        la, lb = la[la > 0].long(), lb[lb > 0].long()
        pairs = torch.unique(torch.stack([la, lb]), dim=1)
        if not pairs.shape[1] == torch.unique(la).numel() == torch.unique(lb).numel():
            return False
    return True


def measure(mask: torch.Tensor, runs: int, clock: Callable[[], float]) -> dict[str, float]:
    """Median milliseconds per call of each method, runs interleaved after one warm-up each."""
    results = {name: method(mask) for name, method in METHODS.items()}
    reference = results["extension"]
    for name, result in results.items():
        if not same_result(result, reference):
            raise AssertionError(f"{name} disagrees with the extension")
    times: dict[str, list[float]] = {name: [] for name in METHODS}
    for _ in range(runs):
        for name, method in METHODS.items():
            start = clock()
            method(mask)
            times[name].append((clock() - start) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="256x1,1024x1,1024x16", help="SIZExN, comma-separated")
    parser.add_argument("--runs", type=int, default=10, help="timed calls per method and case")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load_extension()  # fail early, with the build hint, if the extension is missing

    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
        f"{torch.__version__}, {torch.get_num_threads()} torch threads, clock {args.clock}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    header = "| mask | " + " | ".join(f"{name} (ms)" for name in METHODS)
    print(header + " | fallback / extension | scipy / extension |")
    print("|---" * (len(METHODS) + 3) + "|")
    for case in args.cases.split(","):
        size, n = (int(part) for part in case.split("x"))
        ms = measure(blobs(n, size), args.runs, CLOCKS[args.clock])
        cells = " | ".join(f"{ms[name]:.2f}" for name in METHODS)
        fallback = ms["scikit-image fallback"] / ms["extension"]
        scipy = ms["scipy"] / ms["extension"]
        print(f"| {n} × {size}² | {cells} | {fallback:.1f}× | {scipy:.1f}× |")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
