"""Timing probes: the reference image predictor's latencies, measured inside the oracle process.

Timing here, rather than around ``Oracle.call``, keeps the npz transfer and the process hop out
of the numbers, so they compare directly with ours measured the same way in our process. The
predictor is kept between calls, so a benchmark can interleave reference and own runs.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from probes.build import build

from sam2.sam2_image_predictor import SAM2ImagePredictor

_PREDICTORS: dict[tuple[str, str], Any] = {}
_CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _predictor(config: str, ckpt: str) -> Any:
    key = (config, ckpt)
    if key not in _PREDICTORS:
        _PREDICTORS[key] = SAM2ImagePredictor(build(config, ckpt=ckpt))
    return _PREDICTORS[key]


def time_set_image(
    inputs: dict[str, np.ndarray],
    config: str,
    ckpt: str,
    runs: int = 1,
    warmup: bool = False,
    clock: str = "wall",
) -> dict[str, np.ndarray]:
    """Seconds per ``set_image(inputs["image"])``, ``runs`` times (after one untimed call).

    ``clock="cpu"`` measures process CPU time, which load from other processes barely changes
    when torch runs one thread.
    """
    now = _CLOCKS[clock]
    predictor = _predictor(config, ckpt)
    image = inputs["image"]
    times = []
    with torch.inference_mode():
        if warmup:
            predictor.set_image(image)  # first-call allocations and kernel selection
        for _ in range(runs):
            start = now()
            predictor.set_image(image)
            times.append(now() - start)
    return {"set_image_s": np.array(times), "threads": np.array(torch.get_num_threads())}


def time_predict(
    inputs: dict[str, np.ndarray], config: str, ckpt: str, clock: str = "wall"
) -> dict[str, np.ndarray]:
    """Seconds per one-click ``predict`` on the image set last, for ``inputs["points"][1:]``.

    ``points`` is (K, 2) x/y pixels, all positive clicks; the first one is an untimed warm-up.
    Also returns each timed click's low-res logits and IoUs, to check both sides did the same.
    """
    now = _CLOCKS[clock]
    predictor = _predictor(config, ckpt)
    points = inputs["points"]
    label = np.array([1], dtype=np.int32)
    predictor.predict(point_coords=points[:1], point_labels=label)
    times, low_res, ious = [], [], []
    for point in points[1:]:
        start = now()
        _, iou, low = predictor.predict(point_coords=point[None], point_labels=label)
        times.append(now() - start)
        low_res.append(low)
        ious.append(iou)
    return {"predict_s": np.array(times), "low_res": np.stack(low_res), "ious": np.stack(ious)}
