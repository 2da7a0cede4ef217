"""8-connected components with per-pixel areas: native extension, or scikit-image.

Hole filling and sprinkle removal (``sam2.postprocess``) need, for every pixel, the area of
its 8-connected component. The optional extension ``sam2._ext`` (``csrc/``) computes them
natively for CPU tensors, and for CUDA tensors when built with CUDA; where it is not built,
scikit-image gives the same partition and areas on the host. Which path runs is logged once
(logger ``sam2.connected_components``, INFO), and ``SAM2_DISABLE_EXTENSION=1`` or
``use_extension=False`` forces the fallback.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import threading
from types import ModuleType

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "DISABLE_ENV",
    "connected_components",
    "extension_available",
    "load_extension",
]

logger = logging.getLogger(__name__)

DISABLE_ENV = "SAM2_DISABLE_EXTENSION"
_BUILD_HINT = "build it with `pip install --no-build-isolation -e .`, see csrc/README.md"
_logged: set[str] = set()


def _log_once(message: str) -> None:
    if message not in _logged:
        _logged.add(message)
        logger.info(message)


def _disabled_by_environment() -> bool:
    return os.environ.get(DISABLE_ENV, "").strip() not in ("", "0")


_import_lock = threading.Lock()


def _import_extension() -> tuple[ModuleType | None, str]:
    """The imported extension, or None and why not."""
    with _import_lock:  # napari workers may ask concurrently; import and register once
        return _import_once()


@functools.cache
def _import_once() -> tuple[ModuleType | None, str]:
    try:
        module = importlib.import_module("sam2._ext")
    except (ImportError, OSError) as error:  # not built, or built against another torch
        return None, f"{type(error).__name__}: {error}"
    # register_fake is torch >= 2.4; impl_abstract is its earlier name
    register = getattr(torch.library, "register_fake", None) or torch.library.impl_abstract

    # Shapes for torch.compile's fake tensors: outputs look like the mask, in int32.
    @register("sam2_ext::connected_components")
    def _fake(mask: Tensor) -> tuple[Tensor, Tensor]:
        return torch.empty_like(mask, dtype=torch.int32), torch.empty_like(mask, dtype=torch.int32)

    return module, ""


def extension_available() -> bool:
    """Whether the compiled extension ``sam2._ext`` imports (ignores ``SAM2_DISABLE_EXTENSION``)."""
    return _import_extension()[0] is not None


def load_extension() -> ModuleType:
    """The compiled extension; RuntimeError with the import error when it is not usable."""
    module, reason = _import_extension()
    if module is None:
        raise RuntimeError(f"the extension sam2._ext is not available ({reason}); {_BUILD_HINT}")
    return module


def connected_components(
    mask: Tensor, *, use_extension: bool | None = None
) -> tuple[Tensor, Tensor]:
    """8-connected components of a (N, 1, H, W) mask (bool, or non-zero = foreground).

    Returns ``labels`` (int32: 0 for background, > 0 inside a component, one value per
    component of an image) and ``areas`` (int32: each pixel's component size, 0 for background),
    on the mask's device. Both paths give the same partition and areas; the label values
    themselves differ (the extension uses 1 + the raster index of a component's first pixel,
    scikit-image consecutive numbers). ``use_extension``: None picks the extension when it is
    built and not disabled by ``SAM2_DISABLE_EXTENSION``; True requires it (RuntimeError if it
    is missing); False forces the scikit-image fallback.
    """
    if mask.ndim != 4 or mask.shape[1] != 1:
        raise ValueError(
            f"connected_components expects a (N, 1, H, W) mask, got shape {tuple(mask.shape)}"
        )
    if mask.dtype not in (torch.bool, torch.uint8):
        mask = mask != 0
    if use_extension:
        return _extension_components(load_extension(), mask)
    if use_extension is not None:
        reason = "use_extension=False"
    elif _disabled_by_environment():
        reason = f"{DISABLE_ENV} is set"
    else:
        module, reason = _import_extension()
        if module is not None:
            return _extension_components(module, mask)
    _log_once(f"connected components: scikit-image fallback (extension not used: {reason})")
    return _fallback_components(mask)


def _extension_components(module: ModuleType, mask: Tensor) -> tuple[Tensor, Tensor]:
    device = mask.device
    op = torch.ops.sam2_ext.connected_components
    if device.type == "cpu" or (device.type == "cuda" and module.with_cuda):
        _log_once(f"connected components: C++ extension ({device.type} kernel)")
        labels, areas = op(mask)
        return labels, areas
    _log_once(
        f"connected components: C++ extension through the host for {device.type} tensors "
        f"(no {device.type} kernel built)"
    )
    labels, areas = op(mask.cpu())
    return labels.to(device), areas.to(device)


def _fallback_components(mask: Tensor) -> tuple[Tensor, Tensor]:
    from skimage.measure import label

    host = mask.detach().to("cpu", torch.bool).numpy()
    labels = np.zeros(host.shape, dtype=np.int32)
    areas = np.zeros(host.shape, dtype=np.int32)
    if host.size > 0:
        for n in range(host.shape[0]):
            image_labels = label(host[n, 0], connectivity=2)  # 0 = background, then 1, 2, ...
            sizes = np.bincount(image_labels.ravel()).astype(np.int32)
            sizes[0] = 0
            labels[n, 0] = image_labels
            areas[n, 0] = np.take(sizes, image_labels)
    return torch.from_numpy(labels).to(mask.device), torch.from_numpy(areas).to(mask.device)
