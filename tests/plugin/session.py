"""A viewer with a sample opened and the SAM 2 widget added through the manifest, for GUI tests."""

from __future__ import annotations

from typing import Any

from napari.layers import Labels, Points
from napari.utils.notifications import NotificationSeverity, notification_manager

from napari_sam2.segment.controller import SegmentController
from napari_sam2.segment.widget import SegmentWidget

WAIT_MS = 60_000  # model load + embedding on 2 shared CPU cores


class Session:
    """A viewer with a sample opened and the widget added through the manifest."""

    def __init__(self, viewer: Any, widget: SegmentWidget, qtbot: Any) -> None:
        self.viewer, self.widget, self.qtbot = viewer, widget, qtbot

    @property
    def controller(self) -> SegmentController:
        controller = self.widget._controller(notify=False)
        assert controller is not None
        return controller

    @property
    def points(self) -> Points:
        points = self.controller.points_layer
        assert points is not None
        return points

    @property
    def labels(self) -> Labels:
        labels = self.controller.labels_layer
        assert labels is not None
        return labels

    def wait(self) -> None:
        """Wait until no embedding worker runs (its result is written before it finishes)."""
        self.qtbot.waitUntil(lambda: not self.controller.busy, timeout=WAIT_MS)

    def click(self, *coords: float) -> None:
        """What a click in 'add' mode does: append a point, then let live mode segment."""
        self.points.add(list(coords))
        self.wait()


def errors_after(start: int) -> list[str]:
    """Messages of the error notifications shown since record ``start``."""
    return [
        str(n.message)
        for n in notification_manager.records[start:]
        if n.severity == NotificationSeverity.ERROR
    ]


def on_frame(session: Session, t: int) -> None:
    """Move to frame ``t`` and press Add points (its embedding is computed meanwhile)."""
    session.viewer.dims.set_current_step(0, t)
    session.widget._on_add_points()
    session.wait()
