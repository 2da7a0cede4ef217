"""Reference automatic mask generator and its helpers (``sam2.utils.amg``) on given inputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torchvision.ops.boxes
from probes.build import build
from torchvision.ops.boxes import batched_nms

from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
from sam2.utils import amg

# The runner registers ``torchvision::nms`` in pure torch, but torchvision's Python wrapper
# still refuses to call it because its compiled extension did not load.
torchvision.ops.boxes._assert_has_ops = lambda: None

_MODELS: dict[tuple[Any, ...], Any] = {}


def generate(
    inputs: dict[str, np.ndarray],
    config: str,
    ckpt: str,
    image_size: int = 1024,
    apply_postprocessing: bool = True,
    **params: Any,
) -> dict[str, np.ndarray]:
    """``generate(inputs["image"])`` with binary masks; records as stacked arrays (N first)."""
    key = (config, ckpt, image_size, apply_postprocessing)
    if key not in _MODELS:  # the parity tests run several cases on one model
        _MODELS.clear()
        _MODELS[key] = build(
            config,
            ckpt=ckpt,
            overrides={"image_size": image_size},
            apply_postprocessing=apply_postprocessing,
        )
    generator = SAM2AutomaticMaskGenerator(_MODELS[key], output_mode="binary_mask", **params)
    # The reference's image predictor hard-codes the feature sizes of a 1024 input; the model
    # itself runs at any size, so give the predictor the sizes that go with image_size.
    generator.predictor._bb_feat_sizes = [(image_size // s, image_size // s) for s in (4, 8, 16)]
    image = inputs["image"]
    records = generator.generate(image)
    return records_to_arrays(records, image.shape[:2])


def records_to_arrays(records: list[dict[str, Any]], hw: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Records as arrays: masks (N, H, W) bool, bbox/crop_box (N, 4), point_coords (N, 2), ..."""
    n = len(records)
    return {
        "masks": np.stack([r["segmentation"] for r in records]) if n else np.zeros((0, *hw), bool),
        "area": np.array([r["area"] for r in records], dtype=np.int64),
        "bbox": np.array([r["bbox"] for r in records], dtype=np.float64).reshape(n, 4),
        "predicted_iou": np.array([r["predicted_iou"] for r in records], dtype=np.float64),
        "point_coords": np.array([r["point_coords"][0] for r in records]).reshape(n, 2),
        "stability_score": np.array([r["stability_score"] for r in records], dtype=np.float64),
        "crop_box": np.array([r["crop_box"] for r in records], dtype=np.float64).reshape(n, 4),
    }


def crop_boxes(
    inputs: dict[str, np.ndarray], cases: list[tuple[int, int, int, float]]
) -> dict[str, np.ndarray]:
    """``generate_crop_boxes((h, w), n_layers, overlap_ratio)`` for each case."""
    out = {}
    for i, (h, w, n_layers, overlap) in enumerate(cases):
        boxes, layers = amg.generate_crop_boxes((h, w), n_layers, overlap)
        out[f"{i}.boxes"], out[f"{i}.layers"] = np.array(boxes), np.array(layers)
    return out


def point_grids(
    inputs: dict[str, np.ndarray], n_per_side: int, n_layers: int, scale: int
) -> dict[str, np.ndarray]:
    grids = amg.build_all_layer_point_grids(n_per_side, n_layers, scale)
    return {str(i): g for i, g in enumerate(grids)}


def mask_helpers(
    inputs: dict[str, np.ndarray], mask_threshold: float, offset: float
) -> dict[str, np.ndarray]:
    """RLE (counts concatenated, with per-mask lengths), boxes and stability of given masks."""
    logits = torch.from_numpy(inputs["logits"])  # (N, H, W)
    masks = logits > mask_threshold
    rles = amg.mask_to_rle_pytorch(masks)
    return {
        "rle_counts": np.concatenate([np.asarray(r["counts"], dtype=np.int64) for r in rles]),
        "rle_lengths": np.array([len(r["counts"]) for r in rles]),
        "areas": np.array([amg.area_from_rle(r) for r in rles]),
        "boxes": amg.batched_mask_to_box(masks).numpy(),
        "stability": amg.calculate_stability_score(logits, mask_threshold, offset).numpy(),
    }


def near_crop_edge(
    inputs: dict[str, np.ndarray], crop_box: list[int], orig_box: list[int]
) -> dict[str, np.ndarray]:
    near = amg.is_box_near_crop_edge(torch.from_numpy(inputs["boxes"]), crop_box, orig_box)
    return {"near": near.numpy()}


def nms(inputs: dict[str, np.ndarray], iou_threshold: float) -> dict[str, np.ndarray]:
    """torchvision's ``batched_nms`` (the oracle's CPU kernel) on given boxes/scores/categories."""
    keep = batched_nms(
        torch.from_numpy(inputs["boxes"]),
        torch.from_numpy(inputs["scores"]),
        torch.from_numpy(inputs["idxs"]),
        iou_threshold,
    )
    return {"keep": keep.numpy()}


def time_generate(
    inputs: dict[str, np.ndarray],
    config: str,
    ckpt: str,
    image_size: int = 1024,
    runs: int = 1,
    clock: str = "wall",
    **params: Any,
) -> dict[str, np.ndarray]:
    """Seconds per ``generate(inputs["image"])`` (``runs`` times, model built beforehand) and
    the records of the last run, for the benchmark (``benchmarks/amg.py``)."""
    import resource
    import time

    now = {"wall": time.perf_counter, "cpu": time.process_time}[clock]
    model = build(config, ckpt=ckpt, overrides={"image_size": image_size})
    generator = SAM2AutomaticMaskGenerator(model, output_mode="binary_mask", **params)
    generator.predictor._bb_feat_sizes = [(image_size // s, image_size // s) for s in (4, 8, 16)]
    times, records = [], []
    for _ in range(runs):
        start = now()
        records = generator.generate(inputs["image"])
        times.append(now() - start)
    out = records_to_arrays(records, inputs["image"].shape[:2])
    out["seconds"] = np.array(times)
    out["threads"] = np.array(torch.get_num_threads())
    out["peak_rss_mb"] = np.array(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out
