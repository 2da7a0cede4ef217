"""Training forward passes: single images and video clips through SAM 2's steps.

Both return the list of every prediction step (initial prompt, each corrective click, each
tracked frame) with its target, which :func:`sam2.training.losses.step_loss` sums over, as
the release's ``MultiStepMultiMasksAndIous`` does. A batch holds N objects; the images are
encoded once and each object picks its image's features.

Shapes: I images (3, S, S); N objects; T frames; masks and targets (·, 1, S, S).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from sam2.modeling.sam2_model import HeadsOutput, ImageFeatures, SAM2Model
from sam2.training.prompts import PromptOptions, correction_points, initial_prompt
from sam2.video.memory import FrameOutput, MemoryBank, MemoryRules
from sam2.video.tracker import condition_on_memory, memory_rules, use_multimask


@dataclass
class StepPrediction:
    """One prediction step for N objects and what it should have been."""

    masks: Tensor  # (N, M, S, S) logits
    ious: Tensor  # (N, M) predicted IoUs
    object_score_logits: Tensor  # (N, 1)
    targets: Tensor  # (N, 1, S, S) bool
    frame: int = 0


def _decode(
    model: SAM2Model,
    pix: Tensor,
    feats: ImageFeatures,
    points: tuple[Tensor, Tensor] | None,
    prev_low_res: Tensor | None,
    is_init_cond_frame: bool,
) -> HeadsOutput:
    n_points = 0 if points is None else int(points[1].shape[1])
    return model.decode_masks(
        pix,
        point_coords=None if points is None else points[0],
        point_labels=None if points is None else points[1],
        mask_inputs=prev_low_res,
        high_res_features=feats.high_res_features,
        multimask_output=use_multimask(model, is_init_cond_frame, n_points),
    )


def _record(heads: HeadsOutput, targets: Tensor, frame: int) -> StepPrediction:
    return StepPrediction(
        heads.high_res_multimasks, heads.ious, heads.object_score_logits, targets, frame
    )


def _correct(
    model: SAM2Model,
    pix: Tensor,
    feats: ImageFeatures,
    heads: HeadsOutput,
    points: tuple[Tensor, Tensor] | None,
    targets: Tensor,
    frame: int,
    is_init_cond_frame: bool,
    generator: torch.Generator,
    options: PromptOptions,
    out: list[StepPrediction],
) -> HeadsOutput:
    """Iterative corrective clicks: each from the current error, previous logits fed back."""
    for _ in range(options.num_correction_points):
        pred = heads.high_res_masks.detach() > 0
        coords, labels = correction_points(
            targets, pred, generator, options.prob_correction_from_gt
        )
        if points is not None:
            coords = torch.cat([points[0], coords], dim=1)
            labels = torch.cat([points[1], labels], dim=1)
        points = (coords, labels)
        heads = _decode(model, pix, feats, points, heads.low_res_masks.detach(), is_init_cond_frame)
        out.append(_record(heads, targets, frame))
    return heads


def image_forward(
    model: SAM2Model,
    images: Tensor,
    targets: Tensor,
    image_index: Tensor,
    generator: torch.Generator,
    options: PromptOptions,
) -> list[StepPrediction]:
    """Images as one-frame videos with point input forced (a click or a box), then corrections.

    ``images`` (I, 3, S, S) normalised, ``targets`` (N, 1, S, S), ``image_index`` (N,) the
    image of each object.
    """
    feats = model.encode_image(images).select(image_index)
    pix = condition_on_memory(model, feats, None, None)  # no memory: + no_mem_embed
    _, points = initial_prompt(targets, generator, options, force_points=True)
    heads = _decode(model, pix, feats, points, None, True)
    out = [_record(heads, targets, 0)]
    _correct(model, pix, feats, heads, points, targets, 0, True, generator, options, out)
    return out


def _choose_frames(
    num_frames: int, generator: torch.Generator, options: PromptOptions, use_points: bool
) -> tuple[list[int], list[int]]:
    """Initial conditioning frames (frame 0 first) and the frames that get corrective clicks."""

    def draw(high: int) -> int:  # uniform in 1..high
        return int(torch.randint(1, max(high, 1) + 1, (1,), generator=generator))

    n_cond = min(draw(options.num_init_cond_frames), num_frames)
    others = (torch.randperm(num_frames - 1, generator=generator) + 1).tolist()
    cond = [0, *sorted(others[: n_cond - 1])]
    if not use_points:
        return cond, []
    n_correct = max(draw(options.num_frames_to_correct), n_cond)
    rest = [t for t in others if t not in cond]
    return cond, cond + sorted(rest[: max(n_correct - n_cond, 0)])


def video_forward(
    model: SAM2Model,
    images: Tensor,
    targets: Tensor,
    clip_index: Tensor,
    generator: torch.Generator,
    options: PromptOptions,
) -> list[StepPrediction]:
    """Clips tracked frame by frame through the memory path, with simulated prompts.

    ``images`` (C·T, 3, S, S): C clips of T frames, frame-major within a clip; ``targets``
    (T, N, 1, S, S) for N objects; ``clip_index`` (N,) each object's clip. Conditioning
    frames are prompted (GT mask, click or box, decided per batch) without memory; every other
    frame attends to the memories of the frames processed before it.
    """
    num_frames = targets.shape[0]
    if num_frames < 2:
        raise ValueError(
            f"video training needs clips of at least 2 frames, got {num_frames}; "
            "train single frames with image batches instead"
        )
    if images.shape[0] % num_frames:
        raise ValueError(f"{images.shape[0]} images are not whole clips of {num_frames} frames")
    all_feats = model.encode_image(images)
    kind, _ = initial_prompt(targets[0], generator, options)
    cond, correct = _choose_frames(num_frames, generator, options, kind != "mask")
    rules: MemoryRules = dataclasses.replace(
        memory_rules(model),
        only_obj_ptrs_in_the_past=False,  # training attends to all prompts
    )
    bank = MemoryBank()
    mem_pos: Tensor | None = None
    out: list[StepPrediction] = []
    for t in cond + [t for t in range(num_frames) if t not in cond]:
        feats = all_feats.select(clip_index * num_frames + t)
        gt = targets[t]
        is_cond = t in cond
        points = None
        if is_cond and kind == "mask":
            heads = model.mask_as_output(feats.vision_features, feats.high_res_features, gt.float())
        else:
            if is_cond:
                _, points = initial_prompt(
                    gt,
                    generator,
                    dataclasses.replace(
                        options, prob_point_input=1.0, prob_box_input=float(kind == "box")
                    ),
                )
                pix = condition_on_memory(model, feats, None, None)
            else:
                ctx = bank.select(t, False, num_frames, rules)
                pix = condition_on_memory(model, feats, ctx, mem_pos)
            heads = _decode(model, pix, feats, points, None, is_cond)
            out.append(_record(heads, gt, t))
            if t in correct:
                heads = _correct(
                    model, pix, feats, heads, points, gt, t, is_cond, generator, options, out
                )
        from_points = is_cond and kind != "mask"
        features, mem_pos = model.encode_memory(
            feats.vision_features,
            heads.high_res_masks,
            heads.object_score_logits,
            binarize=from_points,
        )
        output = FrameOutput(
            pred_masks=None,
            obj_ptr=heads.obj_ptr,
            object_score_logits=heads.object_score_logits,
            maskmem_features=features,
            is_mask_from_pts=from_points,
        )
        bank.add(t, output, conditioning=is_cond or t in correct)
    return out
