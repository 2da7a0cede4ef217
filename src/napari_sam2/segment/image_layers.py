"""The prompt Points, box Shapes and output Labels layers of one image, and their edits.

:class:`ImageLayers` checks each layer before it takes it, creates missing ones aligned with
the image, keeps the current object's prompts the ones shown, and turns the user's edits of
the prompt layers into ``edited({slice: object ids})`` (see :class:`~napari_sam2.segment.
prompt_events.PromptEdits`); what to do about an edit is the controller's business.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from psygnal import Signal

from napari_sam2.axes import PlaneIndex, layer_array
from napari_sam2.layers import (
    OBJECT_ID,
    LabelsWriter,
    new_labels_layer,
    prepare_points_layer,
    set_point_defaults,
    toggle_polarity,
)
from napari_sam2.segment.layer_prompts import box_planes, point_planes, point_rows
from napari_sam2.segment.prompt_events import PromptEdits

if TYPE_CHECKING:
    import napari
    from napari.layers import Image, Labels, Points, Shapes

__all__ = ["ImageLayers"]


class ImageLayers:
    """The layers one image is segmented with: prompts in, masks out.

    Prompts come from a Points layer (``positive`` and ``object_id`` features) and a Shapes
    layer of rectangles; masks go to a Labels layer through
    :class:`~napari_sam2.layers.LabelsWriter`. ``edited`` carries, per slice (None: the one on
    screen), the objects whose prompts were added, moved or removed; ``toggled`` the next
    point's polarity and the objects whose selected points switched with it (key T).
    """

    layers_changed = Signal()
    edited = Signal(object)  # dict[PlaneIndex | None, set[int]]
    toggled = Signal(bool, object)  # positive, set of object ids

    def __init__(self, viewer: napari.viewer.Viewer, image_layer: Image) -> None:
        self.viewer = viewer
        self.image_layer = image_layer
        self.object_id = 1
        self._point_edits = PromptEdits(image_layer, point_planes, lambda: self.object_id)
        self._box_edits = PromptEdits(image_layer, box_planes, lambda: self.object_id)
        self._points: Points | None = None
        self._shapes: Shapes | None = None
        self._labels: Labels | None = None
        self._writer: LabelsWriter | None = None

    # -------------------------------------------------------------- the layers
    @property
    def points_layer(self) -> Points | None:
        return self._points if self._in_viewer(self._points) else None

    @points_layer.setter
    def points_layer(self, layer: Points | None) -> None:
        """Use ``layer`` for prompts; refuses layers that cannot hold (…, y, x) points."""
        if layer is self._points:
            return
        self._check_fits(layer, "points layer", "prompts")
        self._disconnect_points()
        self._points = layer
        if layer is not None:
            prepare_points_layer(layer, self.object_id)
            layer.events.data.connect(self._on_points_data)
            layer.bind_key("t", self._on_toggle_key, overwrite=True)
            self._show_object_points()

    @property
    def shapes_layer(self) -> Shapes | None:
        return self._shapes if self._in_viewer(self._shapes) else None

    @shapes_layer.setter
    def shapes_layer(self, layer: Shapes | None) -> None:
        """Use ``layer``'s rectangles as box prompts; refuses layers of too many dimensions."""
        from napari_sam2.segment.boxes import prepare_shapes_layer

        if layer is self._shapes:
            return
        self._check_fits(layer, "Shapes layer", "boxes")
        if self._shapes is not None:
            self._shapes.events.data.disconnect(self._on_shapes_data)
        self._shapes = layer
        if layer is not None:
            prepare_shapes_layer(layer, self.object_id)
            layer.events.data.connect(self._on_shapes_data)

    def _check_fits(self, layer: Points | Shapes | None, kind: str, what: str) -> None:
        """Prompt layers hold (…, y, x) coordinates of at most the image's dimensions."""
        if layer is not None and not 2 <= layer.ndim <= self.image_layer.ndim:
            raise ValueError(
                f"{kind} {layer.name!r} has {layer.ndim} dimension(s), but {what} for "
                f"{self.image_layer.name!r} need 2 to {self.image_layer.ndim} (…, y, x); "
                "choose another layer or let the widget create one"
            )

    @property
    def labels_layer(self) -> Labels | None:
        return self._labels if self._in_viewer(self._labels) else None

    @labels_layer.setter
    def labels_layer(self, layer: Labels | None) -> None:
        """Write into ``layer`` (None: a new one on the first write); refuses other shapes."""
        if layer is not None and tuple(layer.data.shape) != self._labels_shape():
            raise ValueError(
                f"Labels layer {layer.name!r} has shape {tuple(layer.data.shape)}, but image "
                f"{self.image_layer.name!r} needs {self._labels_shape()}; choose another "
                "output or let the widget create one"
            )
        self._labels = layer
        self._writer = LabelsWriter(layer) if layer is not None else None
        if layer is not None:
            layer.selected_label = self.object_id

    @property
    def writer(self) -> LabelsWriter | None:
        """The writer of the output layer chosen last (None before there is one)."""
        return self._writer

    # -------------------------------------------------------------- objects
    def set_object_id(self, object_id: int) -> None:
        """Make ``object_id`` the object that new points prompt and that is shown."""
        self.object_id = int(object_id)
        if self.points_layer is not None:
            self._show_object_points()
            set_point_defaults(self.points_layer, object_id=self.object_id)
        if self.shapes_layer is not None:
            from napari_sam2.segment.boxes import set_box_defaults

            set_box_defaults(self.shapes_layer, self.object_id)
        if self.labels_layer is not None:
            self.labels_layer.selected_label = self.object_id

    def next_object_id(self) -> int:
        """One more than any id in the Labels layer or the prompts: never reuses an object."""
        highest = 0
        if self.labels_layer is not None and self._writer is not None:
            highest = self._writer.max_id()
        if self.points_layer is not None and len(self.points_layer.data):
            highest = max(highest, int(np.max(self.points_layer.features[OBJECT_ID])))
        return highest + 1

    def remove_prompts(self, plane: PlaneIndex, object_id: int) -> None:
        """Delete the object's points and boxes on one slice, without an ``edited``."""
        points = self.points_layer
        if points is not None:
            rows = point_rows(points, plane, self.image_layer, object_id)
            if rows.size:
                with points.events.data.blocker(self._on_points_data):
                    points.selected_data = set(rows.tolist())
                    points.remove_selected()
        shapes = self.shapes_layer
        if shapes is not None and len(shapes.data):
            ids = np.asarray(shapes.features[OBJECT_ID])
            planes = box_planes(shapes, range(len(shapes.data)), self.image_layer)
            boxes = {i for i, where in enumerate(planes) if ids[i] == object_id and where == plane}
            if boxes:
                with shapes.events.data.blocker(self._on_shapes_data):
                    shapes.selected_data = boxes
                    shapes.remove_selected()

    # -------------------------------------------------------------- missing layers
    def ensure_points_layer(self) -> Points:
        """The prompt layer, created (aligned with the image) and added when there is none."""
        if self.points_layer is None:
            from napari_sam2.layers import new_points_layer

            layer = new_points_layer(self.image_layer, self.object_id)
            self.viewer.add_layer(layer)
            self.points_layer = layer
            self.layers_changed.emit()
        assert self.points_layer is not None
        return self.points_layer

    def ensure_shapes_layer(self) -> Shapes:
        """The box layer, created (aligned with the image) and added when there is none."""
        if self.shapes_layer is None:
            from napari_sam2.segment.boxes import new_shapes_layer

            layer = new_shapes_layer(self.image_layer, self.object_id)
            self.viewer.add_layer(layer)
            self.shapes_layer = layer
            self.layers_changed.emit()
        assert self.shapes_layer is not None
        return self.shapes_layer

    def ensure_labels_layer(self) -> Labels:
        """The output layer; a new uint32 one is added just above the image when there is none.

        The active layer stays active, so the user's next click still adds a point.
        """
        if self.labels_layer is None:
            layer = new_labels_layer(self.image_layer)
            active = self.viewer.layers.selection.active
            index = self.viewer.layers.index(self.image_layer) + 1
            self.viewer.layers.insert(index, layer)
            if active is not None:
                self.viewer.layers.selection.active = active
            self.labels_layer = layer
            self.layers_changed.emit()
        assert self.labels_layer is not None
        return self.labels_layer

    # -------------------------------------------------------------- internals
    def _in_viewer(self, layer: Any) -> bool:
        return layer is not None and layer in self.viewer.layers

    def _labels_shape(self) -> tuple[int, ...]:
        shape = layer_array(self.image_layer).shape
        return tuple(shape[:-1] if self.image_layer.rgb else shape)

    def _show_object_points(self) -> None:
        """Show (and keep selectable) only the current object's points, so T and drags act
        on the object being edited."""
        points = self.points_layer
        if points is not None and len(points.data):
            mine = np.asarray(points.features[OBJECT_ID]) == self.object_id
            points.selected_data = {i for i in points.selected_data if mine[i]}
            points.shown = mine

    def _disconnect_points(self) -> None:
        if self._shapes is not None:
            self._shapes.events.data.disconnect(self._on_shapes_data)
        if self._points is not None:
            self._points.events.data.disconnect(self._on_points_data)
            from napari.utils.key_bindings import KeyBinding

            if self._points.keymap.get(KeyBinding.from_str("T")) == self._on_toggle_key:
                self._points.bind_key("t", None)

    def _on_points_data(self, event: Any) -> None:
        points = self.points_layer
        if points is not None:
            self.edited.emit(self._point_edits.on_event(points, event))

    def _on_shapes_data(self, event: Any) -> None:
        shapes = self.shapes_layer
        if shapes is not None:
            self.edited.emit(self._box_edits.on_event(shapes, event))

    def _on_toggle_key(self, layer: Points) -> None:
        positive, changed = toggle_polarity(layer)
        self.toggled.emit(positive, changed)
