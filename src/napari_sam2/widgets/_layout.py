"""Small pieces shared by the dock widgets: form rows and boxes, a spin box, and the dock that
notices its close."""

from __future__ import annotations

from qtpy.QtCore import QEvent
from qtpy.QtGui import QCloseEvent
from qtpy.QtWidgets import (
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QSpinBox,
    QWidget,
)

__all__ = ["DockWidget", "form_box", "row", "spin_box"]


class DockWidget(QWidget):
    """A dock widget that calls ``_shutdown`` once when it is closed or removed.

    napari removes a closed dock widget by un-parenting it (no close event), so both paths
    end here: the widget stops listening to layers and stops its workers, and nothing is
    written behind a closed widget.
    """

    _closed = False

    def event(self, event: QEvent | None) -> bool:
        if event is not None and event.type() == QEvent.Type.ParentChange and not self.parent():
            self._close_once()
        return super().event(event)

    def closeEvent(self, event: QCloseEvent | None) -> None:
        self._close_once()
        super().closeEvent(event)

    def _close_once(self) -> None:
        if not self._closed:
            self._closed = True
            self._shutdown()

    def _shutdown(self) -> None:
        """Stop listening and working; called once."""


def row(*widgets: QWidget) -> QWidget:
    """``widgets`` side by side in one borderless widget, for one line of a form."""
    container = QWidget()
    layout = QHBoxLayout(container)
    layout.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        layout.addWidget(widget)
    return container


def form_box(title: str, *rows: tuple[str, QWidget] | QWidget) -> QGroupBox:
    """A titled group of form rows: ``(label, widget)`` pairs, or a widget spanning the row."""
    box = QGroupBox(title)
    form = QFormLayout(box)
    for entry in rows:
        if isinstance(entry, tuple):
            form.addRow(*entry)
        else:
            form.addRow(entry)
    return box


def fraction_box(
    low: float, high: float, value: float, prefix: str = "", suffix: str = "", step: float = 0.05
) -> QDoubleSpinBox:
    """A spin box for a fraction from ``low`` to ``high`` showing ``value``."""
    spin = QDoubleSpinBox()
    spin.setRange(low, high)
    spin.setSingleStep(step)
    spin.setValue(value)
    spin.setPrefix(prefix)
    spin.setSuffix(suffix)
    return spin


def spin_box(low: int, high: int, value: int, suffix: str = "", prefix: str = "") -> QSpinBox:
    """An integer spin box from ``low`` to ``high`` showing ``value``."""
    spin = QSpinBox()
    spin.setRange(low, high)
    spin.setValue(value)
    spin.setSuffix(suffix)
    spin.setPrefix(prefix)
    return spin
