"""A small live plot of a training run: loss per step and validation click IoU.

Painted with QPainter (two polylines over one step axis) so the plugin needs no plotting
library. The loss is drawn on a log scale between its lowest and highest value (the first
steps of a run are often tens of times the rest, which would flatten a linear curve); the
IoU on a fixed [0, 1] scale, so that runs compare by eye.
"""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPaintEvent, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

__all__ = ["TrainingPlot"]

LOSS_COLOR = QColor(255, 160, 60)
IOU_COLOR = QColor(80, 200, 255)
MARGIN = 6.0
LEGEND_HEIGHT = 16.0


class TrainingPlot(QWidget):
    """Loss (orange) and validation click IoU (blue) against the step, from 0 to ``total``."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.total = 1
        self.losses: list[tuple[int, float]] = []
        self.ious: list[tuple[int, float]] = []
        self.setMinimumHeight(130)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("Orange: training loss per step. Blue: validation one-click IoU (0–1).")

    def reset(self, total: int) -> None:
        """Forget the curves; the step axis now runs from 0 to ``total``."""
        self.total = max(int(total), 1)
        self.losses.clear()
        self.ious.clear()
        self.update()

    def add_loss(self, step: int, loss: float) -> None:
        self.losses.append((step, float(loss)))
        self.update()

    def add_iou(self, step: int, iou: float) -> None:
        self.ious.append((step, float(iou)))
        self.update()

    def paintEvent(self, event: QPaintEvent | None) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        area = QRectF(self.rect()).adjusted(MARGIN, MARGIN + LEGEND_HEIGHT, -MARGIN, -MARGIN)
        painter.setPen(QPen(self.palette().mid().color(), 1))
        painter.drawRect(area)
        logs = [(step, math.log10(max(loss, 1e-6))) for step, loss in self.losses]
        low = min((v for _, v in logs), default=0.0)
        high = max((v for _, v in logs), default=1.0)
        span = high - low or 1.0
        loss_points = [(step, (v - low) / span) for step, v in logs]
        self._polyline(painter, area, loss_points, LOSS_COLOR, dots=False)
        self._polyline(painter, area, self.ious, IOU_COLOR, dots=True)
        self._legend(painter)
        painter.end()

    def _polyline(
        self,
        painter: QPainter,
        area: QRectF,
        points: list[tuple[int, float]],
        color: QColor,
        *,
        dots: bool,
    ) -> None:
        """Points at (step / total, value in [0, 1]) of ``area``; ``dots`` marks each point
        (validations are few), and a lone point is always a dot."""
        if not points:
            return
        poly = QPolygonF(
            [
                QPointF(
                    area.left() + area.width() * step / self.total,
                    area.bottom() - area.height() * min(max(value, 0.0), 1.0),
                )
                for step, value in points
            ]
        )
        painter.setPen(QPen(color, 2))
        painter.drawPolyline(poly)
        if dots or poly.count() == 1:
            for i in range(poly.count()):
                painter.drawEllipse(poly.at(i), 2.5, 2.5)

    def _legend(self, painter: QPainter) -> None:
        width = self.width() / 2
        loss = f"loss (log) {self.losses[-1][1]:.3f}" if self.losses else "loss (log)"
        iou = "validation click IoU"
        if self.ious:
            iou += f" {self.ious[-1][1]:.3f} (best {max(v for _, v in self.ious):.3f})"
        for color, text, left in ((LOSS_COLOR, loss, 0.0), (IOU_COLOR, iou, width * 0.6)):
            painter.setPen(QPen(color, 1))
            box = QRectF(MARGIN + left, 0, self.width() - left - MARGIN, LEGEND_HEIGHT + MARGIN)
            painter.drawText(box, int(Qt.AlignmentFlag.AlignVCenter), text)
