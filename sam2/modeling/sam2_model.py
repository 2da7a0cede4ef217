"""SAM 2 composed from its parts, with the small per-frame steps the predictors chain together.

The model *has* its components (built by :mod:`sam2.build_sam`) and the handful of root
parameters of the checkpoint. It exposes steps, not a monolithic forward:
``encode_image`` → (memory conditioning, in the video engine) → ``decode_masks`` or
``mask_as_output`` → ``encode_memory``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sam2.configs import SAM2Config
from sam2.modeling.common import MLP
from sam2.modeling.image_encoder import ImageEncoder
from sam2.modeling.mask_decoder import MaskDecoder
from sam2.modeling.memory_attention import MemoryAttention
from sam2.modeling.memory_encoder import MemoryEncoder
from sam2.modeling.prompt_encoder import PromptEncoder

NO_OBJ_SCORE = -1024.0  # logit written over every pixel of a frame where the object is absent


@dataclass
class ImageFeatures:
    """Backbone output for a batch of frames (B) at model input size S.

    ``backbone_fpn`` levels 0 and 1 are already projected by the decoder's ``conv_s0/conv_s1``
    so that clicks never recompute them.
    """

    backbone_fpn: list[Tensor]  # (B, 32, S/4, S/4), (B, 64, S/8, S/8), (B, 256, S/16, S/16)
    vision_pos_enc: list[Tensor]  # (B, 256, ·, ·) for the same three levels

    @property
    def vision_features(self) -> Tensor:  # (B, 256, S/16, S/16), raw: no no_mem_embed added
        return self.backbone_fpn[-1]

    @property
    def high_res_features(self) -> list[Tensor]:
        return self.backbone_fpn[:2]

    def select(self, index: Tensor | slice | int) -> ImageFeatures:
        """Features of some batch elements (keeps the batch dim)."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return ImageFeatures(
            backbone_fpn=[x[index] for x in self.backbone_fpn],
            vision_pos_enc=[x[index] for x in self.vision_pos_enc],
        )


@dataclass
class HeadsOutput:
    """What one pass of the SAM heads gives for B prompt sets (M = 3 or 1 candidate masks)."""

    low_res_multimasks: Tensor  # (B, M, S/4, S/4) logits
    high_res_multimasks: Tensor  # (B, M, S, S) logits
    ious: Tensor  # (B, M)
    low_res_masks: Tensor  # (B, 1, S/4, S/4) best candidate
    high_res_masks: Tensor  # (B, 1, S, S)
    obj_ptr: Tensor  # (B, C)
    object_score_logits: Tensor  # (B, 1)


