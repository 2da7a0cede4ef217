"""Which SAM 2 model the plugin uses, and the only place its predictors are built.

A :class:`ModelChoice` says which model (a released hub id, or a local checkpoint and its
config), where it runs and how precise; :func:`model_loader` turns it into a thread-safe,
load-once :data:`ModelLoader` that several image controllers share, so one model sits in memory
however many images are open. The loaded :class:`LoadedModel` carries the precision next to
the model (not as an attribute of some predictor) and builds image and video predictors from
it, so a predictor option can never be lost by copying constructor arguments. torch and
``sam2`` are imported only when a model is loaded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from psygnal import Signal

from sam2.hub import config_for_checkpoint, hub_model_ids
from sam2.video.options import TrackingOptions

if TYPE_CHECKING:
    from sam2.modeling.sam2_model import SAM2Model
    from sam2.precision import Precision, PrecisionChoice
    from sam2.sam2_image_predictor import SAM2ImagePredictor
    from sam2.sam2_video_predictor import SAM2VideoPredictor

__all__ = [
    "DEFAULT_MODEL",
    "DEMO_MODEL",
    "DEMO_MODEL_LABEL",
    "LOCAL_CHECKPOINT",
    "PROPAGATION_OPTIONS",
    "TRACKING_OPTIONS",
    "USER_MODELS",
    "LoadedModel",
    "ModelChoice",
    "ModelLoader",
    "UserModel",
    "UserModels",
    "available_devices",
    "config_for_checkpoint",
    "default_model",
    "hub_model_ids",
    "model_ids",
    "model_loader",
    "resolve_hub_id",
]

DEFAULT_MODEL = "facebook/sam2.1-hiera-tiny"  # the released model fastest on a laptop CPU
#: Shipped inside the package (no network): for trying the plugin, not for real work.
DEMO_MODEL = "napari-sam2/demo-cells"
#: How the widgets list the demo model.
DEMO_MODEL_LABEL = "demo model (synthetic cells, offline)"
LOCAL_CHECKPOINT = "local checkpoint…"

#: Propagation from the segment widget: the video builder's post-processing, and corrections
#: are added as conditioning frames, so a re-propagation keeps them.
PROPAGATION_OPTIONS = TrackingOptions.postprocessed(add_all_frames_to_correct_as_cond=True)
#: Cell tracking (widget and command line): the video builder's post-processing.
TRACKING_OPTIONS = TrackingOptions.postprocessed()


@dataclass(frozen=True)
class LoadedModel:
    """A built SAM 2 model and the precision every predictor of it runs at."""

    model: SAM2Model
    precision: Precision = "fp32"
    #: Why this precision, for the user ("auto: bf16, this CPU has bfloat16 units (AMX)").
    precision_reason: str = ""

    def image_predictor(self) -> SAM2ImagePredictor:
        """A new image predictor (clicks on one slice) sharing this model's weights."""
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        return SAM2ImagePredictor(self.model, precision=self.precision)

    def video_predictor(self, options: TrackingOptions) -> SAM2VideoPredictor:
        """A new video predictor (propagation, tracking) sharing this model's weights."""
        from sam2.sam2_video_predictor import SAM2VideoPredictor

        return SAM2VideoPredictor(self.model, options, precision=self.precision)


ModelLoader = Callable[[], LoadedModel]


@dataclass(frozen=True)
class ModelChoice:
    """A model to load: a hub id, or (``hub_id=None``) a local checkpoint and its config.

    ``config`` None means "tell it from the checkpoint's file name" (official names only).
    ``device`` None picks CUDA, then MPS, then the CPU. ``precision="bf16"`` runs clicks and
    propagation under bfloat16 autocast (about 3× faster on CPUs with bf16 units, masks
    agree with fp32's to IoU ~0.99, but several times slower where bf16 is emulated);
    ``"auto"`` (the default) picks bf16 only where the hardware computes it. ``image_size``
    overrides the model's input size (smaller is faster and coarser).
    """

    hub_id: str | None = DEFAULT_MODEL
    checkpoint: str | None = None
    config: str | None = None
    device: str | None = None
    precision: PrecisionChoice = "auto"
    image_size: int | None = None

    def load(self) -> LoadedModel:
        """Build the model (downloading a hub checkpoint if needed); slow, call it off the
        main thread. ValueError names what is missing."""
        from sam2.build_sam import build_sam2
        from sam2.configs import resolve_config

        if self.hub_id is not None:
            from sam2.hub import download_checkpoint

            config, checkpoint = download_checkpoint(self.hub_id)
        else:
            if not self.checkpoint:
                raise ValueError(
                    f"choose a checkpoint file (.pt or .safetensors) for {LOCAL_CHECKPOINT!r}"
                )
            checkpoint = self.checkpoint
            found = self.config or config_for_checkpoint(checkpoint)
            if found is None:
                raise ValueError(
                    f"cannot tell which SAM 2 model {Path(checkpoint).name!r} is from its name; "
                    "choose its config (--config on the command line, e.g. sam2.1_hiera_t)"
                )
            config = found
        resolved = resolve_config(config)
        if self.image_size:
            resolved = resolved.replace(image_size=int(self.image_size))
        model = build_sam2(resolved, checkpoint, device=self.device)
        from sam2.precision import check_precision, choose_precision

        decision = choose_precision(self.precision, model.device)
        return LoadedModel(
            model, check_precision(decision.precision, model.device), decision.reason
        )


