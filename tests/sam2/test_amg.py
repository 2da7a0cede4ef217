"""Automatic mask generator: helpers against brute-force versions, records, bad input."""

from __future__ import annotations

import sys
from collections import deque
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sam2.amg import (
    area_from_rle,
    batched_nms,
    build_all_layer_point_grids,
    build_point_grid,
    generate_crop_boxes,
    is_box_near_crop_edge,
    logits_to_boxes,
    mask_to_rle,
    masks_to_boxes,
    nms,
    remove_small_regions,
    rle_to_mask,
    stability_score,
)
from sam2.amg.candidates import Candidates
from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
from sam2.build_sam import build_sam2
from sam2.intensity import choose_limits

SETTINGS = settings(max_examples=60, deadline=None)


# ---------------------------------------------------------------------------- brute force
def brute_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """Greedy NMS written out: visit by score (ties by index), keep, suppress IoU > threshold.

    IoU is computed in float32 like torchvision's kernel and compared in float64.
    """
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    b = boxes.astype(np.float32)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    removed: set[int] = set()
    keep = []
    for pos, i in enumerate(order):
        if i in removed:
            continue
        keep.append(i)
        for j in order[pos + 1 :]:
            w = max(np.float32(0), min(b[i, 2], b[j, 2]) - max(b[i, 0], b[j, 0]))
            h = max(np.float32(0), min(b[i, 3], b[j, 3]) - max(b[i, 1], b[j, 1]))
            inter = np.float32(w * h)
            with np.errstate(invalid="ignore", divide="ignore"):
                iou = inter / np.float32(area[i] + area[j] - inter)
            if float(iou) > threshold:
                removed.add(j)
    return keep


def brute_components(mask: np.ndarray) -> np.ndarray:
    """8-connected labels by breadth-first flood fill, numbered in pixel scan order."""
    labels = np.zeros(mask.shape, dtype=np.int64)
    h, w = mask.shape
    count = 0
    for y in range(h):
        for x in range(w):
            if mask[y, x] and not labels[y, x]:
                count += 1
                labels[y, x] = count
                queue = deque([(y, x)])
                while queue:
                    cy, cx = queue.popleft()
                    for ny in range(max(cy - 1, 0), min(cy + 2, h)):
                        for nx in range(max(cx - 1, 0), min(cx + 2, w)):
                            if mask[ny, nx] and not labels[ny, nx]:
                                labels[ny, nx] = count
                                queue.append((ny, nx))
    return labels


