"""The embedded demo model: loads offline by id exactly as the hub models, and segments cells.

Quality is scored on synthetic stacks whose seeds the training script never used (training
1000-1059, validation 1900-1903), by one click at each cell's centre, against the same
architecture with random weights.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from sam2.build_sam import build_model, build_sam2_hf
from sam2.configs import DEMO_CELLS
from sam2.hub import DEMO_MODEL_ID, download_checkpoint, embedded_model_path
from sam2.sam2_image_predictor import SAM2ImagePredictor
from sam2.sam2_video_predictor import SAM2VideoPredictor
from sam2.synthetic_tracking import make_tracking_timelapse


def centre_click(mask: np.ndarray) -> np.ndarray:
    depth = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(depth)), mask.shape)
    return np.array([[x, y]], dtype=np.float32)


def click_ious(predictor: SAM2ImagePredictor, seed: int) -> list[float]:
    data = make_tracking_timelapse(seed=seed, n_frames=12)
    scores = []
    for t in (0, 11):
        predictor.set_image(data.image[t])
        for cell in np.unique(data.labels[t])[1:]:
            gt = data.labels[t] == cell
            if gt.sum() < 30:
                continue
            masks, ious, _ = predictor.predict(
                point_coords=centre_click(gt), point_labels=np.array([1])
            )
            pred = masks[int(np.argmax(ious))] > 0
            scores.append(float((pred & gt).sum() / (pred | gt).sum()))
    return scores


def test_demo_model_loads_offline_like_a_hub_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """By id through from_pretrained / build_sam2_hf with the hub offline; a few MB of
    safetensors whose keys are exactly the architecture's."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config, path = download_checkpoint(DEMO_MODEL_ID)
    assert config == "demo-cells" and path == str(embedded_model_path(DEMO_MODEL_ID))
    assert embedded_model_path(DEMO_MODEL_ID).stat().st_size < 10 * 2**20
    model = build_sam2_hf(DEMO_MODEL_ID, device="cpu")
    # the image builder turns on dynamic multimask (as the reference does); all else is the config
    assert model.config.replace(dynamic_multimask_via_stability=False) == DEMO_CELLS.replace(
        dynamic_multimask_via_stability=False
    )
    video = SAM2VideoPredictor.from_pretrained(DEMO_MODEL_ID, device="cpu")
    for key, value in video.model.state_dict().items():
        torch.testing.assert_close(value, model.state_dict()[key], atol=0, rtol=0)


def test_demo_model_segments_held_out_cells_from_one_click() -> None:
    """Mean one-click IoU on held-out synthetic cells is high, far above random weights."""
    trained = click_ious(SAM2ImagePredictor.from_pretrained(DEMO_MODEL_ID, device="cpu"), 7001)
    torch.manual_seed(0)
    random = click_ious(SAM2ImagePredictor(build_model(DEMO_CELLS)), 7001)
    assert len(trained) >= 8
    # measured: 0.906 on this seed (0.906-0.927 on seeds 7001-7003)
    assert np.mean(trained) >= 0.8, trained
    assert np.mean(trained) > np.mean(random) + 0.3


def propagation_iou(predictor: SAM2VideoPredictor, seed: int) -> float:
    """Mean IoU of 10 cells clicked once on frame 0, over 20 frames of a held-out time-lapse."""
    data = make_tracking_timelapse(
        seed=seed,
        n_frames=20,
        shape=(256, 256),
        n_cells=10,
        n_divisions=0,
        n_entering=0,
        n_leaving=0,
    )
    state = predictor.init_state(data.image)
    for cell in np.unique(data.labels[0])[1:]:
        points = centre_click(data.labels[0] == cell)
        predictor.add_new_points_or_box(state, 0, int(cell), points=points, labels=np.array([1]))
    scores = []
    for frame, obj_ids, logits in predictor.propagate_in_video(state):
        for k, obj in enumerate(obj_ids):
            gt = data.labels[frame] == obj
            if gt.any():
                pred = (logits[k, 0] > 0).numpy()
                scores.append(float((pred & gt).sum() / (pred | gt).sum()))
    return float(np.mean(scores))


def test_demo_model_tracks_held_out_cells_through_the_memory() -> None:
    """One click per cell on frame 0, then SAM 2's memory alone follows every cell: the
    per-frame IoU stays high (each object its own cell, not one mask for all)."""
    trained = propagation_iou(SAM2VideoPredictor.from_pretrained(DEMO_MODEL_ID, device="cpu"), 7002)
    torch.manual_seed(0)
    random = propagation_iou(SAM2VideoPredictor(build_model(DEMO_CELLS)), 7002)
    # measured: 0.952 on this seed (0.906-0.952 on seeds 7002-7004), random weights 0.000
    assert trained >= 0.85
    assert trained > random + 0.5
