"""SAM 2 as the mask source: the real (tiny, random-weight) model wired through the engine."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from napari_sam2.tracking import (
    AutoMaskProposer,
    PromptSeed,
    SAM2MaskSource,
    ThresholdProposer,
    TrackingParams,
    read_ctc,
    track_cells,
    write_ctc,
)
from napari_sam2.tracking.sources import exclusive_masks
from sam2.synthetic import SyntheticTimelapse


def test_engine_runs_on_sam2(
    tiny_predictor: Any, small_timelapse: SyntheticTimelapse, tmp_path: Any
) -> None:
    """Seeds → SAM 2 → labels on every frame, a lineage that agrees with them, and a CTC
    folder that reads back (random weights: the wiring, not the quality, is under test)."""
    data = small_timelapse
    source = SAM2MaskSource(tiny_predictor, data.image, proposer=ThresholdProposer())
    updates = []
    result = track_cells(
        data.image,
        data.labels[0],
        0,
        source,
        TrackingParams(entry_every=2),
        progress=updates.append,
    )
    assert [u.frame for u in updates] == list(range(4)) and result.last_frame == 3
    np.testing.assert_array_equal(result.labels[0], data.labels[0])
    for track in result.lineage:
        present = np.flatnonzero((result.labels == track.track_id).any(axis=(1, 2)))
        assert present.tolist() == list(range(track.start, track.end + 1))
    assert set(np.unique(result.labels).tolist()) - {0} <= set(result.lineage.tracks)
    followed = {track.track_id for track in result.lineage if track.end == 3}
    assert followed <= set(source.state.obj_ids)  # divided / exited objects were removed
    write_ctc(tmp_path, result.labels, result.lineage, allow_empty_frames=True)
    np.testing.assert_array_equal(read_ctc(tmp_path).labels, result.labels)


def test_objects_come_and_go_between_frames(
    tiny_predictor: Any, small_timelapse: SyntheticTimelapse
) -> None:
    """Removing an object and adding another on a tracked frame, then resuming, tracks
    exactly the current objects (what divisions and entries need)."""
    data = small_timelapse
    source = SAM2MaskSource(tiny_predictor, data.image)
    source.add(0, 1, data.labels[0] == 1)
    source.add(0, 2, data.labels[0] == 2)
    first = source.track(1)
    assert sorted(first) == [1, 2] and first[1].shape == (128, 128) and first[1].dtype == bool
    source.remove(2)
    source.add(1, 7, data.labels[1] == 3)
    second = source.track(2)
    assert sorted(second) == [1, 7]
    assert not (second[1] & second[7]).any()


def test_click_and_box_prompts_make_masks(
    tiny_predictor: Any, small_timelapse: SyntheticTimelapse
) -> None:
    """A click (y, x) or a box becomes a frame-sized mask; the helper object is removed."""
    data = small_timelapse
    source = SAM2MaskSource(tiny_predictor, data.image)
    source.add(0, 1, data.labels[0] == 1)
    ys, xs = np.nonzero(data.labels[0] == 2)
    mask = source.segment(0, PromptSeed(points=np.array([[ys.mean(), xs.mean()]])))
    assert mask.shape == (128, 128) and mask.dtype == bool
    box = source.segment(0, PromptSeed(box=(ys.min(), xs.min(), ys.max(), xs.max())))
    assert box.shape == (128, 128)
    assert source.state.obj_ids == [1]


def test_source_needs_a_single_channel_stack(tiny_predictor: Any) -> None:
    """An RGB or 2D array is refused before SAM 2 opens it."""
    with pytest.raises(ValueError, match=r"\(T, Y, X\) stack of single-channel frames"):
        SAM2MaskSource(tiny_predictor, np.zeros((4, 32, 32, 3), np.uint8))


def test_exclusive_masks_give_each_pixel_to_its_best_object() -> None:
    """Overlapping positive logits go to the higher one; negative everywhere is background."""
    logits = torch.full((3, 1, 4, 4), -5.0)
    logits[0, 0, :, :2] = 2.0
    logits[1, 0, :, 1:] = 1.0
    logits[1, 0, :, 1] = 3.0  # column 1: object 1 wins over object 0
    masks = exclusive_masks(logits, ["a", "b", "c"])
    assert masks["a"][:, 0].all() and not masks["a"][:, 1:].any()
    assert masks["b"][:, 1:].all() and not masks["c"].any()
    with pytest.raises(ValueError, match="2 masks for 3 object ids"):
        exclusive_masks(logits[:2], ["a", "b", "c"])


def test_threshold_proposer_finds_untracked_cells(small_timelapse: SyntheticTimelapse) -> None:
    """Bright regions outside the covered cells are proposed, one per cell."""
    frame, labels = small_timelapse.image[0], small_timelapse.labels[0]
    covered = labels == 1
    proposals = ThresholdProposer()(frame, covered)
    others = [c for c in np.unique(labels)[1:] if c != 1]
    assert len(proposals) == len(others)
    for cell in others:
        overlaps = [(p & (labels == cell)).sum() / (labels == cell).sum() for p in proposals]
        assert max(overlaps) > 0.6
    assert not any((p & covered).any() for p in proposals)


class FakeGenerator:
    """Records what it was shown; returns two records, the better one last."""

    def __init__(self) -> None:
        self.seen: np.ndarray | None = None

    def generate(self, image: np.ndarray) -> list[dict[str, Any]]:
        self.seen = image
        low, high = np.zeros((8, 8), bool), np.zeros((8, 8), bool)
        low[:2], high[4:] = True, True
        return [
            {"segmentation": low, "predicted_iou": 0.5},
            {"segmentation": high, "predicted_iou": 0.9},
        ]


def test_auto_mask_proposer_shows_8bit_rgb_and_ranks_by_quality() -> None:
    """The generator sees (Y, X, 3) uint8 of the 16-bit frame; best-scored masks come first."""
    generator = FakeGenerator()
    frame = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000
    masks = AutoMaskProposer(generator)(frame, np.zeros((8, 8), bool))
    assert generator.seen is not None and generator.seen.shape == (8, 8, 3)
    assert generator.seen.dtype == np.uint8 and generator.seen.max() == 255
    assert masks[0][4:].all() and masks[1][:2].all()
    with pytest.raises(TypeError, match="no generate"):
        AutoMaskProposer(object())


def test_auto_mask_proposer_runs_sam2s_generator(
    tiny_predictor: Any, small_timelapse: SyntheticTimelapse
) -> None:
    """With sam2's automatic mask generator, proposals are frame-sized bool masks."""
    pytest.importorskip("sam2.automatic_mask_generator")
    proposer = AutoMaskProposer.from_model(
        tiny_predictor.model, points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0
    )
    masks = proposer(small_timelapse.image[0], np.zeros((128, 128), bool))
    assert masks and all(m.shape == (128, 128) and m.dtype == bool for m in masks)
