"""SAM2AutomaticMaskGenerator and its helpers against the reference, on identical weights.

The model is the tiny SAM 2.1 at input size 256 with random weights written by the reference.
Random weights give speckled, image-wide masks, so every mask box is (nearly) the whole image:
with box NMS at 0.7 only one mask per crop would survive. The main cases therefore set NMS to
1.0 (only boxes with IoU above 1 suppress, i.e. none) and loosen the quality filters, so that
tens of masks run the whole pipeline; one case keeps box NMS at 0.7, and NMS itself is compared
with torchvision's on thousands of random boxes with ties.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

from sam2.amg import (
    area_from_rle,
    batched_nms,
    build_all_layer_point_grids,
    generate_crop_boxes,
    is_box_near_crop_edge,
    mask_to_rle,
    masks_to_boxes,
    stability_score,
)
from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
from sam2.build_sam import build_sam2
from sam2.intensity import choose_limits, to_unit_range
from sam2.synthetic import make_image
from tests.conftest import ReferenceCheckpoints
from tests.oracle.harness import Oracle

pytestmark = pytest.mark.oracle

TINY = "configs/sam2.1/sam2.1_hiera_t.yaml"
SIZE = 256  # model input size: a quarter of the cost of 512, same code paths
SCORE_TOL = 1e-3
# Loose filters for random weights: their logits lie within about ±0.6, so a stability
# offset of 1 would score every mask 0.
LOOSE = {
    "points_per_side": 8,
    "points_per_batch": 24,  # 64 points in 3 decoder calls, the last one short
    "pred_iou_thresh": 0.5,
    "stability_score_thresh": 0.15,
    "stability_score_offset": 0.05,
    "mask_threshold": 0.1,
    "box_nms_thresh": 1.0,
}


def photo_like(h: int, w: int, seed: int = 0) -> np.ndarray:
    """RGB uint8 'photo': smooth colour gradients, discs and rectangles, a ripple, noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    image = np.stack([0.3 + 0.5 * xx, 0.2 + 0.6 * yy, 0.6 - 0.4 * xx * yy], axis=-1)
    for _ in range(8):
        cy, cx = rng.uniform(0.1, 0.9, 2) * [h / max(h, w), w / max(h, w)]
        r = rng.uniform(0.05, 0.2)
        if rng.random() < 0.5:
            inside = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
        else:
            inside = (abs(yy - cy) < 0.7 * r) & (abs(xx - cx) < 1.3 * r)
        image[inside] = rng.uniform(0, 1, 3)
    image += 0.04 * (np.sin(xx * 90) * np.cos(yy * 70))[..., None]
    image += rng.normal(0, 0.02, image.shape)
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


@dataclass
class Case:
    ours: np.ndarray  # what we are given
    reference: np.ndarray  # the same pixels as the reference takes them (HWC)
    params: dict[str, Any]
    min_masks: int  # fewer survivors than this would make the comparison weak
    min_from_crops: int = 0  # survivors made on a crop rather than on the whole image


def _cells() -> tuple[np.ndarray, np.ndarray]:
    """16-bit cells as we take them and as float RGB in [0, 1] (our scaling) for the reference."""
    cells = make_image(shape=(176, 160), seed=5)[0]
    unit = to_unit_range(cells, choose_limits(cells))
    return cells, np.repeat(unit[:, :, None], 3, axis=2)


# Random-weight masks fill their crop, so the edge filter drops every crop mask unless the
# crops' inner edges lie within 20 px of the image's: small images with 90 % crop overlap. Crop
# masks then survive, are shifted to image pixels, and win the cross-crop ordering (smaller
# crops first; the four crops of layer 1 tie).
CROPS = {
    "crop_n_layers": 1,
    "crop_n_points_downscale_factor": 2,
    "crop_overlap_ratio": 0.9,
    "crop_nms_thresh": 1.0,
}


def _case(name: str) -> Case:
    photo = photo_like(192, 256)
    if name == "photo":
        return Case(photo, photo, LOOSE, min_masks=30)
    if name == "photo_crops":
        small = photo_like(160, 176, seed=1)
        return Case(small, small, {**LOOSE, **CROPS}, min_masks=30, min_from_crops=20)
    if name == "cells_crops_m2m_single_mask":
        cells, cells_ref = _cells()
        params = {
            **LOOSE,
            **CROPS,
            "points_per_side": 6,
            "multimask_output": False,
            "use_m2m": True,
            "min_mask_region_area": 12,
        }
        return Case(cells, cells_ref, params, min_masks=30, min_from_crops=20)
    if name == "photo_default_nms":
        params = {**LOOSE, "box_nms_thresh": 0.7}  # one or two masks survive
        return Case(photo, photo, params, min_masks=1)
    raise KeyError(name)


