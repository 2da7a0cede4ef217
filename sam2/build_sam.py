"""Builders: the one place that turns a config into modules, spelled out keyword by keyword.

Public names match the reference (``build_sam2``, ``build_sam2_hf``,
``HF_MODEL_ID_TO_FILENAMES``), so code written for it keeps working; configs are our
dataclasses, not Hydra YAML.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from sam2.checkpoint import load_state_dict_strict, read_state_dict
from sam2.configs import SAM2Config, parse_overrides, resolve_config
from sam2.hub import HF_MODEL_ID_TO_FILENAMES, download_checkpoint
from sam2.modeling.attention import RoPEAttention
from sam2.modeling.hiera import Hiera
from sam2.modeling.image_encoder import FpnNeck, ImageEncoder
from sam2.modeling.mask_decoder import MaskDecoder
from sam2.modeling.memory_attention import MemoryAttention, MemoryAttentionLayer
from sam2.modeling.memory_encoder import CXBlock, Fuser, MaskDownSampler, MemoryEncoder
from sam2.modeling.position_encoding import PositionEmbeddingSine
from sam2.modeling.prompt_encoder import PromptEncoder
from sam2.modeling.sam2_model import SAM2Model
from sam2.modeling.two_way_transformer import TwoWayTransformer
from sam2.precision import PrecisionChoice
from sam2.video.options import TrackingOptions

if TYPE_CHECKING:
    from sam2.sam2_video_predictor import SAM2VideoPredictor

__all__ = [
    "HF_MODEL_ID_TO_FILENAMES",
    "build_model",
    "build_sam2",
    "build_sam2_hf",
    "build_sam2_video_predictor",
    "build_sam2_video_predictor_hf",
    "select_device",
]

logger = logging.getLogger(__name__)
_DECODER_POSTPROCESSING = {"dynamic_multimask_via_stability": True}
_VIDEO_OPTIONS = (
    "fill_hole_area",
    "non_overlap_masks",
    "clear_non_cond_mem_around_input",
    "add_all_frames_to_correct_as_cond",
)


def select_device(device: str | torch.device | None = None) -> torch.device:
    """The requested device, or the best available one; an unavailable accelerator falls back
    to the CPU with a warning instead of failing deep inside torch."""
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    available = {
        "cuda": torch.cuda.is_available(),
        "mps": getattr(torch.backends, "mps", None) is not None
        and torch.backends.mps.is_available(),
    }
    if dev.type in available and not available[dev.type]:
        warnings.warn(f"{dev.type} is not available on this machine; using the CPU", stacklevel=3)
        return torch.device("cpu")
    return dev


def build_model(config: SAM2Config) -> SAM2Model:
    """Randomly initialised SAM 2 model with the module tree of the official checkpoints."""
    t = config.trunk
    d, m = config.d_model, config.mem_dim
    image_encoder = ImageEncoder(
        trunk=Hiera(
            embed_dim=t.embed_dim,
            num_heads=t.num_heads,
            stages=t.stages,
            global_att_blocks=t.global_att_blocks,
            window_pos_embed_bkg_spatial_size=t.window_pos_embed_bkg_spatial_size,
            window_spec=t.window_spec,
        ),
        neck=FpnNeck(
            position_encoding=PositionEmbeddingSine(num_pos_feats=d),
            d_model=d,
            backbone_channel_list=list(t.channel_list),
            fpn_top_down_levels=list(config.fpn_top_down_levels),
            fpn_interp_model="nearest",
        ),
        scalp=1,
    )
    rope = {"rope_theta": 10000.0, "feat_sizes": (64, 64), "dropout": 0.1}
    memory_attention = MemoryAttention(
        d_model=d,
        pos_enc_at_input=True,
        num_layers=config.memory_attention_layers,
        layer=MemoryAttentionLayer(
            activation="relu",
            dim_feedforward=config.memory_attention_dim_feedforward,
            dropout=0.1,
            pos_enc_at_attn=False,
            pos_enc_at_cross_attn_keys=True,
            pos_enc_at_cross_attn_queries=False,
            d_model=d,
            self_attention=RoPEAttention(d, 1, downsample_rate=1, **rope),  # type: ignore[arg-type]
            cross_attention=RoPEAttention(
                d,
                1,
                downsample_rate=1,
                rope_k_repeat=True,
                kv_in_dim=m,
                **rope,  # type: ignore[arg-type]
            ),
        ),
    )
    memory_encoder = MemoryEncoder(
        out_dim=m,
        in_dim=d,
        position_encoding=PositionEmbeddingSine(num_pos_feats=m),
        mask_downsampler=MaskDownSampler(embed_dim=d, kernel_size=3, stride=2, padding=1),
        fuser=Fuser(
            CXBlock(dim=d, kernel_size=7, padding=3, layer_scale_init_value=1e-6, use_dwconv=True),
            num_layers=2,
        ),
    )
    embed_size = config.image_size // config.backbone_stride
    prompt_encoder = PromptEncoder(
        embed_dim=d,
        image_embedding_size=(embed_size, embed_size),
        input_image_size=(config.image_size, config.image_size),
        mask_in_chans=16,
    )
    mask_decoder = MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(
            depth=2,
            embedding_dim=d,
            mlp_dim=config.decoder_mlp_dim,
            num_heads=config.decoder_num_heads,
        ),
        transformer_dim=d,
        iou_head_depth=3,
        iou_head_hidden_dim=config.iou_head_hidden_dim,
        use_high_res_features=config.use_high_res_features_in_sam,
        iou_prediction_use_sigmoid=config.iou_prediction_use_sigmoid,
        pred_obj_scores=config.pred_obj_scores,
        pred_obj_scores_mlp=config.pred_obj_scores_mlp,
        use_multimask_token_for_obj_ptr=config.use_multimask_token_for_obj_ptr,
        dynamic_multimask_via_stability=config.dynamic_multimask_via_stability,
        dynamic_multimask_stability_delta=config.dynamic_multimask_stability_delta,
        dynamic_multimask_stability_thresh=config.dynamic_multimask_stability_thresh,
    )
    return SAM2Model(
        config,
        image_encoder=image_encoder,
        memory_attention=memory_attention,
        memory_encoder=memory_encoder,
        prompt_encoder=prompt_encoder,
        mask_decoder=mask_decoder,
    )


def _configure(
    config_file: str | SAM2Config,
    hydra_overrides_extra: Iterable[str],
    apply_postprocessing: bool,
    extra: dict[str, Any] | None = None,
) -> tuple[SAM2Config, dict[str, Any]]:
    """Resolve the config and split overrides into model fields and everything else."""
    config = resolve_config(config_file)
    overrides = {**(extra or {}), **parse_overrides(hydra_overrides_extra)}
    if apply_postprocessing:
        overrides = {**_DECODER_POSTPROCESSING, **overrides}
    fields = set(config.__dataclass_fields__)
    model_fields = {k: v for k, v in overrides.items() if k in fields}
    rest = {k: v for k, v in overrides.items() if k not in fields}
    return config.replace(**model_fields), rest


def _finish(
    model: nn.Module,
    ckpt_path: str | os.PathLike[str] | None,
    config: SAM2Config,
    device: str | torch.device | None,
    mode: Literal["eval", "train"],
) -> None:
    if ckpt_path is not None:
        load_state_dict_strict(model, read_state_dict(ckpt_path), config.name)
        logger.info("loaded checkpoint %s into %s", ckpt_path, config.name)
    model.to(select_device(device))
    if mode == "eval":
        model.eval()
    elif mode != "train":
        raise ValueError(f"mode must be 'eval' or 'train', got {mode!r}")


def build_sam2(
    config_file: str | SAM2Config,
    ckpt_path: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    mode: Literal["eval", "train"] = "eval",
    hydra_overrides_extra: Iterable[str] = (),
    apply_postprocessing: bool = True,
    **kwargs: Any,
) -> SAM2Model:
    """SAM 2 model for images (and the automatic mask generator).

    ``config_file`` is any released config name or a :class:`SAM2Config`; ``ckpt_path`` an
    official ``.pt`` (or ``.safetensors``) file, loaded strictly. ``device=None`` picks CUDA,
    then MPS, then the CPU. ``apply_postprocessing`` turns on the decoder's dynamic multimask
    fallback as the reference builders do. Other keyword arguments are accepted and ignored,
    as in the reference (so predictor options can be passed through ``from_pretrained``).
    """
    config, rest = _configure(config_file, hydra_overrides_extra, apply_postprocessing)
    if rest:
        raise ValueError(f"override(s) {sorted(rest)} are not SAM 2 model fields")
    model = build_model(config)
    _finish(model, ckpt_path, config, device, mode)
    return model


def build_sam2_video_predictor(
    config_file: str | SAM2Config,
    ckpt_path: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    mode: Literal["eval", "train"] = "eval",
    hydra_overrides_extra: Iterable[str] = (),
    apply_postprocessing: bool = True,
    vos_optimized: bool = False,
    precision: PrecisionChoice = "fp32",
    **kwargs: Any,
) -> SAM2VideoPredictor:
    """SAM 2 video predictor. With post-processing (the default, as in the reference), masks
    from clicks are binarised before memory encoding and holes up to 8 pixels are filled.

    Overrides may also set the predictor's options (``fill_hole_area``, ``non_overlap_masks``,
    ``add_all_frames_to_correct_as_cond``, ``clear_non_cond_mem_around_input``).
    ``precision="bf16"`` runs the model under bfloat16 autocast, ``"auto"`` only where the
    hardware computes bf16 (:mod:`sam2.precision`).
    """
    from sam2.sam2_video_predictor import SAM2VideoPredictor

    extra: dict[str, Any] = {}
    if apply_postprocessing:
        # the reference sets this model field; we keep it so a model re-wrapped in a new
        # predictor behaves the same, and hand it to the predictor as a tracking option
        extra = {"binarize_mask_from_pts_for_mem_enc": True, "fill_hole_area": 8}
    if vos_optimized:
        extra["compile_image_encoder"] = True
    config, rest = _configure(config_file, hydra_overrides_extra, apply_postprocessing, extra)
    unknown = set(rest) - set(_VIDEO_OPTIONS)
    if unknown:
        raise ValueError(
            f"override(s) {sorted(unknown)} are neither model fields nor video options"
        )
    options = TrackingOptions(
        binarize_mask_from_pts=config.binarize_mask_from_pts_for_mem_enc
    ).replace(**rest)
    model = build_model(config)
    _finish(model, ckpt_path, config, device, mode)
    return SAM2VideoPredictor(model, options, precision=precision)


def build_sam2_video_predictor_hf(model_id: str, **kwargs: Any) -> SAM2VideoPredictor:
    """Video predictor from an official checkpoint on the Hugging Face Hub."""
    config_name, ckpt_path = download_checkpoint(model_id, **_hub_kwargs(kwargs))
    return build_sam2_video_predictor(config_name, ckpt_path=ckpt_path, **kwargs)


def build_sam2_hf(model_id: str, **kwargs: Any) -> SAM2Model:
    """Download (or find in the cache) an official checkpoint from the Hugging Face Hub."""
    config_name, ckpt_path = download_checkpoint(model_id, **_hub_kwargs(kwargs))
    return build_sam2(config_name, ckpt_path=ckpt_path, **kwargs)


def _hub_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Take the download options out of ``kwargs`` (they are not model options)."""
    return {k: kwargs.pop(k) for k in ("cache_dir", "revision", "local_files_only") if k in kwargs}
