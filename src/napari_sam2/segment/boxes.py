"""The box prompt layer: a napari Shapes layer whose rectangles each box one object.

A rectangle carries an ``object_id`` feature like a prompt point, so one Shapes layer can hold
boxes for many objects and frames. SAM 2 takes one box per object and frame; when the user drew
several, the last one counts (drawing a new box is how a box is corrected; reading boxes as
prompts is :mod:`napari_sam2.segment.layer_prompts`'s job).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from napari_sam2.layers import OBJECT_ID

if TYPE_CHECKING:
    from napari.layers import Image, Shapes

__all__ = ["BOX_COLOR", "new_shapes_layer", "prepare_shapes_layer", "set_box_defaults"]

BOX_COLOR = "#ffd700"


def prepare_shapes_layer(layer: Shapes, object_id: int = 1) -> None:
    """Give a Shapes layer the ``object_id`` column; existing shapes box ``object_id``."""
    features = layer.features
    if OBJECT_ID not in features:
        features[OBJECT_ID] = np.full(len(layer.data), object_id, dtype=np.int64)
        layer.features = features
    set_box_defaults(layer, object_id)


def set_box_defaults(layer: Shapes, object_id: int) -> None:
    """The object the next rectangle boxes."""
    defaults = {key: layer.feature_defaults[key].iloc[0] for key in layer.feature_defaults}
    defaults[OBJECT_ID] = int(object_id)
    layer.feature_defaults = defaults


def new_shapes_layer(image: Image, object_id: int = 1) -> Shapes:
    """An empty box layer aligned with ``image`` (same dimensions, scale and translation)."""
    from napari.layers import Shapes

    layer = Shapes(
        ndim=image.ndim,
        name=f"{image.name} boxes",
        scale=image.scale,
        translate=image.translate,
        axis_labels=image.axis_labels,
        features={OBJECT_ID: np.empty(0, dtype=np.int64)},
        edge_color=BOX_COLOR,
        edge_width=2,
        face_color="transparent",
    )
    prepare_shapes_layer(layer, object_id)
    return layer
