"""The reference video predictor's frame loading (JPEG folder), for parity of our frame sources."""

from __future__ import annotations

import numpy as np

from sam2.utils.misc import load_video_frames


def load_jpeg_folder(
    inputs: dict[str, np.ndarray], folder: str, image_size: int
) -> dict[str, np.ndarray]:
    """(T, 3, S, S) float32 frames and the (H, W) the reference reports for a JPEG folder."""
    images, height, width = load_video_frames(folder, image_size, offload_video_to_cpu=True)
    return {"images": images.numpy(), "hw": np.array([height, width])}
