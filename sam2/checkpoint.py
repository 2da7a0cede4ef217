"""Safe checkpoint loading with a strict key check that explains what went wrong.

Official files are ``torch.save({"model": state_dict})``. They are read with
``weights_only=True`` (a checkpoint must never run code); ``.safetensors`` files work too.
Whatever goes wrong reading a file (truncated, not a checkpoint, code inside) is one
:class:`CheckpointError` that names the file and what to do, never the reader's own error:
callers (the widgets' workers) catch that one type, and torch's advice to pass
``weights_only=False`` is exactly what must not be followed for a file of unknown origin.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

SAM21_ONLY_KEYS = frozenset(
    {"no_obj_embed_spatial", "obj_ptr_tpos_proj.weight", "obj_ptr_tpos_proj.bias"}
)
_TRUNK_SIZES = {  # (patch embed width, number of Hiera blocks) -> size
    (96, 12): "tiny",
    (96, 16): "small",
    (112, 24): "base_plus",
    (144, 48): "large",
}


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model it is loaded into."""


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """The state dict stored in ``path`` (``.pt`` with a ``"model"`` entry, or safetensors)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise _refused(path, str(exc)) from None  # from None: no weights_only=False advice
    except Exception as exc:  # truncated downloads, files that are not checkpoints at all
        raise CheckpointError(
            f"cannot read checkpoint {path} with torch.load(weights_only=True): "
            f"{type(exc).__name__}: {_first_sentence(str(exc))}. Official SAM 2 checkpoints "
            "hold only tensors; the file may be incomplete: download or copy it again."
        ) from exc
    if isinstance(loaded, Mapping) and "model" in loaded and isinstance(loaded["model"], Mapping):
        loaded = loaded["model"]
    if not isinstance(loaded, Mapping) or not all(isinstance(v, Tensor) for v in loaded.values()):
        raise CheckpointError(
            f"{path} does not hold a state dict: expected {{'model': {{name: tensor}}}} as in "
            "Meta's sam2*.pt files"
        )
    return dict(loaded)


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError as exc:
        raise CheckpointError(
            f"{path.name} is a safetensors file; install it with `pip install safetensors`"
        ) from exc
    try:  # SafetensorError is no OSError or ValueError: catch what the reader raises
        return load_file(str(path), device="cpu")
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    except Exception as exc:
        raise CheckpointError(
            f"cannot read checkpoint {path}: {exc} ({type(exc).__name__}). The file is not a "
            "complete safetensors file (an interrupted download or copy?): download, copy or "
            "export it again and choose it once more."
        ) from exc


def _refused(path: Path, message: str) -> CheckpointError:
    """The error for a file ``torch.load(weights_only=True)`` would not unpickle."""
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", message)
    if found is None:  # not even a pickle of tensors: junk, or the wrong kind of file
        detail = re.search(r"WeightsUnpickler error: \s*([^\n]+)", message)
        reason = detail.group(1).strip() if detail else _first_sentence(message)
        return CheckpointError(
            f"cannot read checkpoint {path} with torch.load(weights_only=True): {reason}. "
            "It is not a PyTorch checkpoint of tensors, or it is damaged: download or copy "
            "it again."
        )
    return CheckpointError(
        f"{path} was refused: besides tensors it stores the Python object {found.group(1)}, "
        "and loading it would mean running code from the file. napari-sam2 reads only "
        "checkpoints of tensors (torch.load with weights_only=True). Save just the weights "
        "where the file is trusted, torch.save({'model': model.state_dict()}, path) or a "
        ".safetensors file, and choose that file."
    )


def _first_sentence(message: str) -> str:
    return message.strip().split(". ")[0].rstrip(".")


def describe_trunk(state_dict: Mapping[str, Tensor]) -> str | None:
    """Guess the model size a state dict was made for, from its trunk's width and depth."""
    patch = state_dict.get("image_encoder.trunk.patch_embed.proj.weight")
    if patch is None:
        return None
    blocks = {k.split(".")[3] for k in state_dict if k.startswith("image_encoder.trunk.blocks.")}
    return _TRUNK_SIZES.get((int(patch.shape[0]), len(blocks)))


def _mismatch_hint(
    missing: set[str], unexpected: set[str], state_dict: Mapping[str, Tensor], config_name: str
) -> str:
    if any(k.startswith(("vision_encoder.", "model.vision_encoder", "sam2.")) for k in unexpected):
        return (
            "the file looks like a Hugging Face transformers checkpoint (a '-hf' repository); "
            "use the original sam2*.pt files, e.g. facebook/sam2.1-hiera-tiny"
        )
    if SAM21_ONLY_KEYS <= unexpected:
        return "the checkpoint is SAM 2.1 but the config is SAM 2.0: use a sam2.1_* config"
    if SAM21_ONLY_KEYS <= missing:
        return "the checkpoint is SAM 2.0 but the config is SAM 2.1: use a sam2_* config"
    size = describe_trunk(state_dict)
    if size:
        return f"the checkpoint's trunk is the {size} model; pick the matching config"
    return "the checkpoint does not come from a released SAM 2 model of this config"


def load_state_dict_strict(
    model: nn.Module, state_dict: Mapping[str, Tensor], config_name: str = "the config"
) -> None:
    """Load every tensor, or raise one ``CheckpointError`` naming the keys and the likely cause."""
    own = model.state_dict()
    missing = set(own) - set(state_dict)
    unexpected = set(state_dict) - set(own)
    wrong_shape = sorted(
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state_dict)
        if own[k].shape != state_dict[k].shape
    )
    if missing or unexpected or wrong_shape:
        parts = [f"checkpoint does not fit {config_name}:"]
        for label, items in (
            ("missing keys", sorted(missing)),
            ("unexpected keys", sorted(unexpected)),
            ("wrong shapes", wrong_shape),
        ):
            if items:
                shown = ", ".join(items[:10]) + (" ..." if len(items) > 10 else "")
                parts.append(f"  {len(items)} {label}: {shown}")
        parts.append(
            "  likely cause: " + _mismatch_hint(missing, unexpected, state_dict, config_name)
        )
        raise CheckpointError("\n".join(parts))
    model.load_state_dict(dict(state_dict), strict=True)
