"""The reference's module paths (sam2.utils.*, sam2.modeling.sam2_base) behave as the reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sam2.build_sam import build_sam2
from sam2.modeling.sam2_base import SAM2Base
from sam2.utils import amg, misc
from sam2.utils.transforms import SAM2Transforms
from tests.oracle.harness import Oracle


def _same_partition(ours: np.ndarray, ref: np.ndarray) -> bool:
    """Labels that differ only in their values (each component one value in both)."""
    if not np.array_equal(ours > 0, ref > 0):
        return False
    pairs = {(int(a), int(b)) for a, b in zip(ours[ours > 0], ref[ref > 0])}
    return len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})


def _blobs(n: int, h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 1, h, w)).astype(np.float32)


@pytest.mark.oracle
def test_misc_components_and_hole_filling_match_reference(oracle: Oracle) -> None:
    """get_connected_components and fill_holes_in_mask_scores give the reference's results."""
    scores = _blobs(3, 24, 31, seed=0)
    ref = oracle.call("utils:components_and_holes", {"scores": scores}, max_area=6.0)
    labels, counts = misc.get_connected_components(torch.from_numpy(scores) > 0)
    assert labels.shape == counts.shape == (3, 1, 24, 31)
    for ours, theirs in zip(labels.numpy(), ref["labels"]):
        assert _same_partition(ours, theirs)
    np.testing.assert_array_equal(counts.numpy(), ref["counts"])
    filled = misc.fill_holes_in_mask_scores(torch.from_numpy(scores), 6.0)
    np.testing.assert_array_equal(filled.numpy(), ref["filled"])
    with pytest.raises(ValueError, match="max_area must be positive"):
        misc.fill_holes_in_mask_scores(torch.from_numpy(scores), 0)


@pytest.mark.oracle
def test_load_video_frames_matches_reference(oracle: Oracle, tmp_path: Path) -> None:
    """A JPEG folder loads as the reference's (T, 3, S, S) frames and (H, W)."""
    rng = np.random.default_rng(1)
    for i in range(3):
        frame = rng.integers(0, 255, size=(40, 52, 3), dtype=np.uint8)
        Image.fromarray(frame).save(tmp_path / f"{i:05d}.jpg")
    ref = oracle.call("frames:load_jpeg_folder", {}, folder=str(tmp_path), image_size=64)
    images, height, width = misc.load_video_frames(str(tmp_path), 64, offload_video_to_cpu=True)
    assert (height, width) == tuple(ref["hw"])
    np.testing.assert_array_equal(images.numpy(), ref["images"])
    lazy, _, _ = misc.load_video_frames(tmp_path, 64, True, async_loading_frames=True)
    assert len(lazy) == 3 and torch.equal(lazy[2], images[2])
    with pytest.raises(NotImplementedError, match="ffmpeg"):
        misc.load_video_frames(str(tmp_path / "video.mp4"), 64, True)
    with pytest.raises(ValueError, match="ImageNet mean"):
        misc.load_video_frames(str(tmp_path), 64, True, img_mean=(0.5, 0.5, 0.5))


@pytest.mark.oracle
def test_amg_helpers_match_reference(oracle: Oracle) -> None:
    """RLE, boxes, uncrop_* and box_xyxy_to_xywh give the reference's values."""
    rng = np.random.default_rng(2)
    masks = rng.random((4, 18, 23)) > 0.6
    masks[3] = False  # an empty mask
    inputs = {
        "masks": masks,
        "boxes": np.array([[1, 2, 10, 12], [0, 0, 5, 5]], dtype=np.int64),
        "points": rng.uniform(0, 20, size=(5, 2)).astype(np.float32),
    }
    crop = [3, 4, 15, 14]
    ref = oracle.call("utils:amg_helpers", inputs, crop_box=crop)
    tensor = torch.from_numpy(masks)
    rles = amg.mask_to_rle_pytorch(tensor)
    counts = np.concatenate([np.asarray(r["counts"], dtype=np.int64) for r in rles])
    np.testing.assert_array_equal(counts, ref["rle_counts"])
    np.testing.assert_array_equal([len(r["counts"]) for r in rles], ref["rle_lengths"])
    np.testing.assert_array_equal(np.stack([amg.rle_to_mask(r) for r in rles]), ref["decoded"])
    np.testing.assert_array_equal([amg.area_from_rle(r) for r in rles], ref["areas"])
    np.testing.assert_array_equal(amg.batched_mask_to_box(tensor).numpy(), ref["boxes"])
    boxes, points = torch.from_numpy(inputs["boxes"]), torch.from_numpy(inputs["points"])
    np.testing.assert_array_equal(amg.uncrop_boxes_xyxy(boxes, crop), ref["uncropped_boxes"])
    np.testing.assert_array_equal(amg.uncrop_points(points, crop), ref["uncropped_points"])
    np.testing.assert_array_equal(amg.box_xyxy_to_xywh(boxes[0]), ref["xywh"])
    crop_masks = tensor[:, :10, :12]
    np.testing.assert_array_equal(
        amg.uncrop_masks(crop_masks, crop, 18 + 4, 23 + 3), ref["uncropped_masks"]
    )