class SAM2Model(nn.Module):
    """SAM 2 / 2.1: image encoder, SAM prompt encoder + mask decoder, streaming memory."""

    def __init__(
        self,
        config: SAM2Config,
        *,
        image_encoder: ImageEncoder,
        memory_attention: MemoryAttention,
        memory_encoder: MemoryEncoder,
        prompt_encoder: PromptEncoder,
        mask_decoder: MaskDecoder,
    ) -> None:
        super().__init__()
        self.config = config
        self.image_encoder = image_encoder
        self.memory_attention = memory_attention
        self.memory_encoder = memory_encoder
        self.sam_prompt_encoder = prompt_encoder
        self.sam_mask_decoder = mask_decoder
        self.image_size = config.image_size
        self.hidden_dim = config.d_model
        self.mem_dim = config.mem_dim
        self.num_maskmem = config.num_maskmem
        self.num_feature_levels = 3 if config.use_high_res_features_in_sam else 1
        self.directly_add_no_mem_embed = config.directly_add_no_mem_embed

        c, m = self.hidden_dim, self.mem_dim
        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(config.num_maskmem, 1, 1, m))
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, c))
        self.no_mem_pos_enc = nn.Parameter(torch.zeros(1, 1, c))
        for param in (self.maskmem_tpos_enc, self.no_mem_embed, self.no_mem_pos_enc):
            nn.init.trunc_normal_(param, std=0.02)
        self.no_obj_ptr: nn.Parameter | None = None
        if config.pred_obj_scores and config.use_obj_ptrs_in_encoder:
            self.no_obj_ptr = nn.Parameter(torch.zeros(1, c))
            nn.init.trunc_normal_(self.no_obj_ptr, std=0.02)
        self.no_obj_embed_spatial: nn.Parameter | None = None
        if config.no_obj_embed_spatial:
            self.no_obj_embed_spatial = nn.Parameter(torch.zeros(1, m))
            nn.init.trunc_normal_(self.no_obj_embed_spatial, std=0.02)
        self.obj_ptr_proj: nn.Module = nn.Identity()
        if config.use_obj_ptrs_in_encoder:
            self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
            self.obj_ptr_proj = (
                MLP(c, c, c, 3) if config.use_mlp_for_obj_ptr_proj else nn.Linear(c, c)
            )
        self.obj_ptr_tpos_proj: nn.Module = (
            nn.Linear(c, m) if config.proj_tpos_enc_in_obj_ptrs else nn.Identity()
        )
        if config.compile_image_encoder:
            self.image_encoder.compile(dynamic=False)  # in place: checkpoint keys unchanged

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def feature_sizes(self) -> list[tuple[int, int]]:
        """Spatial sizes of the three feature levels at this model's input size."""
        s = self.image_size
        return [(s // 4, s // 4), (s // 8, s // 8), (s // 16, s // 16)]

    def forward(self, *args: object, **kwargs: object) -> None:
        raise TypeError(
            "SAM2Model has no single forward; use SAM2ImagePredictor or SAM2VideoPredictor, "
            "or chain encode_image / decode_masks / encode_memory"
        )

    # ---------------------------------------------------------------- image features
    def encode_image(self, images: Tensor) -> ImageFeatures:
        """(B, 3, S, S) normalised images -> backbone features with projected high-res levels."""
        out = self.image_encoder(images)
        fpn = list(out["backbone_fpn"])
        if self.config.use_high_res_features_in_sam:
            fpn[0] = self.sam_mask_decoder.conv_s0(fpn[0])
            fpn[1] = self.sam_mask_decoder.conv_s1(fpn[1])
        return ImageFeatures(backbone_fpn=fpn, vision_pos_enc=list(out["vision_pos_enc"]))

    def forward_image(self, images: Tensor) -> dict[str, object]:
        """Reference-compatible dict form of :meth:`encode_image`."""
        feats = self.encode_image(images)
        return {
            "vision_features": feats.vision_features,
            "vision_pos_enc": feats.vision_pos_enc,
            "backbone_fpn": feats.backbone_fpn,
        }

    # ---------------------------------------------------------------- SAM heads
    def decode_masks(
        self,
        backbone_features: Tensor,
        point_coords: Tensor | None = None,
        point_labels: Tensor | None = None,
        mask_inputs: Tensor | None = None,
        high_res_features: list[Tensor] | None = None,
        multimask_output: bool = False,
        image_pe: Tensor | None = None,
    ) -> HeadsOutput:
        """Prompt encoder + mask decoder on (B, C, S/16, S/16) features (memory-conditioned or not).

        ``image_pe`` (1 or B, C, ·, ·) replaces the dense position encoding of the full grid
        when the features are a window of it (fast tracking: the window's own tokens' codes).

        Points are (B, P, 2) in model-input pixels (x, y) with (B, P) int labels; with no points
        a single "not a point" is used. ``mask_inputs`` (B, 1, ·, ·) is resized to the prompt
        encoder's mask size. Frames whose object score is ≤ 0 get ``NO_OBJ_SCORE`` everywhere
        and the learned no-object pointer.
        """
        b = backbone_features.shape[0]
        device = backbone_features.device
        if point_coords is None or point_labels is None:
            point_coords = torch.zeros(b, 1, 2, device=device)
            point_labels = -torch.ones(b, 1, dtype=torch.int32, device=device)
        mask_prompt = None
        if mask_inputs is not None:
            mask_size = tuple(self.sam_prompt_encoder.mask_input_size)
            mask_prompt = mask_inputs
            if tuple(mask_inputs.shape[-2:]) != mask_size:
                mask_prompt = F.interpolate(
                    mask_inputs.float(),
                    size=mask_size,
                    mode="bilinear",
                    align_corners=False,
                    antialias=True,
                )
        sparse, dense = self.sam_prompt_encoder(
            points=(point_coords, point_labels), boxes=None, masks=mask_prompt
        )
        if mask_prompt is None:  # the no-mask embedding, the same everywhere: fit a window
            dense = dense[..., : backbone_features.shape[-2], : backbone_features.shape[-1]]
        low_res, ious, tokens, object_score_logits = self.sam_mask_decoder(
            image_embeddings=backbone_features,
            image_pe=self.sam_prompt_encoder.get_dense_pe() if image_pe is None else image_pe,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask_output,
            repeat_image=False,
            high_res_features=high_res_features,
        )
        is_present = object_score_logits > 0  # (B, 1)
        if self.config.pred_obj_scores:
            low_res = torch.where(is_present[:, :, None, None], low_res, NO_OBJ_SCORE)
        low_res = low_res.float()
        high_res = F.interpolate(
            low_res, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False
        )
        token = tokens[:, 0]
        if multimask_output:
            best = torch.argmax(ious, dim=-1)
            rows = torch.arange(b, device=device)
            low_best, high_best = low_res[rows, best, None], high_res[rows, best, None]
            if tokens.shape[1] > 1:
                token = tokens[rows, best]
        else:
            low_best, high_best = low_res, high_res
        obj_ptr = self.obj_ptr_proj(token)
        if self.config.pred_obj_scores:
            obj_ptr = self._mix_no_obj_ptr(obj_ptr, object_score_logits, is_present.float())
        return HeadsOutput(
            low_res, high_res, ious, low_best, high_best, obj_ptr, object_score_logits
        )

    def _mix_no_obj_ptr(self, obj_ptr: Tensor, score_logits: Tensor, present: Tensor) -> Tensor:
        """Blend towards the learned no-object pointer where the object is absent."""
        weight = score_logits.sigmoid() if self.config.soft_no_obj_ptr else present
        if self.config.fixed_no_obj_ptr:
            obj_ptr = weight * obj_ptr
        assert self.no_obj_ptr is not None
        return obj_ptr + (1 - weight) * self.no_obj_ptr

    def mask_as_output(
        self, backbone_features: Tensor, high_res_features: list[Tensor] | None, mask_inputs: Tensor
    ) -> HeadsOutput:
        """Use a (B, 1, S, S) binary mask prompt directly as the prediction (±10 logits).

        The object pointer still comes from the decoder, run on the raw features with the mask
        downsampled by the learned 4×4 conv; presence is decided by the mask itself.
        """
        mask = mask_inputs.float()
        high_res = mask * 20.0 - 10.0
        low_res = F.interpolate(
            high_res,
            size=(high_res.shape[-2] // 4, high_res.shape[-1] // 4),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )
        ious = mask.new_ones(mask.shape[0], 1)
        if self.config.use_obj_ptrs_in_encoder:
            obj_ptr = self.decode_masks(
                backbone_features,
                mask_inputs=self.mask_downsample(mask),
                high_res_features=high_res_features,
            ).obj_ptr
        else:
            obj_ptr = torch.zeros(mask.shape[0], self.hidden_dim, device=mask.device)
        present = (mask.flatten(1) > 0).any(dim=1, keepdim=True).float()  # (B, 1)
        score_logits = 20.0 * present - 10.0
        if self.config.pred_obj_scores:
            obj_ptr = self._mix_no_obj_ptr(obj_ptr, score_logits, present)
        return HeadsOutput(low_res, high_res, ious, low_res, high_res, obj_ptr, score_logits)

    # ---------------------------------------------------------------- memory
    def encode_memory(
        self,
        pix_feat: Tensor,
        high_res_masks: Tensor,
        object_score_logits: Tensor,
        *,
        binarize: bool,
    ) -> tuple[Tensor, Tensor]:
        """Memory of one prediction: (B, 64, S/16, S/16) features and their sine position map.

        ``pix_feat`` is the raw s16 backbone map (no memory conditioning, no no_mem_embed);
        ``high_res_masks`` are (B, 1, S, S) logits, thresholded at 0 when ``binarize`` (the
        caller decides: the video predictor binarises masks from clicks when its
        :class:`~sam2.video.options.TrackingOptions` say so), else squashed by a sigmoid.
        """
        if binarize:
            mask = (high_res_masks > 0).float()
        else:
            mask = torch.sigmoid(high_res_masks)
        mask = mask * self.config.sigmoid_scale_for_mem_enc + self.config.sigmoid_bias_for_mem_enc
        out = self.memory_encoder(pix_feat, mask, skip_mask_sigmoid=True)
        features, pos = out["vision_features"], out["vision_pos_enc"][-1]
        if self.no_obj_embed_spatial is not None:
            absent = 1.0 - (object_score_logits > 0).float()  # (B, 1)
            features = (
                features + absent[..., None, None] * self.no_obj_embed_spatial[..., None, None]
            )
        return features, pos