def model_loader(choice: ModelChoice) -> ModelLoader:
    """A thread-safe, load-once loader of ``choice``: nothing is loaded until it is first
    called (in a worker thread), and every later call returns the same model.

    A checkpoint that cannot be read (:class:`~sam2.checkpoint.CheckpointError`) is not read
    again either: later calls raise the same error at once, so no click or slice reloads a
    broken file; picking the model again in the widget makes a new loader, which tries
    again. Other failures (a download that timed out) are retried by the next call.
    """
    lock = threading.Lock()
    loaded: list[LoadedModel] = []
    failed: list[str] = []

    def load() -> LoadedModel:
        from sam2.checkpoint import CheckpointError

        with lock:
            if failed:
                raise CheckpointError(failed[0])
            if not loaded:
                try:
                    loaded.append(choice.load())
                except CheckpointError as exc:
                    failed.append(str(exc))
                    raise
            return loaded[0]

    return load


def model_ids() -> list[str]:
    """Every model the widgets offer by id: the demo model, then the released ones."""
    return [DEMO_MODEL, *hub_model_ids()]


def default_model(cache_dir: str | Path | None = None) -> str:
    """The released SAM 2.1 tiny when its checkpoint is in the Hugging Face cache (default:
    huggingface_hub's), otherwise the embedded demo model: the plugin works offline on first
    use, and real weights win as soon as they are there. Looks at the cache only."""
    from huggingface_hub import try_to_load_from_cache

    from sam2.hub import HF_MODEL_ID_TO_FILENAMES

    _, filename = HF_MODEL_ID_TO_FILENAMES[DEFAULT_MODEL]
    cached = try_to_load_from_cache(DEFAULT_MODEL, filename, cache_dir=cache_dir)
    return DEFAULT_MODEL if isinstance(cached, str) else DEMO_MODEL


def resolve_hub_id(model: str) -> str:
    """The model id of an id or of a name such as ``sam2.1_hiera_tiny``, ``tiny`` or
    ``demo-cells``."""
    from sam2.configs import resolve_config
    from sam2.hub import EMBEDDED_MODELS, HF_MODEL_ID_TO_FILENAMES

    if model in HF_MODEL_ID_TO_FILENAMES or model in EMBEDDED_MODELS:
        return model
    for model_id, (config, _) in EMBEDDED_MODELS.items():
        if model == config:
            return model_id
    try:
        wanted = resolve_config(model).name
    except ValueError as exc:
        raise ValueError(
            f"unknown model {model!r}: use a hub id ({', '.join(HF_MODEL_ID_TO_FILENAMES)}) "
            "or a name such as sam2.1_hiera_tiny; for a local file use --checkpoint"
        ) from exc
    for hub_id, (config, _) in HF_MODEL_ID_TO_FILENAMES.items():
        if resolve_config(config).name == wanted:
            return hub_id
    raise ValueError(f"model {model!r} has no released checkpoint on the hub")


def available_devices() -> dict[str, bool]:
    """Which torch devices this machine has (imports torch, so call it when torch is due)."""
    import torch

    mps = getattr(torch.backends, "mps", None)
    return {
        "cpu": True,
        "cuda": bool(torch.cuda.is_available()),
        "mps": bool(mps is not None and mps.is_available()),
    }


@dataclass(frozen=True)
class UserModel:
    """A model trained in this session, as the widgets list it (``label``) and load it."""

    label: str  # "fine-tuned: <folder name>"
    choice: ModelChoice  # hub_id None, checkpoint = <folder>/model.safetensors

    @property
    def checkpoint(self) -> str:
        return self.choice.checkpoint or ""


class UserModels:
    """The models fine-tuned in this session, shared by every widget's model list.

    The fine-tuning widget :meth:`add` s a checkpoint when a run ends; every
    ``ModelControls`` listens to ``added`` and lists it at once, so no widget reaches into
    another. Adding a checkpoint already listed emits ``added`` again with the same entry
    (its weights were overwritten: a widget using it reloads).
    """

    added = Signal(object)  # UserModel
    removed = Signal(object)  # UserModel

    def __init__(self) -> None:
        self._models: list[UserModel] = []

    def add(self, checkpoint: str | Path) -> UserModel:
        """List ``checkpoint`` (a trained ``model.safetensors``, config beside it)."""
        path = str(Path(checkpoint).resolve())
        model = next((m for m in self._models if m.checkpoint == path), None)
        if model is None:
            label = f"fine-tuned: {Path(path).parent.name}"
            model = UserModel(label, ModelChoice(hub_id=None, checkpoint=path))
            self._models.append(model)
        self.added.emit(model)
        return model

    def remove(self, model: UserModel) -> None:
        """Stop listing ``model`` (its files stay)."""
        if model in self._models:
            self._models.remove(model)
            self.removed.emit(model)

    def __iter__(self) -> Iterator[UserModel]:
        return iter(list(self._models))

    def __len__(self) -> int:
        return len(self._models)


#: The session's fine-tuned models (see :class:`UserModels`).
USER_MODELS = UserModels()
