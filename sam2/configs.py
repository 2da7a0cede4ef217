"""The eight released SAM 2 / 2.1 models as plain data, and the names users know them by.

No Hydra: a config is a frozen dataclass, and the reference's YAML names
(``configs/sam2.1/sam2.1_hiera_t.yaml``, ``sam2_hiera_l.yaml``), short names (``sam2.1_hiera_t``)
and size names (``tiny``, ``base_plus``) all resolve to the same object. The few
``++model.<field>=<value>`` overrides users pass to the reference builders are understood too.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

Version = Literal["2.0", "2.1"]


@dataclass(frozen=True)
class HieraConfig:
    """Hiera trunk hyper-parameters; everything else is shared by all sizes."""

    embed_dim: int = 96
    num_heads: int = 1
    stages: tuple[int, ...] = (2, 3, 16, 3)
    global_att_blocks: tuple[int, ...] = (12, 16, 20)
    window_pos_embed_bkg_spatial_size: tuple[int, int] = (14, 14)
    window_spec: tuple[int, ...] = (8, 4, 14, 7)

    @property
    def channel_list(self) -> tuple[int, ...]:
        """Trunk output widths, lowest resolution first (what the FPN neck consumes)."""
        dims = [self.embed_dim * 2**i for i in range(len(self.stages))]
        return tuple(reversed(dims))


@dataclass(frozen=True)
class SAM2Config:
    """Every model flag of a released SAM 2 model (names as in the reference's YAML files)."""

    name: str
    version: Version
    trunk: HieraConfig
    image_size: int = 1024
    num_maskmem: int = 7
    backbone_stride: int = 16
    sigmoid_scale_for_mem_enc: float = 20.0
    sigmoid_bias_for_mem_enc: float = -10.0
    use_mask_input_as_output_without_sam: bool = True
    directly_add_no_mem_embed: bool = True
    use_high_res_features_in_sam: bool = True
    multimask_output_in_sam: bool = True
    iou_prediction_use_sigmoid: bool = True
    use_obj_ptrs_in_encoder: bool = True
    max_obj_ptrs_in_encoder: int = 16
    only_obj_ptrs_in_the_past_for_eval: bool = True
    pred_obj_scores: bool = True
    pred_obj_scores_mlp: bool = True
    fixed_no_obj_ptr: bool = True
    soft_no_obj_ptr: bool = False
    multimask_output_for_tracking: bool = True
    use_multimask_token_for_obj_ptr: bool = True
    multimask_min_pt_num: int = 0
    multimask_max_pt_num: int = 1
    use_mlp_for_obj_ptr_proj: bool = True
    max_cond_frames_in_attn: int = -1
    memory_temporal_stride_for_eval: int = 1
    non_overlap_masks_for_mem_enc: bool = False
    binarize_mask_from_pts_for_mem_enc: bool = False
    compile_image_encoder: bool = False
    # SAM 2.1 additions (False in 2.0)
    add_tpos_enc_to_obj_ptrs: bool = True
    proj_tpos_enc_in_obj_ptrs: bool = True
    use_signed_tpos_enc_to_obj_ptrs: bool = True
    no_obj_embed_spatial: bool = True
    # mask-decoder switches the reference builders inject (apply_postprocessing=True)
    dynamic_multimask_via_stability: bool = False
    dynamic_multimask_stability_delta: float = 0.05
    dynamic_multimask_stability_thresh: float = 0.98
    # neck and memory settings shared by all released models
    d_model: int = 256
    mem_dim: int = 64
    fpn_top_down_levels: tuple[int, ...] = (2, 3)
    memory_attention_layers: int = 4
    # widths hard-coded in the reference; fields so that reduced models (demo-cells) are config
    memory_attention_dim_feedforward: int = 2048
    decoder_mlp_dim: int = 2048
    decoder_num_heads: int = 8
    iou_head_hidden_dim: int = 256

    @property
    def size(self) -> str:
        return self.name.rsplit("_", 1)[-1]

    def replace(self, **changes: Any) -> SAM2Config:
        """A copy with some fields changed; unknown field names raise ``ValueError``."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(
                f"unknown SAM 2 config field(s) {unknown}; known fields: {sorted(known)}"
            )
        return dataclasses.replace(self, **changes)


_TRUNKS: dict[str, HieraConfig] = {
    "t": HieraConfig(
        embed_dim=96,
        num_heads=1,
        stages=(1, 2, 7, 2),
        global_att_blocks=(5, 7, 9),
        window_pos_embed_bkg_spatial_size=(7, 7),
    ),
    "s": HieraConfig(
        embed_dim=96,
        num_heads=1,
        stages=(1, 2, 11, 2),
        global_att_blocks=(7, 10, 13),
        window_pos_embed_bkg_spatial_size=(7, 7),
    ),
    "b+": HieraConfig(embed_dim=112, num_heads=2),
    "l": HieraConfig(
        embed_dim=144,
        num_heads=2,
        stages=(2, 6, 36, 4),
        global_att_blocks=(23, 33, 43),
        window_pos_embed_bkg_spatial_size=(7, 7),
        window_spec=(8, 4, 16, 8),
    ),
}
_SAM20_FLAGS = {
    "add_tpos_enc_to_obj_ptrs": False,
    "proj_tpos_enc_in_obj_ptrs": False,
    "use_signed_tpos_enc_to_obj_ptrs": False,
    "no_obj_embed_spatial": False,
}


def _make(version: Version, size: str) -> SAM2Config:
    prefix = "sam2.1" if version == "2.1" else "sam2"
    config = SAM2Config(name=f"{prefix}_hiera_{size}", version=version, trunk=_TRUNKS[size])
    return config.replace(**_SAM20_FLAGS) if version == "2.0" else config


CONFIGS: dict[str, SAM2Config] = {
    cfg.name: cfg
    for version in ("2.0", "2.1")
    for size in _TRUNKS
    for cfg in [_make(version, size)]
}  # keys: sam2_hiera_t ... sam2.1_hiera_l

_SIZE_ALIASES = {
    "t": "t",
    "tiny": "t",
    "s": "s",
    "small": "s",
    "b+": "b+",
    "base_plus": "b+",
    "base-plus": "b+",
    "baseplus": "b+",
    "l": "l",
    "large": "l",
}


# Our own small model (not released by Meta): the SAM 2.1 architecture at reduced width and
# depth for 256-pixel inputs, trained offline on synthetic cells (scripts/train_demo_model.py).
DEMO_CELLS = SAM2Config(
    name="demo-cells",
    version="2.1",
    trunk=HieraConfig(
        embed_dim=24,
        num_heads=1,
        stages=(1, 2, 3, 1),
        global_att_blocks=(4, 5),
        window_pos_embed_bkg_spatial_size=(4, 4),
        window_spec=(8, 8, 16, 8),
    ),
    image_size=256,
    d_model=64,
    mem_dim=32,
    memory_attention_layers=2,
    memory_attention_dim_feedforward=256,
    decoder_mlp_dim=256,
    decoder_num_heads=4,
    iou_head_hidden_dim=64,
    # one output on tracked frames: with SAM 2's three, the loss on the best of them let the
    # small model hedge (each output a different group of cells, the same for every object)
    multimask_output_for_tracking=False,
)
EXTRA_CONFIGS: dict[str, SAM2Config] = {DEMO_CELLS.name: DEMO_CELLS}


def config_file_name(config: SAM2Config) -> str:
    """The reference's package-relative YAML path for a released config."""
    folder = "sam2.1" if config.version == "2.1" else "sam2"
    return f"configs/{folder}/{config.name}.yaml"


def resolve_config(name: str | SAM2Config) -> SAM2Config:
    """Find a released config by any of its familiar names (or ours: ``demo-cells``, a JSON).

    Accepts ``configs/sam2.1/sam2.1_hiera_t.yaml``, ``sam2_hiera_l.yaml``, ``sam2.1_hiera_t``,
    ``sam2.1_hiera_tiny``, ``sam2.1-hiera-base-plus`` and bare sizes (``tiny``: SAM 2.1).
    """
    if isinstance(name, SAM2Config):
        return name
    text = str(name).strip()
    if text in EXTRA_CONFIGS:
        return EXTRA_CONFIGS[text]
    if text.lower().endswith(".json"):
        return load_config_json(text)
    stem = re.sub(r"\.ya?ml$", "", text.replace("\\", "/").rsplit("/", 1)[-1]).lower()
    stem = stem.replace("-", "_").replace("base_plus", "b+")
    if stem in _SIZE_ALIASES:
        return CONFIGS[f"sam2.1_hiera_{_SIZE_ALIASES[stem]}"]
    match = re.fullmatch(r"(sam2(?:\.1)?)_hiera_([a-z+_]+)", stem)
    if match and match.group(2) in _SIZE_ALIASES:
        return CONFIGS[f"{match.group(1)}_hiera_{_SIZE_ALIASES[match.group(2)]}"]
    choices = ", ".join(config_file_name(c) for c in CONFIGS.values())
    raise ValueError(
        f"unknown SAM 2 config {name!r}; use one of {choices}, a short name such as "
        "'sam2.1_hiera_t', a size ('tiny', 'small', 'base_plus', 'large'), "
        f"one of {sorted(EXTRA_CONFIGS)} or a config .json written by sam2.training"
    )


def config_to_dict(config: SAM2Config) -> dict[str, Any]:
    """Plain JSON-able form of a config (tuples become lists)."""
    return dataclasses.asdict(config)


def config_from_dict(data: dict[str, Any]) -> SAM2Config:
    """Inverse of :func:`config_to_dict`; unknown keys are refused, missing ones get defaults."""
    data = dict(data)
    trunk = data.pop("trunk", None)
    if not isinstance(trunk, dict):
        raise ValueError("a SAM 2 config needs a 'trunk' object with the Hiera settings")
    trunk_known = {f.name for f in dataclasses.fields(HieraConfig)}
    known = {f.name for f in dataclasses.fields(SAM2Config)}
    unknown = sorted((set(data) - known) | {f"trunk.{k}" for k in set(trunk) - trunk_known})
    if unknown:
        raise ValueError(f"unknown SAM 2 config field(s) {unknown}")
    if "name" not in data or "version" not in data:
        raise ValueError("a SAM 2 config needs 'name' and 'version'")

    def fix(value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value

    hiera = HieraConfig(**{k: fix(v) for k, v in trunk.items()})
    return SAM2Config(trunk=hiera, **{k: fix(v) for k, v in data.items()})


def load_config_json(path: str) -> SAM2Config:
    """Config saved beside trained weights (``<name>.json``, see :mod:`sam2.training`)."""
    import json
    from pathlib import Path

    file = Path(path)
    if not file.is_file():
        raise ValueError(f"config file not found: {file}")
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{file} is not valid JSON: {exc}") from exc
    if isinstance(data, dict) and "config" in data:
        data = data["config"]
    if not isinstance(data, dict):
        raise ValueError(f"{file} does not hold a SAM 2 config object")
    return config_from_dict(data)


def _parse_value(text: str) -> Any:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text.startswith("[") and text.endswith("]"):
        return tuple(_parse_value(part) for part in text[1:-1].split(",") if part.strip())
    return text


def parse_overrides(overrides: Iterable[str]) -> dict[str, Any]:
    """``["++model.fill_hole_area=8", "model.image_size=512"]`` -> ``{"fill_hole_area": 8, ...}``.

    Only plain ``model.<field>=<value>`` assignments are understood; ``_target_`` swaps (which
    the reference uses to pick the predictor class) are ignored because our builders pick it.
    """
    parsed: dict[str, Any] = {}
    for item in overrides:
        match = re.fullmatch(r"\+{0,2}model\.([A-Za-z_][\w.]*)=(.*)", item.strip())
        if not match:
            raise ValueError(
                f"cannot read override {item!r}; expected '++model.<field>=<value>', "
                "e.g. '++model.image_size=512'"
            )
        key, value = match.groups()
        if key != "_target_":
            parsed[key] = _parse_value(value)
    return parsed
