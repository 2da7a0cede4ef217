"""Fast tracking: each object tracked in a window of tokens around where it was.

Exact SAM 2 attends from every token of the frame to every token of every memory, so a 20 px
cell in a 1024² input (about 2 of the 64×64 tokens) costs as much as one filling the frame.
Its mask depends on the tokens around it, not on the far side of the frame. Here each object
gets a square window around its previous mask, grown by a margin proportional to its size and
shifted by its last motion:

* memory attention: the queries and the keys of every memory frame are cut to the same window,
  so RoPE sees the relative positions of the full grid; object pointers are kept whole;
* the decoder sees the window with the dense position codes of the same tokens;
* the memory encoder runs on the window plus a halo, pasted into the frame's "no object here"
  memory (computed once per frame for all objects), so memories stay full-frame and a window
  may move freely.

An object with no mask on the previous frame, one whose window would cover more than
``max_fraction`` of the frame side, and one whose new mask touches an inner edge of its window
(it outgrew it) are tracked on the full frame instead, as exact SAM 2.

Shapes: H×H tokens (S/16), 4H low-res pixels, S = 16H input pixels; s the window side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from sam2.modeling.sam2_model import NO_OBJ_SCORE, ImageFeatures, SAM2Model
from sam2.postprocess import fill_holes
from sam2.video.memory import FrameOutput, MemoryContext
from sam2.video.options import WindowOptions
from sam2.video.tracker import StepResult, condition_on_memory, use_multimask

__all__ = ["ObjectMotion", "Window", "choose_window", "mask_box", "window_after", "windowed_step"]

Box = tuple[int, int, int, int]  # (y0, x0, y1, x1) in tokens, end exclusive


@dataclass(frozen=True)
class Window:
    """A square of ``side`` tokens whose top-left token is (y, x)."""

    y: int
    x: int
    side: int


@dataclass
class ObjectMotion:
    """Where an object's mask was last (its box centre, in tokens) and how it moved."""

    center: tuple[float, float] | None = None
    velocity: tuple[float, float] = (0.0, 0.0)

    def update(self, box: Box | None) -> None:
        if box is None:
            self.center, self.velocity = None, (0.0, 0.0)
            return
        center = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        if self.center is not None:
            self.velocity = (center[0] - self.center[0], center[1] - self.center[1])
        self.center = center


def mask_box(low_res: Tensor) -> Box | None:
    """Token box of a (1, 1, 4H, 4H) logit mask's foreground; None when it is empty."""
    fg = low_res[0, 0] > 0
    rows, cols = torch.nonzero(fg.any(1)).flatten(), torch.nonzero(fg.any(0)).flatten()
    if rows.numel() == 0:
        return None
    return int(rows[0]) // 4, int(cols[0]) // 4, int(rows[-1]) // 4 + 1, int(cols[-1]) // 4 + 1


def choose_window(
    box: Box | None, motion: ObjectMotion, grid: int, options: WindowOptions
) -> Window | None:
    """The window to track an object in next, or None for the full frame."""
    if box is None:
        return None
    size = max(box[2] - box[0], box[3] - box[1])
    vy, vx = motion.velocity
    side = size * (1 + 2 * options.margin) + 2 * max(abs(vy), abs(vx))
    side = max(options.min_side, 4 * math.ceil(side / 4))  # multiples of 4 batch together
    if side > options.max_fraction * grid or side > grid:
        return None
    cy, cx = (box[0] + box[2]) / 2 + vy, (box[1] + box[3]) / 2 + vx
    y = min(max(round(cy - side / 2), 0), grid - side)
    x = min(max(round(cx - side / 2), 0), grid - side)
    return Window(y, x, side)


def window_after(
    previous: FrameOutput | None, motion: ObjectMotion, grid: int, options: WindowOptions
) -> Window | None:
    """The window for the frame after ``previous`` (None: track on the full frame)."""
    if previous is None or previous.pred_masks is None:
        return None
    return choose_window(mask_box(previous.pred_masks), motion, grid, options)


def _crops(x: Tensor, windows: list[Window], scale: int) -> Tensor:
    """(1 or B, C, H·scale, H·scale) → (B, C, s·scale, s·scale), object i at window i."""
    out = []
    for i, w in enumerate(windows):
        src = x[i if x.shape[0] > 1 else 0]
        y, x0, s = w.y * scale, w.x * scale, w.side * scale
        out.append(src[:, y : y + s, x0 : x0 + s])
    return torch.stack(out)


def background_memory(model: SAM2Model, feats: ImageFeatures) -> tuple[Tensor, Tensor]:
    """The frame's memory where no object is: (1, 64, H, H) features and their positions."""
    size = model.image_size
    empty = feats.vision_features.new_full((1, 1, size, size), NO_OBJ_SCORE)
    present = feats.vision_features.new_ones(1, 1)  # no "absent" embedding: added per object
    return model.encode_memory(feats.vision_features, empty, present, binarize=False)


