"""Dock widgets: Qt controls that forward to the controllers (no model logic here)."""

from napari_sam2.widgets.segment import SegmentWidget

__all__ = ["SegmentWidget"]
