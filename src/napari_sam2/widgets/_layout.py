"""Small layout helpers shared by the dock widgets."""

from __future__ import annotations

from qtpy.QtWidgets import QHBoxLayout, QWidget

__all__ = ["row"]


def row(*widgets: QWidget) -> QWidget:
    """``widgets`` side by side in one borderless widget, for one line of a form."""
    container = QWidget()
    layout = QHBoxLayout(container)
    layout.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        layout.addWidget(widget)
    return container