def windowed_step(
    model: SAM2Model,
    feats: ImageFeatures,
    ctx: MemoryContext,
    maskmem_pos_enc: Tensor,
    windows: list[Window],
    background: tuple[Tensor, Tensor],
    *,
    halo: int,
    fill_hole_area: int = 0,
) -> tuple[StepResult, list[bool]]:
    """Track B objects, each in its window (all of one side); full-frame outputs, and for each
    object whether its mask touches an inner edge of its window (it needs the full frame)."""
    grid = feats.vision_features.shape[-1]
    side = windows[0].side
    if any(w.side != side for w in windows):
        raise ValueError("windows of one batch must have the same side")
    cut = ImageFeatures(
        backbone_fpn=[_crops(f, windows, scale) for f, scale in zip(feats.backbone_fpn, (4, 2, 1))],
        # memory attention reads only the last level's positions
        vision_pos_enc=[_crops(feats.vision_pos_enc[-1], windows, 1)] * 3,
    )
    cut_ctx = MemoryContext(
        spatial=[(t, _crops(f, windows, 1)) for t, f in ctx.spatial],
        pointers=ctx.pointers,
        max_ptr_distance=ctx.max_ptr_distance,
    )
    pix = condition_on_memory(model, cut, cut_ctx, _crops(maskmem_pos_enc, windows, 1))
    heads = model.decode_masks(
        pix,
        high_res_features=cut.high_res_features,
        multimask_output=use_multimask(model, False, 0),
        image_pe=_crops(model.sam_prompt_encoder.get_dense_pe(), windows, 1),
    )
    b = len(windows)
    low = heads.low_res_masks.float()  # (B, 1, 4s, 4s)
    masks = low.new_full((b, 1, 4 * grid, 4 * grid), NO_OBJ_SCORE)
    for i, w in enumerate(windows):
        masks[i, :, 4 * w.y : 4 * (w.y + side), 4 * w.x : 4 * (w.x + side)] = low[i]
    touched = [_touches_inner_edge(low[i, 0] > 0, w, grid) for i, w in enumerate(windows)]

    # memory: window + halo through the encoder, pasted into the frame's empty memory
    region = min(side + 2 * halo, grid)
    regions = [
        Window(
            min(max(w.y - halo, 0), grid - region), min(max(w.x - halo, 0), grid - region), region
        )
        for w in windows
    ]
    # the decoder upsamples to the full input size; the window's own (B, 1, 16s, 16s) here
    high = F.interpolate(low, size=(16 * side, 16 * side), mode="bilinear", align_corners=False)
    canvas = high.new_full((b, 1, 16 * region, 16 * region), NO_OBJ_SCORE)
    for i, (w, r) in enumerate(zip(windows, regions, strict=True)):
        oy, ox = 16 * (w.y - r.y), 16 * (w.x - r.x)
        canvas[i, :, oy : oy + 16 * side, ox : ox + 16 * side] = high[i]
    present = canvas.new_ones(b, 1)
    local, _ = model.encode_memory(
        _crops(feats.vision_features, regions, 1), canvas, present, binarize=False
    )
    empty, pos = background
    memory = empty.expand(b, -1, -1, -1).clone()  # (B, 64, H, H)
    for i, (w, r) in enumerate(zip(windows, regions, strict=True)):
        oy, ox = w.y - r.y, w.x - r.x
        memory[i, :, w.y : w.y + side, w.x : w.x + side] = local[
            i, :, oy : oy + side, ox : ox + side
        ]
    if model.no_obj_embed_spatial is not None:
        absent = 1.0 - (heads.object_score_logits > 0).to(memory.dtype)  # (B, 1)
        memory = memory + absent[..., None, None] * model.no_obj_embed_spatial[..., None, None]
    if fill_hole_area > 0:
        masks = fill_holes(masks, fill_hole_area, fill=0.1)
    output = FrameOutput(
        pred_masks=masks,
        obj_ptr=heads.obj_ptr,
        object_score_logits=heads.object_score_logits,
        maskmem_features=memory.to(torch.bfloat16),
        is_mask_from_pts=False,
    )
    return StepResult(output=output, masks=masks, maskmem_pos_enc=pos), touched


def _touches_inner_edge(fg: Tensor, w: Window, grid: int) -> bool:
    """Whether a (4s, 4s) foreground reaches a window edge that is not the frame's edge."""
    edges = []
    if w.y > 0:
        edges.append(fg[0])
    if w.y + w.side < grid:
        edges.append(fg[-1])
    if w.x > 0:
        edges.append(fg[:, 0])
    if w.x + w.side < grid:
        edges.append(fg[:, -1])
    return any(bool(e.any()) for e in edges)
