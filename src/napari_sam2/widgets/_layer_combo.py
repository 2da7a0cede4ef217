"""A combo box of the viewer's layers of one type that follows the layer list."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qtpy.QtWidgets import QComboBox

if TYPE_CHECKING:
    import napari
    from napari.layers import Layer

__all__ = ["LayerCombo"]


class LayerCombo(QComboBox):
    """The viewer's layers of one type, led by an optional "create a new one" entry (None).

    Follows insertions, removals, moves and renames, keeping the chosen layer selected.
    """

    def __init__(
        self, viewer: napari.viewer.Viewer, layer_type: type[Layer], new_text: str | None = None
    ) -> None:
        super().__init__()
        self._viewer = viewer
        self._type = layer_type
        self._new_text = new_text
        self._layers: list[Layer | None] = []
        events = viewer.layers.events
        for emitter in (events.inserted, events.removed, events.moved):
            emitter.connect(self.refresh)
        events.inserted.connect(lambda event: event.value.events.name.connect(self.refresh))
        for layer in viewer.layers:
            layer.events.name.connect(self.refresh)
        self.refresh()

    @property
    def layer(self) -> Any:
        """The chosen layer; None for the "new" entry or an empty list."""
        index = self.currentIndex()
        return self._layers[index] if 0 <= index < len(self._layers) else None

    def set_layer(self, layer: Layer | None) -> None:
        """Select ``layer`` (None: the "new" entry) without emitting a change."""
        blocked = self.blockSignals(True)
        for index, candidate in enumerate(self._layers):
            if candidate is layer:
                self.setCurrentIndex(index)
        self.blockSignals(blocked)

    def refresh(self, event: Any = None) -> None:
        """Rebuild from the layer list (top layer first, as napari shows it)."""
        chosen = self.layer
        layers: list[Layer | None] = [] if self._new_text is None else [None]
        layers += [
            layer for layer in reversed(self._viewer.layers) if isinstance(layer, self._type)
        ]
        blocked = self.blockSignals(True)
        self.clear()
        self.addItems([self._new_text if lay is None else lay.name for lay in layers])
        self._layers = layers
        self.setCurrentIndex(next((i for i, lay in enumerate(layers) if lay is chosen), 0))
        self.blockSignals(blocked)
        if self.layer is not chosen:
            self.currentIndexChanged.emit(self.currentIndex())
