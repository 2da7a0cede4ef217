"""One SAM 2 tracking step on one frame, for one object or a batch of objects: memory → SAM
heads → new memory."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sam2.modeling.position_encoding import get_1d_sine_pe
from sam2.modeling.sam2_model import HeadsOutput, ImageFeatures, SAM2Model
from sam2.postprocess import fill_holes
from sam2.video.memory import FrameOutput, MemoryContext, MemoryRules


def memory_rules(model: SAM2Model) -> MemoryRules:
    cfg = model.config
    return MemoryRules(
        num_maskmem=cfg.num_maskmem,
        max_cond_frames_in_attn=cfg.max_cond_frames_in_attn,
        memory_temporal_stride=cfg.memory_temporal_stride_for_eval,
        max_obj_ptrs_in_encoder=cfg.max_obj_ptrs_in_encoder,
        only_obj_ptrs_in_the_past=cfg.only_obj_ptrs_in_the_past_for_eval,
        use_signed_tpos_enc_to_obj_ptrs=cfg.use_signed_tpos_enc_to_obj_ptrs,
    )


def _flatten(x: Tensor) -> Tensor:  # (B, C, H, W) -> (HW, B, C)
    return x.flatten(2).permute(2, 0, 1)


def context_batch(ctx: MemoryContext) -> int:
    """How many objects a (possibly stacked) memory context holds."""
    if ctx.spatial:
        return int(ctx.spatial[0][1].shape[0])
    return int(ctx.pointers[0][1].shape[0]) if ctx.pointers else 1


def condition_on_memory(
    model: SAM2Model,
    feats: ImageFeatures,
    ctx: MemoryContext | None,
    maskmem_pos_enc: Tensor | None,
) -> Tensor:
    """(B, C, H, W) frame features fused with the objects' memories.

    ``ctx`` None marks an initial conditioning frame: no memory yet, so the learned
    ``no_mem_embed`` is added instead of running memory attention. A context stacked for B
    objects (:func:`~sam2.video.memory.stack_contexts`) conditions one frame's (1, C, H, W)
    features B ways at once; memory attention then runs the frame's own first self-attention
    once for all of them.
    """
    feat, pos = feats.vision_features, feats.vision_pos_enc[-1]
    b, c, h, w = feat.shape
    if ctx is None:
        return feat + model.no_mem_embed.reshape(1, c, 1, 1)
    if maskmem_pos_enc is None:
        raise RuntimeError("memory position encoding missing: no memory was encoded yet")
    n = max(b, context_batch(ctx))
    dtype = feat.dtype
    memory, memory_pos = [], []
    mem_pos = _flatten(maskmem_pos_enc).to(dtype)  # (hw, 1, 64)
    for t_pos, features in ctx.spatial:
        memory.append(_flatten(features.to(feat.device, dtype)).expand(-1, n, -1))
        memory_pos.append(
            (mem_pos + model.maskmem_tpos_enc[model.num_maskmem - t_pos - 1]).expand(-1, n, -1)
        )
    num_ptr_tokens = 0
    if ctx.pointers:
        distances = torch.tensor([d for d, _ in ctx.pointers], device=feat.device)
        ptrs = torch.stack([p.to(feat.device, dtype) for _, p in ctx.pointers])  # (P, 1|B, C)
        ptrs = ptrs.expand(-1, n, -1)
        m = model.mem_dim
        if model.config.add_tpos_enc_to_obj_ptrs:
            tpos_dim = c if model.config.proj_tpos_enc_in_obj_ptrs else m
            ptr_pos = get_1d_sine_pe(distances / ctx.max_ptr_distance, dim=tpos_dim)
            ptr_pos = model.obj_ptr_tpos_proj(ptr_pos.to(dtype)).unsqueeze(1).expand(-1, n, m)
        else:
            ptr_pos = ptrs.new_zeros(len(ctx.pointers), n, m)
        if m < c:  # each C-dim pointer becomes C/m tokens of m dims
            ptrs = ptrs.reshape(-1, n, c // m, m).permute(0, 2, 1, 3).flatten(0, 1)
            ptr_pos = ptr_pos.repeat_interleave(c // m, dim=0)
        memory.append(ptrs)
        memory_pos.append(ptr_pos)
        num_ptr_tokens = ptrs.shape[0]
    fused = model.memory_attention(
        curr=_flatten(feat),  # (HW, b, C): b is 1 or n
        curr_pos=_flatten(pos),
        memory=torch.cat(memory, dim=0),  # (M, n, 64)
        memory_pos=torch.cat(memory_pos, dim=0),
        num_obj_ptr_tokens=num_ptr_tokens,
    )  # (HW, n, C)
    return fused.permute(1, 2, 0).reshape(n, c, h, w)


@dataclass
class StepResult:
    output: FrameOutput  # what the memory bank keeps
    masks: Tensor  # (B, 1, h, w) low-res logits to show (hole-filled)
    maskmem_pos_enc: Tensor | None  # (1, 64, h', w') when a memory was encoded


def use_multimask(model: SAM2Model, is_init_cond_frame: bool, num_points: int) -> bool:
    """Several candidate masks for ambiguous prompts (0 or 1 point), as trained."""
    cfg = model.config
    return (
        cfg.multimask_output_in_sam
        and (is_init_cond_frame or cfg.multimask_output_for_tracking)
        and cfg.multimask_min_pt_num <= num_points <= cfg.multimask_max_pt_num
    )


def track_step(
    model: SAM2Model,
    feats: ImageFeatures,
    ctx: MemoryContext | None,
    maskmem_pos_enc: Tensor | None,
    *,
    point_coords: Tensor | None = None,
    point_labels: Tensor | None = None,
    mask_inputs: Tensor | None = None,
    prev_mask_logits: Tensor | None = None,
    run_mem_encoder: bool = True,
    fill_hole_area: int = 0,
    binarize_mask_from_pts: bool = False,
) -> StepResult:
    """Segment objects on one frame and optionally encode their memories.

    One object (batch 1) when prompted; B objects at once when ``ctx`` is stacked for B
    (tracked frames carry no prompts). Points are (1, P, 2) model-input pixels with (1, P)
    labels; ``mask_inputs`` a (1, 1, S, S)
    binary mask used directly as the prediction; ``prev_mask_logits`` (1, 1, h, w) a previous
    prediction refined by new clicks. ``binarize_mask_from_pts``: a mask decoded from clicks is
    thresholded (not squashed) before memory encoding.
    """
    raw = feats.vision_features
    high_res = feats.high_res_features
    heads: HeadsOutput
    if mask_inputs is not None and model.config.use_mask_input_as_output_without_sam:
        heads = model.mask_as_output(raw, high_res, mask_inputs)
    else:
        pix = condition_on_memory(model, feats, ctx, maskmem_pos_enc)
        n_points = 0 if point_labels is None else int(point_labels.shape[1])
        heads = model.decode_masks(
            pix,
            point_coords=point_coords,
            point_labels=point_labels,
            mask_inputs=prev_mask_logits if prev_mask_logits is not None else mask_inputs,
            high_res_features=high_res,
            multimask_output=use_multimask(model, ctx is None, n_points),
        )
    features = pos_enc = None
    from_points = point_coords is not None
    if run_mem_encoder and model.num_maskmem > 0:
        features, pos_enc = model.encode_memory(
            raw,
            heads.high_res_masks,
            heads.object_score_logits,
            binarize=binarize_mask_from_pts and from_points,
        )
        features = features.to(torch.bfloat16)  # stored as the released predictor stores it
    masks = heads.low_res_masks
    if fill_hole_area > 0:
        masks = fill_holes(masks, fill_hole_area, fill=0.1)
    output = FrameOutput(
        pred_masks=masks,
        obj_ptr=heads.obj_ptr,
        object_score_logits=heads.object_score_logits,
        maskmem_features=features,
        is_mask_from_pts=from_points,
    )
    return StepResult(output=output, masks=masks, maskmem_pos_enc=pos_enc)


def encode_output_memory(
    model: SAM2Model, feats: ImageFeatures, output: FrameOutput, *, binarize: bool
) -> tuple[Tensor, Tensor]:
    """Memory of a prompted frame from its stored (hole-filled) low-res masks.

    Prompted frames are decoded without memory encoding (clicks may follow); once tracking
    starts their masks are upsampled and encoded, as masks from points (thresholded first
    when ``binarize``).
    """
    if output.pred_masks is None:
        raise RuntimeError("the frame's masks were dropped; cannot encode its memory")
    size = model.image_size
    high_res = torch.nn.functional.interpolate(
        output.pred_masks.to(feats.vision_features.device),
        size=(size, size),
        mode="bilinear",
        align_corners=False,
    )
    features, pos = model.encode_memory(
        feats.vision_features, high_res, output.object_score_logits, binarize=binarize
    )
    return features.to(torch.bfloat16), pos