def test_amg_remove_small_regions_on_one_mask() -> None:
    """remove_small_regions takes and returns one numpy mask plus a changed flag (the
    reference's needs OpenCV, which the oracle lacks; the rule is tested in test_amg.py)."""
    mask = np.zeros((12, 12), dtype=bool)
    mask[2:9, 2:9] = True
    mask[5, 5] = False  # a one-pixel hole
    mask[11, 11] = True  # a one-pixel island
    filled, changed = amg.remove_small_regions(mask, 2, "holes")
    assert changed and filled[5, 5] and filled.dtype == np.bool_
    cleaned, changed = amg.remove_small_regions(filled, 2, "islands")
    assert changed and not cleaned[11, 11] and cleaned[2:9, 2:9].all()
    same, changed = amg.remove_small_regions(cleaned, 2, "islands")
    assert not changed and np.array_equal(same, cleaned)


@pytest.mark.oracle
def test_sam2_transforms_match_reference(oracle: Oracle) -> None:
    """SAM2Transforms: images, coordinates, boxes and post-processed masks as the reference."""
    rng = np.random.default_rng(3)
    inputs = {
        "image": rng.integers(0, 255, size=(50, 70, 3), dtype=np.uint8),
        "coords": rng.uniform(0, 50, size=(2, 3, 2)).astype(np.float32),
        "boxes": np.array([[5, 6, 40, 30], [0, 0, 70, 50]], dtype=np.float32),
        "logits": _blobs(2, 16, 16, seed=4).reshape(1, 2, 16, 16),
    }
    params = {"resolution": 64, "mask_threshold": 0.0, "max_hole_area": 4.0}
    ref = oracle.call("utils:transforms", inputs, **params, max_sprinkle_area=3.0)
    t = SAM2Transforms(64, 0.0, max_hole_area=4.0, max_sprinkle_area=3.0)
    hw = (50, 70)
    coords, boxes = torch.from_numpy(inputs["coords"]), torch.from_numpy(inputs["boxes"])
    np.testing.assert_allclose(t(inputs["image"]).numpy(), ref["image"], atol=1e-5)
    batch = t.forward_batch([inputs["image"], inputs["image"][::-1].copy()])
    np.testing.assert_allclose(batch.numpy(), ref["batch"], atol=1e-5)
    np.testing.assert_allclose(
        t.transform_coords(coords, normalize=True, orig_hw=hw).numpy(), ref["coords_pixels"]
    )
    np.testing.assert_allclose(t.transform_coords(coords / 100.0).numpy(), ref["coords_unit"])
    np.testing.assert_allclose(
        t.transform_boxes(boxes, normalize=True, orig_hw=hw).numpy(), ref["boxes"]
    )
    masks = t.postprocess_masks(torch.from_numpy(inputs["logits"]), hw)
    np.testing.assert_allclose(masks.numpy(), ref["masks"], atol=1e-5)
    with pytest.raises(ValueError, match="needs orig_hw"):
        t.transform_coords(coords, normalize=True)


def test_sam2_base_is_our_model() -> None:
    """SAM2Base names our SAM2Model, so imports and isinstance checks keep working."""
    model = build_sam2("tiny", device="cpu", hydra_overrides_extra=["++model.image_size=256"])
    assert isinstance(model, SAM2Base)
