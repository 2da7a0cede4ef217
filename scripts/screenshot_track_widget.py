"""Screenshot of the SAM 2 cell tracking widget after a run, for the docs.

Run headless with ``xvfb-run -a python scripts/screenshot_track_widget.py [output.png]``. It
opens a synthetic time-lapse whose cells move, divide and enter, seeds the cells of frame 0,
adds the widget from the plugin manifest, tracks to the end, selects the first division in the
list and saves the whole window a few frames after it.

Nothing is downloaded: the cells are tracked by the embedded demo model, chosen in the
widget's model list as a user would. ``--ground-truth`` tracks with a stand-in source that
follows the synthetic ground truth instead (plugged in through the controller's
``mask_source_factory`` hook), which shows every division in the list.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import napari
import numpy as np
from qtpy.QtWidgets import QApplication

from sam2.synthetic_tracking import make_tracking_timelapse

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the tests' ground-truth source, without installing tests/
from tests.tracking.ground_truth import GroundTruthMaskSource  # noqa: E402

OUTPUT = REPO / "docs" / "images" / "track-widget.png"


class GroundTruthSource(GroundTruthMaskSource):
    """The tests' ground-truth mask source, a little slower per frame so the run looks like
    one (daughters are followed as one mask, as SAM 2 does)."""

    def track(self, frame_idx: int) -> dict[Any, np.ndarray]:
        time.sleep(0.05)
        return super().track(frame_idx)


def wait_until_idle(widget: Any, timeout: float = 600.0) -> None:
    app = QApplication.instance()
    assert app is not None
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        app.processEvents()
        if not widget.controller.running:
            break
        time.sleep(0.02)
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)


def main(output: Path, ground_truth: bool) -> None:
    data = make_tracking_timelapse(n_frames=24, shape=(192, 192), seed=0)
    viewer = napari.Viewer(title="napari-sam2")
    viewer.window._qt_window.resize(1500, 1150)
    viewer.add_image(data.image, name="cells", axis_labels=("t", "y", "x"))
    seeds = viewer.add_labels(data.labels[0].astype(np.uint16), name="seeds (frame 0)")
    viewer.dims.set_current_step(0, 0)
    _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2 cell tracking")
    if ground_truth:
        widget.controller.mask_source_factory = lambda inputs: GroundTruthSource(data)
    else:
        from napari_sam2.models import DEMO_MODEL

        combo = widget._model_box.model_combo
        combo.setCurrentIndex(combo.findData(DEMO_MODEL))
    widget._entry_every_spin.setValue(1)
    widget._on_track()
    wait_until_idle(widget)
    seeds.visible = False
    widget._divisions_list.setCurrentRow(0)  # goes to the division's frame
    division = widget.controller.divisions()[0] if widget.controller.divisions() else None
    viewer.dims.set_current_step(0, (division.frame if division else 0) + 3)
    viewer.layers.selection.active = widget.controller.labels_layer
    wait_until_idle(widget)
    viewer.reset_view()  # the dock took canvas width: fit the whole field again
    wait_until_idle(widget)
    output.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(output), canvas_only=False)
    lineage = widget.controller.lineage
    print(f"saved {output}; {len(lineage or [])} tracks; status: {widget._status_label.text()}")
    viewer.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", type=Path, default=OUTPUT)
    parser.add_argument(
        "--ground-truth", action="store_true", help="track with the ground-truth stand-in"
    )
    args = parser.parse_args()
    main(args.output, args.ground_truth)
