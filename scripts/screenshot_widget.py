"""Screenshot of the SAM 2 segmentation widget at work, for the docs.

Run headless with ``xvfb-run -a python scripts/screenshot_widget.py [output.png]``. It opens the
sample time-lapse, adds the widget from the plugin manifest, clicks two objects on frame 5
with a small random-weight model (no download), propagates them to frame 12, and saves the
whole window showing frame 8.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import napari
import numpy as np
from qtpy.QtWidgets import QApplication

from sam2.synthetic import make_timelapse

FRAME = 5
OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "segment-widget.png"


def fast_predictor() -> Any:
    """Random weights at 256 px: shows the workflow, not SAM 2's accuracy.

    The seed picks random weights whose clicked and tracked masks stay small (most random
    weights give empty or full-frame masks), so the picture shows the workflow.
    """
    import torch

    from sam2.build_sam import build_sam2
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    torch.manual_seed(26)
    model = build_sam2("tiny", device="cpu", hydra_overrides_extra=["++model.image_size=256"])
    return SAM2ImagePredictor(model)


def cell_centres(frame: int) -> list[tuple[float, float]]:
    """(y, x) centres of the sample's cells on ``frame``, from its ground truth."""
    labels = make_timelapse().labels[frame]
    centres = []
    for track_id in np.unique(labels)[1:]:
        ys, xs = np.nonzero(labels == track_id)
        centres.append((float(ys.mean()), float(xs.mean())))
    return centres


def wait_until_idle(widget: Any, timeout: float = 120.0) -> None:
    app = QApplication.instance()
    assert app is not None
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        app.processEvents()
        if not any(c.busy or c.propagating for c in widget._controllers.values()):
            break
        time.sleep(0.02)
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)


def main(output: Path) -> None:
    viewer = napari.Viewer(title="napari-sam2")
    viewer.window._qt_window.resize(1500, 1150)
    viewer.open_sample("napari-sam2", "cells_timelapse")
    _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2 segmentation")
    widget.set_model_factory(fast_predictor)
    viewer.dims.set_current_step(0, FRAME)
    widget._on_add_points()
    wait_until_idle(widget)
    controller = next(iter(widget._controllers.values()))
    points = controller.points_layer
    (y1, x1), (y2, x2), *_ = cell_centres(FRAME)
    points.add([FRAME, y1, x1])
    points.add([FRAME, y1 + 4, x1 - 3])
    wait_until_idle(widget)
    widget._on_new_object()
    points.add([FRAME, y2, x2])
    points.selected_data = set()
    controller._on_toggle_key(points)  # what pressing T does: the next point is negative
    points.add([FRAME, y2 - 25, x2 + 25])
    points.selected_data = set()
    wait_until_idle(widget)
    widget._range_check.setChecked(True)
    widget._first_spin.setValue(FRAME)
    widget._last_spin.setValue(12)
    widget._on_propagate()
    wait_until_idle(widget)
    labels = controller.labels_layer.data
    print("object pixels per frame:", {t: int((labels[t] > 0).sum()) for t in range(FRAME, 13)})
    viewer.dims.set_current_step(0, 8)
    viewer.layers.selection.active = points
    wait_until_idle(widget)
    output.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(output), canvas_only=False)
    print(f"saved {output}; status: {widget._status_label.text()}")
    viewer.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT)
