"""Which (Image, Labels) layer pairs can train a model, and turning them into training stacks.

The checks run on the main thread before any worker starts, so bad input is one notification
that names the layer, the problem and the fix, never a traceback from a training thread.
Planes without any label are left out unless clips are trained: a plane the user has not
annotated is not a plane of background.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from napari_sam2.axes import Z_LABELS, layer_array

if TYPE_CHECKING:
    from napari.layers import Image, Labels

    from sam2.training.data import LabeledStack

__all__ = ["PairArrays", "TrainingPair", "check_pair", "check_pairs", "make_pair", "pair_stacks"]


@dataclass(frozen=True, eq=False)
class TrainingPair:
    """An image (2D, or a (T|Z, Y, X) stack) and the Labels the user corrected on it."""

    image: Image
    labels: Labels

    @property
    def name(self) -> str:
        return f"{self.image.name} + {self.labels.name}"

    def same_layers(self, other: TrainingPair) -> bool:
        return self.image is other.image and self.labels is other.labels

    def arrays(self) -> PairArrays:
        """The data to train on (main thread): the labels copied, so that editing them
        during a run changes nothing, the image as it is (a lazy array stays lazy)."""
        return PairArrays(
            layer_array(self.image),
            np.array(layer_array(self.labels)),
            _axis(self.image),
            self.name,
        )


@dataclass(frozen=True)
class PairArrays:
    """A pair's data as the worker reads it (no layers cross into the worker thread)."""

    image: Any  # (T|Z, Y, X) or (Y, X), numpy or lazy
    labels: np.ndarray  # same shape, integer ids
    axis: Literal["T", "Z"]
    name: str


def make_pair(image: Image | None, labels: Labels | None) -> TrainingPair:
    """A valid pair of the chosen layers; ValueError says what is missing or wrong."""
    if image is None:
        raise ValueError(
            "Choose an Image layer to train on: open a 2D image or a (T|Z, Y, X) stack first."
        )
    if labels is None:
        raise ValueError(
            f"Choose the Labels layer with your corrected cells on {image.name!r} "
            "(one label id per cell), e.g. the one the segmentation widget wrote."
        )
    pair = TrainingPair(image, labels)
    check_pair(pair)
    return pair


def check_pair(pair: TrainingPair) -> int:
    """The number of labelled planes of a pair; ValueError says what to fix."""
    image, labels = pair.image, pair.labels
    data = layer_array(image)
    if image.rgb or image.ndim not in (2, 3):
        raise ValueError(
            f"Image {image.name!r} has shape {tuple(data.shape)}; fine-tuning takes a 2D image "
            "or a (T|Z, Y, X) stack of one channel. Split the channels or choose one plane."
        )
    label_data = np.asarray(layer_array(labels))
    if tuple(label_data.shape) != tuple(data.shape):
        raise ValueError(
            f"Labels {labels.name!r} have shape {tuple(label_data.shape)} but image "
            f"{image.name!r} has {tuple(data.shape)}; each plane needs its label plane of the "
            "same size. Choose the Labels drawn on this image (or create them from it)."
        )
    planes = _labelled_planes(label_data)
    if not planes.any():
        raise ValueError(
            f"Labels {labels.name!r} are empty (all 0): paint or correct the cells on "
            f"{image.name!r} first, one label id per cell."
        )
    return int(planes.sum())


def check_pairs(
    pairs: Sequence[TrainingPair], *, val_fraction: float, clip_frames: int | None
) -> None:
    """Every pair valid, and enough planes to hold some out for validation (and, when
    training on clips of ``clip_frames``, to cut clips from what trains)."""
    if not pairs:
        raise ValueError("Add at least one (Image, Labels) pair to train on.")
    labelled = [check_pair(pair) for pair in pairs]
    if clip_frames is None:
        if len(pairs) == 1 and labelled[0] < 2:
            raise ValueError(
                f"{pairs[0].name} has one labelled plane, which cannot be split into training "
                "and validation data. Add a second (Image, Labels) pair, or label more planes."
            )
        return
    for pair in pairs:
        planes = _num_planes(pair)
        if len(pairs) == 1:  # its last frames are held out for validation
            planes = round(planes * (1 - val_fraction))
        if planes < clip_frames:
            raise ValueError(
                f"{pair.name} leaves {planes} frame(s) to train on, too few for clips of "
                f"{clip_frames} frames. Untick 'clips' to train on single planes, or add "
                "longer stacks."
            )


def pair_stacks(pairs: Sequence[PairArrays], *, with_clips: bool) -> list[LabeledStack]:
    """Training stacks from the pairs' arrays (call from the worker: it reads the data).

    Without clips only the labelled planes are kept; with clips the whole stack is, since
    the video memory learns from consecutive frames.
    """
    from sam2.training.data import LabeledStack

    stacks = []
    for pair in pairs:
        image, labels = np.asarray(pair.image), pair.labels
        if image.ndim == 2:
            image, labels = image[None], labels[None]
        if not with_clips:
            keep = _labelled_planes(labels)
            image, labels = image[keep], labels[keep]
        stacks.append(LabeledStack(image, labels, pair.axis, pair.name))
    return stacks


def _labelled_planes(labels: np.ndarray) -> np.ndarray:
    """(T,) bool: which planes hold any label ((Y, X) counts as one plane)."""
    stack = labels[None] if labels.ndim == 2 else labels
    return np.asarray(stack.reshape(stack.shape[0], -1).any(axis=1))


def _num_planes(pair: TrainingPair) -> int:
    shape = layer_array(pair.image).shape
    return 1 if len(shape) == 2 else int(shape[0])


def _axis(image: Image) -> Literal["T", "Z"]:
    if image.ndim == 3 and str(image.axis_labels[0]).lower() in Z_LABELS:
        return "Z"
    return "T"