def brute_small_regions(mask: np.ndarray, min_area: float, mode: str) -> tuple[np.ndarray, bool]:
    """The clean-up rule of the OpenCV-based reference, written for one mask."""
    labels = brute_components(~mask if mode == "holes" else mask)
    sizes = np.bincount(labels.ravel())[1:]
    small = [i + 1 for i, s in enumerate(sizes) if s < min_area]
    if not small:
        return mask, False
    if mode == "holes":
        return mask | np.isin(labels, small), True
    large = [i + 1 for i, s in enumerate(sizes) if s >= min_area]
    if not large:  # keep the largest; ties: first met scanning 2×2 blocks
        ys, xs = np.nonzero(labels)
        first_block: dict[int, tuple[int, int]] = {}
        for y, x in sorted(zip(ys, xs), key=lambda p: (p[0] // 2, p[1] // 2)):
            first_block.setdefault(int(labels[y, x]), (y // 2, x // 2))
        best = max(sizes)
        large = [min((lab for lab in first_block if sizes[lab - 1] == best), key=first_block.get)]
    return np.isin(labels, large), True


# ---------------------------------------------------------------------------- grids, crops
def test_point_grid_is_cell_centres_row_by_row() -> None:
    """n×n cell centres of the unit square, x varying fastest."""
    grid = build_point_grid(4)
    assert grid.shape == (16, 2)
    np.testing.assert_allclose(grid[:4, 0], [0.125, 0.375, 0.625, 0.875])
    np.testing.assert_allclose(grid[:4, 1], 0.125)
    np.testing.assert_allclose(grid[4:8, 1], 0.375)
    assert [len(g) for g in build_all_layer_point_grids(16, 2, 2)] == [256, 64, 16]
    with pytest.raises(ValueError, match="at least 1 point"):
        build_point_grid(0)


@SETTINGS
@given(
    h=st.integers(64, 3000),  # smaller images with 3 layers give empty crops (see below)
    w=st.integers(64, 3000),
    n_layers=st.integers(0, 3),
    ratio=st.floats(0.0, 0.6),
)
def test_crop_boxes_tile_the_image(h: int, w: int, n_layers: int, ratio: float) -> None:
    """Layer 0 is the image; layer i has 4**i crops inside the image that together cover it."""
    boxes, layers = generate_crop_boxes((h, w), n_layers, ratio)
    assert boxes[0] == (0, 0, w, h) and layers[0] == 0
    for layer in range(1, n_layers + 1):
        crops = [b for b, lay in zip(boxes, layers) if lay == layer]
        assert len(crops) == 4**layer
        covered = np.zeros((h, w), dtype=bool)
        for x0, y0, x1, y1 in crops:
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
            covered[y0:y1, x0:x1] = True
        assert covered.all()


# ---------------------------------------------------------------------------- boxes
@SETTINGS
@given(masks=hnp.arrays(bool, hnp.array_shapes(min_dims=3, max_dims=3, max_side=12)))
def test_masks_to_boxes_are_inclusive_extents(masks: np.ndarray) -> None:
    """Box = [min x, min y, max x, max y] of the set pixels; [0, 0, 0, 0] for an empty mask."""
    boxes = masks_to_boxes(torch.from_numpy(masks)).numpy()
    for mask, box in zip(masks, boxes):
        ys, xs = np.nonzero(mask)
        expected = [xs.min(), ys.min(), xs.max(), ys.max()] if len(xs) else [0, 0, 0, 0]
        assert box.tolist() == expected
    logits = torch.from_numpy(np.where(masks, 0.75, -0.25).astype(np.float32))
    assert logits_to_boxes(logits, 0.5).tolist() == boxes.tolist()


def test_near_crop_edge_ignores_image_edges() -> None:
    """Boxes near an inner crop edge are flagged, boxes near an image edge are not."""
    crop, image = [100, 0, 200, 100], [0, 0, 200, 150]  # right crop edge = image edge
    boxes = torch.tensor(
        [
            [5, 30, 50, 60],  # 5 px from the crop's left edge (inside the image)
            [40, 30, 99, 60],  # touches the right edge, which is the image's
            [40, 0, 60, 50],  # touches the top edge, also the image's
            [30, 30, 60, 79],  # 21 px above the crop's bottom edge (inclusive max 79)
            [30, 30, 60, 80],  # 20 px: flagged
        ]
    )
    near = is_box_near_crop_edge(boxes, crop, image)
    assert near.tolist() == [True, False, False, False, True]


# ---------------------------------------------------------------------------- NMS
boxes_and_scores = st.integers(1, 40).flatmap(
    lambda n: st.tuples(
        hnp.arrays(np.int64, (n, 2), elements=st.integers(0, 30)),
        hnp.arrays(np.int64, (n, 2), elements=st.integers(0, 15)),
        hnp.arrays(np.int64, (n,), elements=st.integers(0, 4)),  # few values: ties
        hnp.arrays(np.int64, (n,), elements=st.integers(0, 2)),
    )
)


@SETTINGS
@given(data=boxes_and_scores, threshold=st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0]))
def test_nms_matches_brute_force(data: Any, threshold: float) -> None:
    """Same kept indices in the same order as the greedy loop, zero-area boxes and ties included."""
    xy0, wh, scores, categories = data
    boxes = np.concatenate([xy0, xy0 + wh], axis=1).astype(np.float32)
    scores = scores.astype(np.float32)
    kept = nms(torch.from_numpy(boxes), torch.from_numpy(scores), threshold)
    assert kept.tolist() == brute_nms(boxes, scores, threshold)
    batched = batched_nms(
        torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(categories), threshold
    ).tolist()
    expected: list[int] = []
    for c in np.unique(categories):
        members = np.flatnonzero(categories == c)
        expected += [int(members[k]) for k in brute_nms(boxes[members], scores[members], threshold)]
    assert batched == sorted(expected, key=lambda i: (-scores[i], i))


def test_nms_threshold_is_compared_in_float64() -> None:
    """An IoU of exactly 3/10 is above a threshold of 0.3 (float32(0.3) > 0.3), as in
    torchvision's C++ kernel."""
    boxes = torch.tensor([[0.0, 0.0, 10.0, 1.0], [0.0, 0.0, 3.0, 1.0]])  # IoU 3 / 10
    assert nms(boxes, torch.tensor([1.0, 0.5]), 0.3).tolist() == [0]
    assert nms(boxes, torch.tensor([1.0, 0.5]), 0.31).tolist() == [0, 1]


def test_nms_rejects_bad_shapes() -> None:
    """Boxes must be (N, 4) with one score per box."""
    with pytest.raises(ValueError, match=r"boxes must be \(N, 4\)"):
        nms(torch.zeros(3, 5), torch.zeros(3), 0.5)
    with pytest.raises(ValueError, match="scores must be"):
        nms(torch.zeros(3, 4), torch.zeros(2), 0.5)


# ---------------------------------------------------------------------------- RLE, stability
@SETTINGS
@given(mask=hnp.arrays(bool, hnp.array_shapes(min_dims=2, max_dims=2, max_side=20)))
def test_rle_round_trip(mask: np.ndarray) -> None:
    """Decoding gives the mask back; runs sum to h*w, start with background; area = pixels."""
    rle = mask_to_rle(mask)
    assert rle["size"] == list(mask.shape)
    assert sum(rle["counts"]) == mask.size
    assert (rle["counts"][0] == 0) == bool(mask.flat[0])
    assert all(c > 0 for c in rle["counts"][1:])
    assert area_from_rle(rle) == mask.sum()
    np.testing.assert_array_equal(rle_to_mask(rle), mask)


def test_rle_is_column_major() -> None:
    """Runs follow columns (COCO / Fortran order), not rows."""
    mask = np.array([[0, 1, 1], [0, 1, 0]], dtype=bool)  # columns: 00, 11, 10
    assert mask_to_rle(mask)["counts"] == [2, 3, 1]
    assert mask_to_rle(np.zeros((2, 3), bool))["counts"] == [6]
    with pytest.raises(ValueError, match="sum to h"):
        rle_to_mask({"size": [2, 3], "counts": [2, 3]})


def test_stability_score_is_iou_of_shifted_thresholds() -> None:
    """|logits > t + o| / |logits > t - o|, NaN when nothing passes the lower cut."""
    logits = torch.tensor([[[-2.0, -0.5, 0.5, 1.5]], [[-3.0, -3.0, -3.0, -3.0]]])  # (2, 1, 4)
    scores = stability_score(logits, mask_threshold=0.0, offset=1.0)
    assert scores[0].item() == pytest.approx(1 / 3)
    assert torch.isnan(scores[1])
    assert stability_score(logits, mask_threshold=0.0, offset=0.4)[0].item() == 1.0
    wide = torch.ones(1, 2, 40_000)  # rows too long for 16-bit row counts
    wide[0, 1, :10_000] = -1.0
    assert stability_score(wide, 0.0, 0.5).item() == 1.0
    wide[0, 0, :5] = 0.2  # above t - o, not above t + o
    assert stability_score(wide, 0.0, 0.5).item() == pytest.approx(69_995 / 70_000)


# ---------------------------------------------------------------------------- small regions
@settings(max_examples=40, deadline=None)
@given(
    masks=hnp.arrays(bool, st.tuples(st.integers(1, 4), st.integers(1, 14), st.integers(1, 14))),
    min_area=st.integers(1, 8),
)
def test_remove_small_regions_matches_brute_force(masks: np.ndarray, min_area: int) -> None:
    """Holes then islands, with the 'keep the largest island' rule, mask by mask."""
    for mode in ("holes", "islands"):
        cleaned, changed = remove_small_regions(torch.from_numpy(masks), min_area, mode)
        for i, mask in enumerate(masks):
            expected, expected_changed = brute_small_regions(mask, min_area, mode)
            np.testing.assert_array_equal(cleaned[i].numpy(), expected, err_msg=mode)
            assert bool(changed[i]) == expected_changed


def test_all_small_islands_keep_the_first_in_block_order() -> None:
    """Equal largest islands: the one met first in 2×2-block scan order stays (as OpenCV)."""
    mask = np.zeros((6, 10), dtype=bool)
    mask[1:3, 0] = True  # rows 1-2: first block row, block column 0
    mask[0, 5:7] = True  # row 0 but block column 2
    cleaned, changed = remove_small_regions(torch.from_numpy(mask)[None], 5, "islands")
    expected = np.zeros_like(mask)
    expected[1:3, 0] = True
    assert changed.item()
    np.testing.assert_array_equal(cleaned[0].numpy(), expected)
    with pytest.raises(ValueError, match="'holes' or 'islands'"):
        remove_small_regions(torch.from_numpy(mask)[None], 5, "specks")  # type: ignore[arg-type]


def test_candidates_check_rows() -> None:
    """Every column of the candidate set has one row per mask."""
    with pytest.raises(ValueError, match="points has 2 rows, expected 3"):
        Candidates(
            low_res=torch.zeros(3, 4, 4),
            iou_preds=torch.zeros(3),
            stability=torch.zeros(3),
            points=torch.zeros(2, 2),
            boxes=torch.zeros(3, 4, dtype=torch.int64),
            crop_index=torch.zeros(3, dtype=torch.int64),
        )


# ---------------------------------------------------------------------------- generator
SIZE = 256
LOOSE = {
    "points_per_side": 6,
    "pred_iou_thresh": 0.0,
    "stability_score_thresh": 0.1,
    "stability_score_offset": 0.05,
    "box_nms_thresh": 1.0,
}


@pytest.fixture(scope="module")
def model() -> Any:
    torch.manual_seed(0)
    return build_sam2("tiny", device="cpu", hydra_overrides_extra=[f"++model.image_size={SIZE}"])


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:128]
    rgb = np.stack([xx * 2, yy * 2, 255 - xx - yy], axis=-1).astype(np.float64)
    rgb[20:60, 30:80] = [230, 40, 40]
    return np.clip(rgb + rng.normal(0, 8, rgb.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def records(model: Any, image: np.ndarray) -> list[dict[str, Any]]:
    return SAM2AutomaticMaskGenerator(model, **LOOSE).generate(image)


def test_records_are_consistent(records: list[dict[str, Any]], image: np.ndarray) -> None:
    """Each record's area, box, click and crop agree with its mask, sorted by predicted IoU."""
    assert len(records) >= 5
    h, w = image.shape[:2]
    for record in records:
        mask = record["segmentation"]
        assert mask.shape == (h, w) and mask.dtype == bool
        assert record["area"] == mask.sum()
        ys, xs = np.nonzero(mask)
        x0, y0, bw, bh = record["bbox"]
        assert [x0, y0, x0 + bw, y0 + bh] == [xs.min(), ys.min(), xs.max(), ys.max()]
        ((px, py),) = record["point_coords"]
        assert 0 < px < w and 0 < py < h
        assert record["crop_box"] == [0.0, 0.0, float(w), float(h)]
        assert record["predicted_iou"] > 0.0 and record["stability_score"] >= 0.1
    ious = [r["predicted_iou"] for r in records]
    assert ious == sorted(ious, reverse=True)


def test_rle_output_encodes_the_same_masks(
    model: Any, image: np.ndarray, records: list[dict[str, Any]]
) -> None:
    """output_mode='uncompressed_rle' gives the binary masks' RLEs, other fields unchanged."""
    rle_records = SAM2AutomaticMaskGenerator(
        model, output_mode="uncompressed_rle", **LOOSE
    ).generate(image)
    assert len(rle_records) == len(records)
    for rle_record, record in zip(rle_records, records):
        assert rle_record["segmentation"] == mask_to_rle(record["segmentation"])
        assert {k: v for k, v in rle_record.items() if k != "segmentation"} == {
            k: v for k, v in record.items() if k != "segmentation"
        }


def test_box_nms_removes_duplicates(model: Any, image: np.ndarray, records: list[Any]) -> None:
    """With the default box NMS, the kept boxes overlap each other by IoU <= 0.7."""
    params = {**LOOSE, "box_nms_thresh": 0.7}
    kept = SAM2AutomaticMaskGenerator(model, **params).generate(image)
    assert 1 <= len(kept) < len(records)
    boxes = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (r["bbox"] for r in kept)])
    assert nms(boxes, torch.tensor([r["predicted_iou"] for r in kept]), 0.7).tolist() == list(
        range(len(kept))
    )


def test_crops_share_the_whole_image_contrast(model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 16-bit image is scaled once for the whole image: every crop is embedded with the
    image's limits, not with percentiles of its own pixels."""
    rng = np.random.default_rng(3)
    raw = (rng.gamma(2.0, 300.0, size=(80, 96)) + np.linspace(0, 3000, 96)).astype(np.uint16)
    params = {**LOOSE, "points_per_side": 4, "crop_n_layers": 1, "crop_nms_thresh": 1.0}
    generator = SAM2AutomaticMaskGenerator(model, **params)
    embed = generator.predictor.embed
    limits_seen: list[Any] = []

    def spy(image: np.ndarray, contrast_limits: Any = None) -> Any:
        limits_seen.append(contrast_limits)
        return embed(image, contrast_limits=contrast_limits)

    monkeypatch.setattr(generator.predictor, "embed", spy)
    generator.generate(raw)
    full_image_limits = choose_limits(raw)
    assert limits_seen == [full_image_limits] * 5  # the image and 4 crops
    assert choose_limits(raw[:40, :48]) != full_image_limits  # a crop's own would differ


def test_postprocess_small_regions_on_records(records: list[dict[str, Any]]) -> None:
    """Cleaned records have no holes or islands under the area; changed ones are updated."""
    cleaned = SAM2AutomaticMaskGenerator.postprocess_small_regions(records, 30, 1.0)
    assert 0 < len(cleaned) <= len(records)
    for record in cleaned:
        mask = record["segmentation"]
        assert record["area"] == mask.sum()
        _, holes_left = brute_small_regions(mask, 30, "holes")
        assert not holes_left
        islands = np.bincount(brute_components(mask).ravel())[1:]
        assert len(islands) == 1 or islands.min() >= 30
    assert SAM2AutomaticMaskGenerator.postprocess_small_regions([], 30, 0.7) == []


def test_options_reach_the_predictor(model: Any) -> None:
    """min_mask_region_area becomes the predictor's hole and sprinkle areas; precision too."""
    generator = SAM2AutomaticMaskGenerator(
        model, min_mask_region_area=25, precision="bf16", mask_threshold=0.5
    )
    predictor = generator.predictor
    assert (predictor.max_hole_area, predictor.max_sprinkle_area) == (25, 25)
    assert predictor.precision == "bf16"
    assert predictor.mask_threshold == 0.0  # clean-up binarises at 0, as the reference


def test_from_pretrained_routes_keywords(monkeypatch: pytest.MonkeyPatch, model: Any) -> None:
    """Builder keywords reach build_sam2_hf; generator keywords configure the generator."""
    seen: dict[str, Any] = {}

    def fake_build(model_id: str, **kwargs: Any) -> Any:
        seen.update(kwargs, model_id=model_id)
        return model

    monkeypatch.setattr("sam2.build_sam.build_sam2_hf", fake_build)
    generator = SAM2AutomaticMaskGenerator.from_pretrained(
        "facebook/sam2.1-hiera-tiny", device="cpu", points_per_side=4
    )
    assert seen["model_id"] == "facebook/sam2.1-hiera-tiny" and seen["device"] == "cpu"
    assert len(generator.point_grids[0]) == 16


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"points_per_side": None}, "exactly one of points_per_side and point_grids .got neither"),
        ({"point_grids": [build_point_grid(4)]}, "got both"),
        ({"output_mode": "png"}, "output_mode must be one of"),
        ({"points_per_batch": 0}, "points_per_batch must be at least 1"),
        ({"crop_n_layers": -1}, "crop_n_layers must be 0 or more"),
        (
            {"points_per_side": 2, "crop_n_layers": 2, "crop_n_points_downscale_factor": 2},
            "0 points",
        ),
        ({"points_per_side": None, "point_grids": [np.zeros((4, 3))]}, r"\(N, 2\) array"),
        ({"points_per_side": None, "point_grids": [np.full((4, 2), 50.0)]}, "not pixels"),
        (
            {"points_per_side": None, "point_grids": [build_point_grid(2)], "crop_n_layers": 1},
            "needs 2",
        ),
    ],
)
def test_bad_settings_raise_value_error(model: Any, kwargs: dict[str, Any], message: str) -> None:
    """Each bad setting is named in a ValueError."""
    with pytest.raises(ValueError, match=message):
        SAM2AutomaticMaskGenerator(model, **kwargs)


