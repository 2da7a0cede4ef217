"""Reference-compatible ``sam2.utils.misc``: connected components, hole filling, JPEG frames.

Unlike the reference, connected components work on every device (no CUDA-only extension),
so :func:`fill_holes_in_mask_scores` never skips its work with a warning.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from sam2.connected_components import connected_components
from sam2.frames.jpeg import JpegFolderSource
from sam2.postprocess import fill_holes
from sam2.transforms import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["fill_holes_in_mask_scores", "get_connected_components", "load_video_frames"]


def get_connected_components(mask: Tensor) -> tuple[Tensor, Tensor]:
    """(N, 1, H, W) binary mask -> int32 ``labels`` and per-pixel component ``counts``.

    Both are (N, 1, H, W) and 0 on the background (8-connectivity). Label values identify
    components but, as with any labelling, are not otherwise meaningful.
    """
    return connected_components(mask)


def fill_holes_in_mask_scores(mask: Tensor, max_area: float) -> Tensor:
    """Background components (score <= 0) of at most ``max_area`` pixels get the score 0.1.

    ``mask`` is (N, 1, H, W) scores or logits; a new tensor is returned.
    """
    if not max_area > 0:
        raise ValueError(f"max_area must be positive, got {max_area}")
    return fill_holes(mask, max_area, threshold=0.0, fill=0.1)


def load_video_frames(
    video_path: str | os.PathLike[str],
    image_size: int,
    offload_video_to_cpu: bool,
    img_mean: Sequence[float] = IMAGENET_MEAN,
    img_std: Sequence[float] = IMAGENET_STD,
    async_loading_frames: bool = False,
    compute_device: torch.device | str = "cuda",
) -> tuple[Any, int, int]:
    """A JPEG folder's frames as ``(images, video_height, video_width)``.

    ``images`` is a (T, 3, S, S) float32 tensor, ImageNet-normalised, on ``compute_device``
    unless ``offload_video_to_cpu``. With ``async_loading_frames`` it is instead a lazy,
    indexable sequence of (3, S, S) CPU tensors (a :class:`sam2.frames.JpegFolderSource`)
    that reads frames on demand. Video files are not decoded here (the reference needs decord
    for them): extract the frames to a JPEG folder first.
    """
    if tuple(img_mean) != IMAGENET_MEAN or tuple(img_std) != IMAGENET_STD:
        raise ValueError(
            f"only the ImageNet mean {IMAGENET_MEAN} and std {IMAGENET_STD} that SAM 2 was "
            f"trained with are supported, got mean {tuple(img_mean)} and std {tuple(img_std)}"
        )
    if not (isinstance(video_path, str | os.PathLike) and os.path.isdir(video_path)):
        raise NotImplementedError(
            f"{video_path!r} is not a folder of JPEG frames; decode a video first, e.g. "
            "`ffmpeg -i video.mp4 -q:v 2 -start_number 0 frames/%05d.jpg`"
        )
    source = JpegFolderSource(video_path, image_size, prefetch=0 if not async_loading_frames else 2)
    height, width = source.orig_hw
    if async_loading_frames:
        return source, height, width
    with source:
        images = torch.stack([source.get(i) for i in range(len(source))])
    if not offload_video_to_cpu:
        images = images.to(compute_device)
    return images, height, width
