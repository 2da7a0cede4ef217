"""The seed frame's objects: the seed labels, plus one object per click or box prompt.

Prompted objects only take pixels no seed label holds, so a click on a painted cell cannot
steal it; each gets its prompt's ``track_id`` or the next id above every label so far.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from napari_sam2.tracking.sources import MaskSource, PromptSeed

__all__ = ["seed_frame_labels"]


def seed_frame_labels(
    seed: np.ndarray,
    prompts: Sequence[PromptSeed],
    source: MaskSource,
    frame_idx: int,
    min_area: int,
) -> np.ndarray:
    """The (Y, X) int64 labels of frame ``frame_idx``: ``seed`` with the prompts' objects.

    A prompt whose free region is under ``min_area`` pixels, or that asks for a taken id, is
    a ValueError that names the prompt and the fix.
    """
    frame = np.asarray(seed, dtype=np.int64).copy()
    for i, prompt in enumerate(prompts):
        mask = np.asarray(source.segment(frame_idx, prompt), dtype=bool) & (frame == 0)
        if mask.sum() < min_area:
            raise ValueError(
                f"prompt {i} selects no free region of at least {min_area} pixels on frame "
                f"{frame_idx}; move the click or box onto an untracked cell"
            )
        track_id = prompt.track_id if prompt.track_id is not None else int(frame.max()) + 1
        if (frame == track_id).any():
            raise ValueError(f"prompt {i} asks for track id {track_id}, which is taken")
        frame[mask] = track_id
    return frame