def test_unknown_keyword_is_a_type_error(model: Any) -> None:
    """A misspelt option fails instead of being ignored; builder keywords are accepted."""
    with pytest.raises(TypeError, match="points_per_sid"):
        SAM2AutomaticMaskGenerator(model, points_per_sid=8)
    SAM2AutomaticMaskGenerator(model, device="cpu", apply_postprocessing=False)


def test_coco_rle_without_pycocotools(model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Asking for coco_rle without pycocotools says how to install it, before any work."""
    monkeypatch.setitem(sys.modules, "pycocotools", None)
    monkeypatch.setitem(sys.modules, "pycocotools.mask", None)
    with pytest.raises(ImportError, match="pip install pycocotools"):
        SAM2AutomaticMaskGenerator(model, output_mode="coco_rle")


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((2, 32, 32, 3), np.uint8), r"\(H, W, 3\) RGB or \(H, W\) grayscale"),
        (np.zeros((32, 32, 2), np.uint8), r"got shape \(32, 32, 2\)"),
        (np.zeros((32, 32, 3), np.complex64), "dtype complex64 is not supported"),
        (np.array([["a"]]), "dtype <U1 is not supported"),
        (np.zeros((0, 32, 3), np.uint8), "empty"),
    ],
)
def test_bad_images_raise_value_error(model: Any, image: np.ndarray, message: str) -> None:
    """Wrong shapes and dtypes are refused with a ValueError before the model runs."""
    with pytest.raises(ValueError, match=message):
        SAM2AutomaticMaskGenerator(model, points_per_side=2).generate(image)


def test_image_too_small_for_crop_layers(model: Any) -> None:
    """Crop layers that would leave empty crops on a tiny image are refused."""
    generator = SAM2AutomaticMaskGenerator(model, points_per_side=8, crop_n_layers=3)
    with pytest.raises(ValueError, match="too small for crop_n_layers=3"):
        generator.generate(np.zeros((20, 20, 3), np.uint8))
