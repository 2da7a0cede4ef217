"""A few frames' image features per video session, so a run encodes each frame once.

Encoding a frame is by far the most expensive step of tracking (the Hiera trunk; memory
attention and the heads are small next to it). One run touches a frame several times: a click
decodes the object there, :meth:`~sam2.video.engine.VideoEngine.preflight` encodes the prompt's
memory from the same features, propagation passes the frame again for objects prompted
elsewhere, and a forward and a reverse pass share their start. A one-frame cache recomputed
all of these whenever another frame came in between; this one keeps a few frames (about
17 MB each at 1024², fp32, with the position encodings shared by the encoder) and, when full,
gives up a frame nobody prompted before a prompted one.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection

from sam2.modeling.sam2_model import ImageFeatures

__all__ = ["FeatureCache"]


class FeatureCache:
    """Image features of up to ``maxsize`` frames, least recently used dropped first.

    ``put(..., keep=frames)`` names frames that are likely needed again (the prompted ones):
    they are dropped only when every cached frame is one of them, so streaming through a
    stack cannot push a prompted frame out, while the cache stays bounded whatever the caller
    names.
    """

    def __init__(self, maxsize: int = 4) -> None:
        if int(maxsize) < 1:
            raise ValueError(f"a feature cache holds at least 1 frame, got maxsize={maxsize}")
        self.maxsize = int(maxsize)
        self._entries: OrderedDict[int, ImageFeatures] = OrderedDict()  # LRU first

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, frame_idx: object) -> bool:
        return frame_idx in self._entries

    @property
    def frames(self) -> list[int]:
        """Cached frames, least recently used first."""
        return list(self._entries)

    def get(self, frame_idx: int) -> ImageFeatures | None:
        """The frame's features (now the most recently used), or None."""
        features = self._entries.get(frame_idx)
        if features is not None:
            self._entries.move_to_end(frame_idx)
        return features

    def put(self, frame_idx: int, features: ImageFeatures, *, keep: Collection[int] = ()) -> None:
        """Cache a frame's features, dropping others beyond ``maxsize`` (never this frame)."""
        self._entries[frame_idx] = features
        self._entries.move_to_end(frame_idx)
        while len(self._entries) > self.maxsize:
            older = list(self._entries)[:-1]
            drop = next((t for t in older if t not in keep), older[0])
            del self._entries[drop]

    def clear(self) -> None:
        self._entries.clear()
