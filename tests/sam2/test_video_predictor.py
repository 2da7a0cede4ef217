"""SAM2VideoPredictor: the reference's tracking on identical weights, lazily and in flat memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from sam2.build_sam import build_sam2_video_predictor
from sam2.sam2_video_predictor import SAM2VideoPredictor
from sam2.synthetic import make_timelapse
from tests.conftest import ReferenceCheckpoints
from tests.oracle.harness import Oracle

TINY = "configs/sam2.1/sam2.1_hiera_t.yaml"
SMALL = "configs/sam2.1/sam2.1_hiera_s.yaml"
N_FRAMES = 30
H, W = 96, 128


@pytest.fixture(scope="module")
def jpeg_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 JPEG frames of moving, dividing synthetic cells (uint8 RGB)."""
    folder = tmp_path_factory.mktemp("video")
    data = make_timelapse(n_frames=N_FRAMES, shape=(H, W), n_cells=4, division_frames=(12,), seed=4)
    for t, frame in enumerate(data.image):
        lo, hi = np.percentile(frame, [1, 99.5])
        gray = np.clip((frame - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)
        Image.fromarray(np.stack([gray] * 3, axis=-1)).save(folder / f"{t:05d}.jpg", quality=95)
    return folder


def prompts() -> dict[str, np.ndarray]:
    return {
        "p1": np.array([[40.0, 30.0]], dtype=np.float32),
        "l1": np.array([1], dtype=np.int32),
        "p2": np.array([[90.0, 60.0], [20.0, 80.0]], dtype=np.float32),
        "l2": np.array([1, 0], dtype=np.int32),
        "box": np.array([60.0, 20.0, 110.0, 70.0], dtype=np.float32),
        "fix": np.array([[50.0, 40.0]], dtype=np.float32),
        "l0": np.array([0], dtype=np.int32),
        "mask": _disk((H, W), (70, 30), 12),
    }


def _disk(shape: tuple[int, int], center: tuple[int, int], radius: int) -> np.ndarray:
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= radius**2


def run_ours(
    predictor: SAM2VideoPredictor,
    video: Path,
    ops: list[dict[str, Any]],
    inputs: dict[str, np.ndarray],
    **init: Any,
) -> dict[str, np.ndarray]:
    """The probe's script, run on our predictor (same keys as the reference's output)."""
    state = predictor.init_state(str(video), **init)
    out: dict[str, np.ndarray] = {}
    for i, op in enumerate(ops):
        kind = op["op"]
        if kind == "points":
            frame, ids, masks = predictor.add_new_points_or_box(
                state,
                op["frame"],
                op["obj"],
                points=inputs.get(op.get("points", "")),
                labels=inputs.get(op.get("labels", "")),
                clear_old_points=op.get("clear_old_points", True),
                box=inputs.get(op.get("box", "")),
            )
        elif kind == "mask":
            frame, ids, masks = predictor.add_new_mask(
                state, op["frame"], op["obj"], inputs[op["mask"]]
            )
        elif kind == "propagate":
            frames = []
            for frame, ids, masks in predictor.propagate_in_video(
                state,
                start_frame_idx=op.get("start"),
                max_frame_num_to_track=op.get("max"),
                reverse=op.get("reverse", False),
            ):
                frames.append(frame)
                out[f"{i}.{frame}.masks"] = masks.numpy()
                out[f"{i}.{frame}.scores"] = np.array(
                    [float(o.bank.get(frame).object_score_logits) for o in state.objects.values()],  # type: ignore[union-attr]
                    dtype=np.float32,
                )
                out[f"{i}.{frame}.ids"] = np.array(ids)
            out[f"{i}.frames"] = np.array(frames, dtype=np.int64)
            continue
        elif kind == "remove":
            ids, updated = predictor.remove_object(state, op["obj"])
            out[f"{i}.ids"] = np.array(ids)
            for frame, masks in updated:
                out[f"{i}.{frame}.masks"] = masks.numpy()
            continue
        elif kind == "clear":
            result = predictor.clear_all_prompts_in_frame(state, op["frame"], op["obj"])
            assert result is not None
            frame, ids, masks = result
        else:
            raise ValueError(kind)
        out[f"{i}.masks"] = masks.numpy()
        out[f"{i}.ids"] = np.array(ids)
        out[f"{i}.frame"] = np.array(frame)
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def assert_same_tracking(ours: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> None:
    """Same keys; per frame and object mask IoU ≥ 0.999, logits and scores within 1e-3."""
    assert sorted(ours) == sorted(ref)
    for key, expected in ref.items():
        got = ours[key]
        if key.endswith(".masks"):
            assert got.shape == expected.shape, key
            for o in range(expected.shape[0]):
                assert _iou(got[o, 0] > 0, expected[o, 0] > 0) >= 0.999, f"{key} object {o}"
            # logits are compared where they are not the -1024 "absent" fill
            scale = max(1.0, float(np.abs(expected[expected > -1000]).max(initial=1.0)))
            np.testing.assert_allclose(got, expected, atol=1e-3 * scale, rtol=1e-3, err_msg=key)
        elif key.endswith(".scores"):
            np.testing.assert_allclose(
                got, expected, atol=1e-3 * max(1.0, float(np.nanmax(np.abs(expected)))), err_msg=key
            )
        else:
            np.testing.assert_array_equal(got, expected, err_msg=key)


def _compare(
    oracle: Oracle,
    ckpt: Path,
    video: Path,
    ops: list[dict[str, Any]],
    config: str = TINY,
    image_size: int = 256,
    options: dict[str, Any] | None = None,
    **init: Any,
) -> dict[str, np.ndarray]:
    inputs = prompts()
    ref = oracle.call(
        "video:run_script",
        inputs,
        config=config,
        ckpt=str(ckpt),
        video=str(video),
        ops=ops,
        image_size=image_size,
        options=options or {},
    )
    overrides = [
        f"++model.{k}={v}" for k, v in {"image_size": image_size, **(options or {})}.items()
    ]
    predictor = build_sam2_video_predictor(
        config, ckpt, device="cpu", hydra_overrides_extra=overrides
    )
    ours = run_ours(predictor, video, ops, inputs, **init)
    assert_same_tracking(ours, ref)
    return ours


ONE_OBJECT = [
    {"op": "points", "frame": 0, "obj": 1, "points": "p1", "labels": "l1"},
    {"op": "propagate"},
]
THREE_OBJECTS = [
    {"op": "points", "frame": 0, "obj": 1, "points": "p1", "labels": "l1"},
    {"op": "points", "frame": 0, "obj": 2, "box": "box"},
    {"op": "propagate", "max": 10},
    {"op": "mask", "frame": 8, "obj": 3, "mask": "mask"},
    {"op": "points", "frame": 8, "obj": 2, "points": "p2", "labels": "l2", "box": "box"},
    {"op": "propagate", "start": 8},
    {"op": "propagate", "start": 20, "reverse": True, "max": 12},
]
CORRECTION = [
    {"op": "points", "frame": 0, "obj": 1, "points": "p1", "labels": "l1"},
    {"op": "propagate"},
    {
        "op": "points",
        "frame": 15,
        "obj": 1,
        "points": "fix",
        "labels": "l0",
        "clear_old_points": False,
    },
    {"op": "propagate", "start": 10},
    {"op": "points", "frame": 29, "obj": 2, "points": "p2", "labels": "l2"},
    {"op": "propagate", "reverse": True, "start": 29},
    {"op": "clear", "frame": 15, "obj": 1},
    {"op": "remove", "obj": 1},
    {"op": "propagate", "start": 29, "reverse": True, "max": 5},
]

pytestmark = pytest.mark.oracle


def test_one_object_forward(
    oracle: Oracle, reference_checkpoints: ReferenceCheckpoints, jpeg_video: Path
) -> None:
    """One object clicked on frame 0 and tracked through 30 frames, in streaming memory."""
    _compare(oracle, reference_checkpoints.get(TINY), jpeg_video, ONE_OBJECT)


def test_three_objects_points_box_mask(
    oracle: Oracle, reference_checkpoints: ReferenceCheckpoints, jpeg_video: Path
) -> None:
    """Points, box and mask objects (one added on a later frame), forward and reverse."""
    _compare(oracle, reference_checkpoints.get(TINY), jpeg_video, THREE_OBJECTS, keep_history=True)


def test_correction_reprop_clear_remove(
    oracle: Oracle, reference_checkpoints: ReferenceCheckpoints, jpeg_video: Path
) -> None:
    """A correction click mid-video, re-propagation, reverse, clear and remove_object."""
    _compare(oracle, reference_checkpoints.get(TINY), jpeg_video, CORRECTION, keep_history=True)


def test_keep_corrections_option(
    oracle: Oracle, reference_checkpoints: ReferenceCheckpoints, jpeg_video: Path
) -> None:
    """add_all_frames_to_correct_as_cond (the plugin's choice) also matches the reference."""
    _compare(
        oracle,
        reference_checkpoints.get(TINY),
        jpeg_video,
        CORRECTION[:4],
        options={"add_all_frames_to_correct_as_cond": True},
        keep_history=True,
    )


def test_small_model_at_512(
    oracle: Oracle, reference_checkpoints: ReferenceCheckpoints, jpeg_video: Path
) -> None:
    """The small model at input size 512, two objects, max_frame_num_to_track."""
    ops = [
        {"op": "points", "frame": 3, "obj": 1, "points": "p1", "labels": "l1"},
        {"op": "points", "frame": 3, "obj": 5, "box": "box"},
        {"op": "propagate", "max": 8},
        {"op": "propagate", "reverse": True},
    ]
    _compare(
        oracle, reference_checkpoints.get(SMALL), jpeg_video, ops, config=SMALL, image_size=512
    )


@pytest.mark.slow
def test_tiny_at_full_resolution(
    oracle: Oracle, reference_checkpoints: ReferenceCheckpoints, jpeg_video: Path
) -> None:
    """The released input size 1024 over 8 frames."""
    ops = [
        {"op": "points", "frame": 0, "obj": 1, "points": "p1", "labels": "l1"},
        {"op": "propagate", "max": 7},
    ]
    _compare(oracle, reference_checkpoints.get(TINY), jpeg_video, ops, image_size=1024)
