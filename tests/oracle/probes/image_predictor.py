"""Reference image predictor on a checkpoint: embeddings and masks for a list of prompt cases."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from probes.build import build

from sam2.sam2_image_predictor import SAM2ImagePredictor


def _case_args(case: dict[str, Any], inputs: dict[str, np.ndarray], done: dict) -> dict[str, Any]:
    args: dict[str, Any] = {"multimask_output": case.get("multimask_output", True)}
    for key in ("point_coords", "point_labels", "box", "mask_input"):
        ref = case.get(key)
        if isinstance(ref, str) and ref.startswith("from:"):
            args[key] = done[ref[5:]]  # low-res logits of an earlier case (best mask)
        elif ref is not None:
            args[key] = inputs[ref]
    if "normalize_coords" in case:
        args["normalize_coords"] = case["normalize_coords"]
    if "return_logits" in case:
        args["return_logits"] = case["return_logits"]
    return args


def predict_cases(
    inputs: dict[str, np.ndarray],
    config: str,
    ckpt: str,
    cases: list[dict[str, Any]],
    max_hole_area: float = 0.0,
    max_sprinkle_area: float = 0.0,
    return_features: bool = True,
) -> dict[str, np.ndarray]:
    """set_image(inputs["image"]) then predict for each case; outputs keyed ``<case>.<field>``."""
    model = build(config, ckpt=ckpt)
    predictor = SAM2ImagePredictor(
        model, max_hole_area=max_hole_area, max_sprinkle_area=max_sprinkle_area
    )
    with torch.inference_mode():
        predictor.set_image(inputs["image"])
    out: dict[str, np.ndarray] = {}
    if return_features:
        out["image_embed"] = predictor.get_image_embedding().numpy()
        for i, feat in enumerate(predictor._features["high_res_feats"]):
            out[f"high_res_feats.{i}"] = feat.numpy()
    done: dict[str, np.ndarray] = {}
    for case in cases:
        masks, ious, low_res = predictor.predict(**_case_args(case, inputs, done))
        name = case["name"]
        out[f"{name}.masks"], out[f"{name}.ious"], out[f"{name}.low_res"] = masks, ious, low_res
        best = np.argmax(ious, axis=-1)
        done[name] = low_res[best][None] if low_res.ndim == 3 else low_res
    return out


def predict_batch_cases(
    inputs: dict[str, np.ndarray], config: str, ckpt: str, n_images: int, multimask_output: bool
) -> dict[str, np.ndarray]:
    """set_image_batch on ``image.{i}``, then predict_batch with per-image points/labels/box."""
    predictor = SAM2ImagePredictor(build(config, ckpt=ckpt))
    with torch.inference_mode():
        predictor.set_image_batch([inputs[f"image.{i}"] for i in range(n_images)])
    points = [inputs.get(f"points.{i}") for i in range(n_images)]
    labels = [inputs.get(f"labels.{i}") for i in range(n_images)]
    boxes = [inputs.get(f"box.{i}") for i in range(n_images)]
    masks, ious, low_res = predictor.predict_batch(
        points, labels, box_batch=boxes, multimask_output=multimask_output
    )
    out = {}
    for i in range(n_images):
        out[f"{i}.masks"], out[f"{i}.ious"], out[f"{i}.low_res"] = masks[i], ious[i], low_res[i]
    return out


def encoder_features(
    inputs: dict[str, np.ndarray], config: str, ckpt: str
) -> dict[str, np.ndarray]:
    """forward_image on an already preprocessed (B, 3, S, S) batch."""
    model = build(config, ckpt=ckpt)
    with torch.inference_mode():
        out = model.forward_image(torch.from_numpy(inputs["batch"]))
    result = {"vision_features": out["vision_features"].numpy()}
    for i, (fpn, pos) in enumerate(zip(out["backbone_fpn"], out["vision_pos_enc"])):
        result[f"backbone_fpn.{i}"] = fpn.numpy()
        result[f"vision_pos_enc.{i}"] = pos.numpy()
    return result