def _as_arrays(records: list[dict[str, Any]], hw: tuple[int, int]) -> dict[str, np.ndarray]:
    n = len(records)
    return {
        "masks": np.stack([r["segmentation"] for r in records]) if n else np.zeros((0, *hw)),
        "area": np.array([r["area"] for r in records]),
        "bbox": np.array([r["bbox"] for r in records]).reshape(n, 4),
        "predicted_iou": np.array([r["predicted_iou"] for r in records]),
        "point_coords": np.array([r["point_coords"][0] for r in records]).reshape(n, 2),
        "stability_score": np.array([r["stability_score"] for r in records]),
        "crop_box": np.array([r["crop_box"] for r in records]).reshape(n, 4),
    }


def _match(ours: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> list[int]:
    """For each reference record, our record from the same click whose mask overlaps most."""
    flat = ours["masks"].reshape(len(ours["masks"]), -1)
    matched: list[int] = []
    for i, (point, mask) in enumerate(zip(ref["point_coords"], ref["masks"])):
        same_click = np.flatnonzero(np.abs(ours["point_coords"] - point).max(axis=1) < 1e-3)
        same_click = np.array([j for j in same_click if j not in matched], dtype=int)
        assert same_click.size, f"reference record {i} (click {point}) has no counterpart"
        inter = (flat[same_click] & mask.ravel()).sum(axis=1)
        union = (flat[same_click] | mask.ravel()).sum(axis=1)
        best = int(np.argmax(inter / np.maximum(union, 1)))
        iou = inter[best] / max(union[best], 1)
        assert iou >= 0.99, f"reference record {i}: best mask IoU {iou:.4f} < 0.99"
        matched.append(int(same_click[best]))
    return matched


@pytest.fixture(scope="module")
def tiny_ckpt(reference_checkpoints: ReferenceCheckpoints) -> str:
    return str(reference_checkpoints.get(TINY, seed=0))


@pytest.fixture(scope="module")
def tiny_model(tiny_ckpt: str) -> Any:
    return build_sam2(
        TINY, tiny_ckpt, device="cpu", hydra_overrides_extra=[f"++model.image_size={SIZE}"]
    )


@pytest.mark.parametrize(
    "name", ["photo", "photo_crops", "cells_crops_m2m_single_mask", "photo_default_nms"]
)
def test_generate_matches_reference(
    oracle: Oracle, tiny_ckpt: str, tiny_model: Any, name: str
) -> None:
    """Same records as the reference: count, masks (IoU >= 0.99), boxes, scores, clicks, crops."""
    case = _case(name)
    records = SAM2AutomaticMaskGenerator(tiny_model, **case.params).generate(case.ours)
    ours = _as_arrays(records, case.ours.shape[:2])
    ref = oracle.call(
        "amg:generate",
        {"image": case.reference},
        config=TINY,
        ckpt=tiny_ckpt,
        image_size=SIZE,
        **case.params,
    )
    assert len(ref["area"]) >= case.min_masks, "too few reference masks for a meaningful test"
    h, w = case.ours.shape[:2]
    from_crops = int((ref["crop_box"] != [0, 0, w, h]).any(axis=1).sum())
    assert from_crops >= case.min_from_crops, "too few masks from crops for a meaningful test"
    assert len(records) == len(ref["area"])
    order = _match(ours, ref)
    for key in ("predicted_iou", "stability_score"):
        np.testing.assert_allclose(ours[key][order], ref[key], atol=SCORE_TOL, err_msg=key)
    np.testing.assert_array_equal(ours["bbox"][order], ref["bbox"])
    np.testing.assert_array_equal(ours["crop_box"][order], ref["crop_box"])
    np.testing.assert_allclose(ours["point_coords"][order], ref["point_coords"], atol=1e-4)
    np.testing.assert_allclose(ours["area"][order], ref["area"], rtol=0.01)
    assert order == list(range(len(order))), "records come in a different order"


# ---------------------------------------------------------------------------- helpers
def test_crop_boxes_and_grids_match_reference(oracle: Oracle) -> None:
    """Crop boxes (odd sizes, portrait and landscape, 0-3 layers) and per-layer point grids."""
    cases = [(192, 256, 1, 512 / 1500), (1000, 777, 3, 512 / 1500), (33, 1025, 2, 0.5)]
    ref = oracle.call("amg:crop_boxes", {}, cases=cases)
    for i, (h, w, n_layers, overlap) in enumerate(cases):
        boxes, layers = generate_crop_boxes((h, w), n_layers, overlap)
        np.testing.assert_array_equal(np.array(boxes), ref[f"{i}.boxes"])
        np.testing.assert_array_equal(np.array(layers), ref[f"{i}.layers"])
    ref_grids = oracle.call("amg:point_grids", {}, n_per_side=15, n_layers=2, scale=2)
    grids = build_all_layer_point_grids(15, 2, 2)
    assert len(grids) == len(ref_grids) == 3
    for i, grid in enumerate(grids):
        np.testing.assert_array_equal(grid, ref_grids[str(i)])


def test_mask_helpers_match_reference(oracle: Oracle) -> None:
    """RLE counts and areas, mask boxes and stability scores, including empty and full masks."""
    rng = np.random.default_rng(1)
    logits = rng.normal(0.0, 1.0, size=(7, 23, 31)).astype(np.float32)
    logits[0] = -1.0  # empty
    logits[1] = 1.0  # full
    logits[2, :, :] = -1.0
    logits[2, 0, 0] = 1.0  # only the first pixel (RLE starts with a 0 run)
    logits[3, :, :] = -1.0
    logits[3, 5:9, 30] = 1.0  # touches the last column
    ref = oracle.call("amg:mask_helpers", {"logits": logits}, mask_threshold=0.2, offset=0.5)
    masks = torch.from_numpy(logits) > 0.2
    counts = [mask_to_rle(m.numpy())["counts"] for m in masks]
    np.testing.assert_array_equal(np.concatenate(counts), ref["rle_counts"])
    np.testing.assert_array_equal([len(c) for c in counts], ref["rle_lengths"])
    areas = [area_from_rle(mask_to_rle(m.numpy())) for m in masks]
    np.testing.assert_array_equal(areas, ref["areas"])
    np.testing.assert_array_equal(masks_to_boxes(masks).numpy(), ref["boxes"])
    ours = stability_score(torch.from_numpy(logits), 0.2, 0.5).numpy()
    np.testing.assert_array_equal(ours, ref["stability"])


def test_near_crop_edge_matches_reference(oracle: Oracle) -> None:
    """Which boxes a crop drops: only crop edges that are not image edges count, within 20 px."""
    rng = np.random.default_rng(2)
    xy0 = rng.integers(0, 120, size=(300, 2))
    boxes = np.concatenate([xy0, xy0 + rng.integers(0, 120, size=(300, 2))], axis=1)
    for crop in ([0, 0, 150, 140], [100, 60, 250, 200], [0, 60, 150, 200]):
        ref = oracle.call(
            "amg:near_crop_edge", {"boxes": boxes}, crop_box=crop, orig_box=[0, 0, 250, 200]
        )
        ours = is_box_near_crop_edge(torch.from_numpy(boxes), crop, [0, 0, 250, 200])
        np.testing.assert_array_equal(ours.numpy(), ref["near"], err_msg=str(crop))


@pytest.mark.parametrize("n", [300, 1500])  # 1500 boxes: torchvision's per-category path
def test_batched_nms_matches_torchvision(oracle: Oracle, n: int) -> None:
    """Same kept boxes in the same order as torchvision's batched_nms, with many tied scores."""
    rng = np.random.default_rng(n)
    xy0 = rng.integers(0, 60, size=(n, 2))
    boxes = np.concatenate([xy0, xy0 + rng.integers(1, 40, size=(n, 2))], axis=1)
    boxes = boxes.astype(np.float32)
    boxes[: n // 10] = boxes[n // 10 : 2 * (n // 10)]  # exact duplicates (IoU 1)
    scores = rng.integers(0, 6, size=n).astype(np.float32) / 5  # ties everywhere
    for idxs in (np.zeros(n, dtype=np.int64), rng.integers(0, 3, size=n)):
        inputs = {"boxes": boxes, "scores": scores, "idxs": idxs}
        # 0.3, 0.6 and 0.8 round up in float32: IoUs equal to them are kept only when the
        # comparison runs in float64, as in torchvision's C++ kernel (and the oracle's stand-in)
        for threshold in (0.3, 0.45, 0.6, 0.7, 0.8, 1.0):
            ref = oracle.call("amg:nms", inputs, iou_threshold=threshold)
            ours = batched_nms(
                torch.from_numpy(boxes),
                torch.from_numpy(scores),
                torch.from_numpy(idxs),
                threshold,
            )
            np.testing.assert_array_equal(ours.numpy(), ref["keep"])
