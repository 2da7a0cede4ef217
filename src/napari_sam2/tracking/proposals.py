"""Where new cells come from: region proposals on frames, for entry detection.

A :class:`Proposer` looks at one raw frame and returns candidate cell masks; the engine keeps
those that no tracked object covers (:func:`~napari_sam2.tracking.events.new_object_masks`).
Two kinds ship: SAM 2's automatic mask generator ("segment everything"), and a model-free
threshold proposer for fluorescence images (bright cells on a dark background), which is fast
and needs no weights.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol, get_args, runtime_checkable

import numpy as np

__all__ = [
    "ENTRY_DETECTORS",
    "AutoMaskProposer",
    "EntryDetector",
    "Proposer",
    "ThresholdProposer",
    "make_proposer",
    "to_rgb8",
]

#: How new cells are found: bright regions, SAM 2's automatic masks, or not at all.
EntryDetector = Literal["threshold", "sam2", "none"]
ENTRY_DETECTORS: tuple[EntryDetector, ...] = get_args(EntryDetector)


@runtime_checkable
class Proposer(Protocol):
    """Candidate cell masks on a frame: ``(frame (Y, X), covered (Y, X) bool) -> [mask]``."""

    def __call__(self, frame: np.ndarray, covered: np.ndarray) -> list[np.ndarray]: ...


def to_rgb8(frame: np.ndarray, percentiles: tuple[float, float] = (0.5, 99.8)) -> np.ndarray:
    """A (Y, X) frame of any dtype as (Y, X, 3) uint8, stretched between robust percentiles."""
    data = np.asarray(frame, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError(f"expected a single-channel (Y, X) frame, got shape {data.shape}")
    lo, hi = np.percentile(data, percentiles)
    scaled = np.clip((data - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    gray = np.round(scaled * 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


class ThresholdProposer:
    """Bright regions above an Otsu (or given) threshold, outside tracked cells.

    The frame is smoothed, thresholded, cleared of tracked pixels and of thin rims around them
    (a morphological opening), and split into connected regions.
    """

    def __init__(
        self, threshold: float | None = None, sigma: float = 1.0, opening: int = 2
    ) -> None:
        self.threshold = threshold
        self.sigma = float(sigma)
        self.opening = int(opening)

    def __call__(self, frame: np.ndarray, covered: np.ndarray) -> list[np.ndarray]:
        from scipy import ndimage
        from skimage.filters import threshold_otsu
        from skimage.morphology import disk

        data = np.asarray(frame, dtype=np.float64)
        if self.sigma > 0:
            data = ndimage.gaussian_filter(data, self.sigma)
        level = self.threshold if self.threshold is not None else float(threshold_otsu(data))
        foreground = (data > level) & ~ndimage.binary_dilation(covered, iterations=1)
        if self.opening > 0:
            foreground = ndimage.binary_opening(foreground, structure=disk(self.opening))
        labelled, n = ndimage.label(foreground)
        return [labelled == i for i in range(1, n + 1)]


class AutoMaskProposer:
    """Masks from SAM 2's automatic mask generator (anything with ``generate(rgb) -> records``).

    Records are used best first (``predicted_iou``); the frame is shown to the generator as
    8-bit RGB stretched between robust percentiles, as a person would view it.
    """

    def __init__(self, generator: Any) -> None:
        if not callable(getattr(generator, "generate", None)):
            raise TypeError(
                f"{type(generator).__name__} has no generate(image) method; pass a "
                "SAM2AutomaticMaskGenerator (or any object with one)"
            )
        self.generator = generator

    @classmethod
    def from_model(cls, model: Any, **options: Any) -> AutoMaskProposer:
        """A proposer around ``SAM2AutomaticMaskGenerator(model, **options)``."""
        try:
            from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
        except ImportError as exc:  # pragma: no cover - depends on the installed sam2
            raise ImportError(
                "sam2.automatic_mask_generator is not available in this installation; use "
                "ThresholdProposer for entry detection instead"
            ) from exc
        return cls(SAM2AutomaticMaskGenerator(model, **options))

    def __call__(self, frame: np.ndarray, covered: np.ndarray) -> list[np.ndarray]:
        records = self.generator.generate(to_rgb8(frame))
        key: Callable[[dict[str, Any]], float] = lambda r: -float(r.get("predicted_iou", 0.0))  # noqa: E731
        return [np.asarray(r["segmentation"], dtype=bool) for r in sorted(records, key=key)]


def make_proposer(entries: EntryDetector, model: Any = None) -> Proposer | None:
    """The proposer of an entry detector by name; ``"sam2"`` needs the SAM 2 ``model``.

    The command line and the napari widget both pick their detector here, so the same name
    means the same proposals everywhere.
    """
    if entries == "none":
        return None
    if entries == "threshold":
        return ThresholdProposer()
    if entries == "sam2":
        if model is None:
            raise ValueError("entry detection with 'sam2' needs a SAM 2 model")
        return AutoMaskProposer.from_model(model)
    raise ValueError(f"unknown entry detector {entries!r}; choose one of {list(ENTRY_DETECTORS)}")
