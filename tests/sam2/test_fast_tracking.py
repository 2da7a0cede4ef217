"""Fast tracking (``TrackingOptions.window``): windows around each object's last mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam2.build_sam import build_sam2_video_predictor
from sam2.sam2_video_predictor import SAM2VideoPredictor
from sam2.synthetic import make_timelapse
from sam2.video.options import TrackingOptions, WindowOptions
from sam2.video.window import ObjectMotion, Window, choose_window, mask_box

GRID = 8  # tokens per side at input 128


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_sam2_video_predictor(
        "tiny", device="cpu", hydra_overrides_extra=["++model.image_size=128"]
    ).model


def _track(model: torch.nn.Module, stack: np.ndarray, window: WindowOptions | None) -> list:
    options = TrackingOptions.postprocessed(window=window)
    predictor = SAM2VideoPredictor(model, options)  # type: ignore[arg-type]
    state = predictor.init_state(stack)
    for obj_id, (x, y) in enumerate([(20, 16), (60, 40), (40, 50)], start=1):
        predictor.add_new_points_or_box(state, 0, obj_id, points=[[x, y]], labels=[1])
    return [m.clone() for _, _, m in predictor.propagate_in_video(state)]


def test_a_window_as_large_as_the_frame_is_exact_sam2(model: torch.nn.Module) -> None:
    """Every crop, paste and position code lines up: a whole-frame window gives the masks of
    full-frame tracking (the memory encoder, decoder and attention all see the same tokens)."""
    stack = make_timelapse(n_frames=5, shape=(64, 80), n_cells=4, division_frames=(), seed=5).image
    exact = _track(model, stack, None)
    whole = _track(model, stack, WindowOptions(min_side=GRID, max_fraction=1.0))
    assert len(exact) == len(whole) == 5
    for a, b in zip(exact, whole, strict=True):
        torch.testing.assert_close(b, a, atol=1e-3, rtol=1e-4)


def test_small_windows_track_and_keep_memories_full_frame(
    model: torch.nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mask prompt on frame 0: frame 1 is tracked in a 4-token window (the mask outside it
    is empty), memories stay full-frame, and later frames go on from there."""
    import sam2.video.engine as engine

    windows: list[Window] = []
    decoded: list[torch.Tensor] = []
    original = engine.windowed_step

    def recording(*args: object, **kwargs: object) -> object:
        windows.extend(args[4])  # type: ignore[call-overload]
        result = original(*args, **kwargs)  # type: ignore[arg-type]
        decoded.append(result[0].masks)
        return result

    monkeypatch.setattr(engine, "windowed_step", recording)
    stack = make_timelapse(n_frames=5, shape=(64, 80), n_cells=4, division_frames=(), seed=5).image
    window = WindowOptions(margin=0.5, min_side=4, max_fraction=1.0)
    predictor = SAM2VideoPredictor(model, TrackingOptions.postprocessed(window=window))  # type: ignore[arg-type]
    state = predictor.init_state(stack)
    cell = np.zeros((64, 80), dtype=bool)
    cell[20:30, 30:40] = True  # 10 px of 64 in a 128 input: about 1.25 tokens
    predictor.add_new_mask(state, 0, 1, cell)
    results = list(predictor.propagate_in_video(state))
    assert [f for f, _, _ in results] == list(range(5))
    assert windows and windows[0].side == 4  # frame 1: a 4-token window around the mask
    out = state.objects[1].bank.get(4)
    assert out is not None and out.maskmem_features is not None
    assert out.maskmem_features.shape[-2:] == (GRID, GRID)  # memories stay full-frame
    w = windows[0]
    outside = torch.ones(4 * GRID, 4 * GRID, dtype=torch.bool)
    outside[4 * w.y : 4 * (w.y + w.side), 4 * w.x : 4 * (w.x + w.side)] = False
    assert decoded[0].shape == (1, 1, 4 * GRID, 4 * GRID)  # pasted into the full frame
    assert not (decoded[0][0, 0][outside] > 0).any()  # nothing decoded outside the window


def test_window_follows_the_box_its_motion_and_the_frame_edge() -> None:
    opts = WindowOptions(margin=1.0, min_side=4, max_fraction=1.0)
    motion = ObjectMotion()
    assert choose_window((10, 10, 12, 12), motion, 64, opts) == Window(7, 7, 8)  # 2 → 6 → 8
    motion.update((10, 10, 12, 12))
    motion.update((10, 14, 12, 16))  # moved 4 tokens right
    assert motion.velocity == (0.0, 4.0)
    w = choose_window((10, 14, 12, 16), motion, 64, opts)
    assert w == Window(3, 11, 16)  # side 2·3 + 2·4 → 16, centred 4 tokens further right
    assert choose_window((0, 60, 2, 64), ObjectMotion(), 64, opts) == Window(0, 52, 12)  # clamped
    assert choose_window(None, ObjectMotion(), 64, opts) is None  # lost: search the full frame
    assert choose_window((0, 0, 40, 40), ObjectMotion(), 64, WindowOptions()) is None  # too big


def test_mask_box_is_in_tokens() -> None:
    low = torch.full((1, 1, 32, 32), -5.0)
    assert mask_box(low) is None
    low[0, 0, 5:9, 12:13] = 3.0
    assert mask_box(low) == (1, 3, 3, 4)


def test_bad_window_options_are_explained() -> None:
    with pytest.raises(ValueError, match="max_fraction"):
        WindowOptions(max_fraction=0)
    with pytest.raises(ValueError, match="min_side"):
        WindowOptions(min_side=0)
