"""FeatureCache alone: least recently used out first, prompted frames kept, always bounded."""

from __future__ import annotations

import pytest
import torch

from sam2.modeling.sam2_model import ImageFeatures
from sam2.video.features import FeatureCache


def feats(t: int) -> ImageFeatures:
    """Features whose single level holds the value ``t``."""
    x = torch.full((1, 1, 1, 1), float(t))
    return ImageFeatures(backbone_fpn=[x], vision_pos_enc=[x])


def filled(frames: list[int], maxsize: int = 4) -> FeatureCache:
    cache = FeatureCache(maxsize)
    for t in frames:
        cache.put(t, feats(t))
    return cache


def test_hit_returns_what_was_put_and_miss_is_none() -> None:
    cache = filled([3])
    hit = cache.get(3)
    assert hit is not None and float(hit.vision_features) == 3.0
    assert cache.get(4) is None and 3 in cache and 4 not in cache and len(cache) == 1


def test_least_recently_used_frame_goes_first() -> None:
    """A get counts as a use: the frame read last survives the next put."""
    cache = filled([0, 1, 2, 3])
    cache.get(0)
    cache.put(4, feats(4))
    assert cache.frames == [2, 3, 0, 4]


def test_put_again_replaces_and_refreshes() -> None:
    cache = filled([0, 1])
    cache.put(0, feats(10))
    assert cache.frames == [1, 0]
    assert float(cache.get(0).vision_features) == 10.0  # type: ignore[union-attr]


def test_kept_frames_outlive_streaming_frames() -> None:
    """Streaming through a stack does not push out the prompted frames named in ``keep``."""
    cache = FeatureCache(4)
    for t in (3, 9, 6):
        cache.put(t, feats(t), keep={3, 6, 9})
    for t in range(10, 30):
        cache.put(t, feats(t), keep={3, 6, 9})
    assert cache.frames == [3, 9, 6, 29]


def test_bounded_even_when_every_frame_is_kept() -> None:
    """When all cached frames are to be kept the oldest of them goes, never the new one."""
    cache = FeatureCache(2)
    for t in range(5):
        cache.put(t, feats(t), keep=set(range(5)))
    assert cache.frames == [3, 4]
    cache.put(7, feats(7), keep={3, 4})
    assert cache.frames == [4, 7]  # the new frame stays even though it is not in keep


def test_clear_and_bad_size() -> None:
    cache = filled([0, 1])
    cache.clear()
    assert len(cache) == 0 and cache.get(0) is None
    with pytest.raises(ValueError, match="at least 1 frame"):
        FeatureCache(0)
