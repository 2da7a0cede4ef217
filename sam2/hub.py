"""Official checkpoints from the Hugging Face Hub (download, cache, offline use).

``huggingface_hub`` does the work: its cache (``HF_HOME`` / ``cache_dir``), revisions and offline
mode (``HF_HUB_OFFLINE=1``) behave as everywhere else. What we add is the mapping from model ids
to files and an error that tells a user without network what to download and where to put it.

One id is not on the Hub: ``napari-sam2/demo-cells``, a small SAM 2 trained by this project from
random weights on synthetic cells (``scripts/train_demo_model.py``). Its weights ship inside the
package, so it loads with no network through the same calls as the released models. It is for
trying the plugin and for our tests; real work wants the released SAM 2.1 weights.
"""

from __future__ import annotations

import os
from pathlib import Path

HF_MODEL_ID_TO_FILENAMES: dict[str, tuple[str, str]] = {
    "facebook/sam2-hiera-tiny": ("configs/sam2/sam2_hiera_t.yaml", "sam2_hiera_tiny.pt"),
    "facebook/sam2-hiera-small": ("configs/sam2/sam2_hiera_s.yaml", "sam2_hiera_small.pt"),
    "facebook/sam2-hiera-base-plus": ("configs/sam2/sam2_hiera_b+.yaml", "sam2_hiera_base_plus.pt"),
    "facebook/sam2-hiera-large": ("configs/sam2/sam2_hiera_l.yaml", "sam2_hiera_large.pt"),
    "facebook/sam2.1-hiera-tiny": ("configs/sam2.1/sam2.1_hiera_t.yaml", "sam2.1_hiera_tiny.pt"),
    "facebook/sam2.1-hiera-small": ("configs/sam2.1/sam2.1_hiera_s.yaml", "sam2.1_hiera_small.pt"),
    "facebook/sam2.1-hiera-base-plus": (
        "configs/sam2.1/sam2.1_hiera_b+.yaml",
        "sam2.1_hiera_base_plus.pt",
    ),
    "facebook/sam2.1-hiera-large": ("configs/sam2.1/sam2.1_hiera_l.yaml", "sam2.1_hiera_large.pt"),
}


#: Models shipped inside this package: id -> (config name, file under sam2/weights/).
EMBEDDED_MODELS: dict[str, tuple[str, str]] = {
    "napari-sam2/demo-cells": ("demo-cells", "demo_cells.safetensors"),
}
DEMO_MODEL_ID = "napari-sam2/demo-cells"


def embedded_model_path(model_id: str) -> Path:
    """The packaged weights of an embedded model (a safetensors file: no code can run)."""
    from importlib.resources import files

    _, filename = EMBEDDED_MODELS[model_id]
    path = Path(str(files("sam2") / "weights" / filename))
    if not path.is_file():
        raise FileNotFoundError(
            f"the weights of {model_id} are missing from this installation ({path}); "
            "reinstall napari-sam2, or rebuild them with scripts/train_demo_model.py"
        )
    return path


def hub_model_ids() -> list[str]:
    """The released model ids, SAM 2.1 first (better at the same cost), each family by size."""
    return sorted(HF_MODEL_ID_TO_FILENAMES, key=lambda model_id: "sam2.1" not in model_id)


def config_for_checkpoint(path: str | os.PathLike[str]) -> str | None:
    """The config of a checkpoint: the ``.json`` written beside it by :mod:`sam2.training`
    (a fine-tuned or trained model), else a released one by file name, else None.

    Only the name counts for released files (any folder, any extension):
    ``.../sam2_hiera_large.pth`` gives ``configs/sam2/sam2_hiera_l.yaml``.
    """
    beside = Path(path).with_suffix(".json")
    if beside.is_file():
        return str(beside)
    name = Path(path).name
    stem = name.rsplit(".", 1)[0]
    for config, filename in HF_MODEL_ID_TO_FILENAMES.values():
        if name == filename or stem == filename.rsplit(".", 1)[0]:
            return config
    return None


_DIRECT_URLS = {
    "2.0": "https://dl.fbaipublicfiles.com/segment_anything_2/072824/",
    "2.1": "https://dl.fbaipublicfiles.com/segment_anything_2/092824/",
}


class CheckpointDownloadError(RuntimeError):
    """The checkpoint is neither in the cache nor downloadable right now."""


def download_checkpoint(
    model_id: str,
    cache_dir: str | os.PathLike[str] | None = None,
    revision: str | None = None,
    local_files_only: bool | None = None,
) -> tuple[str, str]:
    """``(config name, local checkpoint path)`` for a model id, downloading if needed.

    Embedded ids (:data:`EMBEDDED_MODELS`) resolve to the packaged file, never to the network.
    """
    if model_id in EMBEDDED_MODELS:
        return EMBEDDED_MODELS[model_id][0], str(embedded_model_path(model_id))
    if model_id not in HF_MODEL_ID_TO_FILENAMES:
        known = [*HF_MODEL_ID_TO_FILENAMES, *EMBEDDED_MODELS]
        raise ValueError(f"unknown model id {model_id!r}; known ids: {', '.join(known)}")
    config_name, filename = HF_MODEL_ID_TO_FILENAMES[model_id]
    from huggingface_hub import hf_hub_download
    from huggingface_hub.constants import HF_HUB_CACHE, HF_HUB_OFFLINE
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    offline = bool(local_files_only) or HF_HUB_OFFLINE
    try:
        path = hf_hub_download(
            repo_id=model_id,
            filename=filename,
            cache_dir=Path(cache_dir) if cache_dir is not None else None,
            revision=revision,
            local_files_only=bool(local_files_only),
        )
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        version = "2.1" if "sam2.1" in model_id else "2.0"
        cache = Path(cache_dir) if cache_dir is not None else Path(HF_HUB_CACHE)
        reason = "offline mode is on and " if offline else ""
        raise CheckpointDownloadError(
            f"cannot get {filename} for {model_id}: {reason}it is not in the Hugging Face cache "
            f"({cache}) and could not be downloaded ({type(exc).__name__}).\n"
            f"Download it on a machine with network, e.g. `huggingface-cli download {model_id} "
            f"{filename}` (then copy the cache folder models--{model_id.replace('/', '--')} to "
            f"{cache}), or fetch {_DIRECT_URLS[version]}{filename} and load it with "
            f"build_sam2('{config_name}', '<path>/{filename}')."
        ) from exc
    return config_name, str(path)
