"""Probes for the SAM heads: prompt encoder and mask decoder calls that need tuples, None, flags.

Weights arrive as ``sd.<key>`` arrays and are loaded strictly, as in ``probes/modules.py``.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from sam2.modeling.sam.mask_decoder import MaskDecoder
from sam2.modeling.sam.prompt_encoder import PromptEncoder
from sam2.modeling.sam.transformer import TwoWayTransformer

M = TypeVar("M", bound=nn.Module)


def _load(module: M, inputs: dict[str, np.ndarray]) -> M:
    state = {k[3:]: torch.from_numpy(v) for k, v in inputs.items() if k.startswith("sd.")}
    module.load_state_dict(state, strict=True)
    return module.eval()


def _tensor(inputs: dict[str, np.ndarray], name: str) -> torch.Tensor | None:
    return torch.from_numpy(inputs[name]) if name in inputs else None


def _decoder(decoder_kwargs: dict[str, Any], transformer_kwargs: dict[str, Any]) -> MaskDecoder:
    return MaskDecoder(transformer=TwoWayTransformer(**transformer_kwargs), **decoder_kwargs)


def prompt_encoder(inputs: dict[str, np.ndarray], kwargs: dict[str, Any]) -> dict[str, Any]:
    """``forward(points, boxes, masks)`` with whichever of coords/labels/boxes/masks are given."""
    encoder = _load(PromptEncoder(**kwargs), inputs)
    coords, labels = _tensor(inputs, "coords"), _tensor(inputs, "labels")
    points = (coords, labels) if coords is not None else None
    with torch.no_grad():
        sparse, dense = encoder(points, _tensor(inputs, "boxes"), _tensor(inputs, "masks"))
        dense_pe = encoder.get_dense_pe()
    return {
        "sparse": sparse.detach().numpy(),
        "dense": dense.detach().numpy(),
        "dense_pe": dense_pe.detach().numpy(),
    }


def mask_decoder(
    inputs: dict[str, np.ndarray],
    decoder_kwargs: dict[str, Any],
    transformer_kwargs: dict[str, Any],
    multimask_output: bool,
    repeat_image: bool,
) -> dict[str, Any]:
    """``forward`` of a decoder built around a ``TwoWayTransformer``; also token-0 stability."""
    decoder = _load(_decoder(decoder_kwargs, transformer_kwargs), inputs)
    high_res = None
    if "feat_s0" in inputs:
        high_res = [torch.from_numpy(inputs["feat_s0"]), torch.from_numpy(inputs["feat_s1"])]
    args = (
        torch.from_numpy(inputs["image_embeddings"]),
        torch.from_numpy(inputs["image_pe"]),
        torch.from_numpy(inputs["sparse"]),
        torch.from_numpy(inputs["dense"]),
    )
    with torch.no_grad():
        masks, iou, tokens, obj = decoder(
            *args,
            multimask_output=multimask_output,
            repeat_image=repeat_image,
            high_res_features=high_res,
        )
        all_masks = decoder.predict_masks(*args, repeat_image, high_res)[0]
        stability = decoder._get_stability_scores(all_masks[:, 0])
    return {
        "masks": masks.numpy(),
        "iou": iou.numpy(),
        "tokens": tokens.numpy(),
        "obj": obj.numpy(),
        "stability": stability.numpy(),
    }


def state_dict_shapes(
    inputs: dict[str, np.ndarray],
    encoder_kwargs: dict[str, Any],
    decoder_kwargs: dict[str, Any],
    transformer_kwargs: dict[str, Any],
) -> dict[str, Any]:
    """Key -> shape of a freshly built prompt encoder and mask decoder, as JSON."""
    shapes = {}
    for prefix, module in (
        ("sam_prompt_encoder.", PromptEncoder(**encoder_kwargs)),
        ("sam_mask_decoder.", _decoder(decoder_kwargs, transformer_kwargs)),
    ):
        shapes.update({prefix + k: list(v.shape) for k, v in module.state_dict().items()})
    return {"shapes": np.array(json.dumps(shapes))}
