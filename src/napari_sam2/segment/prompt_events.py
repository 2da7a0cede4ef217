"""Which (slice, object) pairs a user's edit of a prompt layer affects.

napari reports point and shape edits in two steps: ``changing``/``removing`` (rows still at
their old place) and then ``changed``/``removed``/``added``. A moved or deleted prompt must
re-segment the slice it left, so the pairs seen in the first step are remembered and handed
out with the second.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from napari_sam2.axes import PlaneIndex
from napari_sam2.layers import OBJECT_ID

__all__ = ["PromptEdits"]

Target = tuple[PlaneIndex | None, int]  # slice (None: the one on screen), object id
PlanesOf = Callable[[Any, Sequence[int], Any], list[PlaneIndex | None]]


class PromptEdits:
    """Collects the targets of one prompt layer's data events.

    ``planes_of(layer, rows, image)`` gives the slice of each row (``point_planes`` for
    points, ``box_planes`` for boxes); ``fallback_id()`` names the object to re-segment when a
    row's slice cannot be told.
    """

    def __init__(self, image: Any, planes_of: PlanesOf, fallback_id: Callable[[], int]) -> None:
        self.image = image
        self.planes_of = planes_of
        self.fallback_id = fallback_id
        self._touched: set[Target] = set()

    def targets(self, layer: Any, rows: Sequence[int]) -> set[Target]:
        """(slice, object) pairs of some rows of ``layer``."""
        if not rows:
            return set()
        try:
            planes = self.planes_of(layer, rows, self.image)
        except ValueError:
            return {(None, self.fallback_id())}  # segment() explains what is wrong
        ids = np.asarray(layer.features[OBJECT_ID])[list(rows)]
        return {(plane, int(i)) for plane, i in zip(planes, ids)}

    def on_event(self, layer: Any, event: Any) -> dict[PlaneIndex | None, set[int]]:
        """Objects to re-segment per slice after this event ({} while an edit is under way)."""
        action = str(event.action)
        n = len(layer.data)  # "added" counts from the end (-1 is the newest row)
        rows = [int(i) % n for i in getattr(event, "data_indices", ()) if -n <= int(i) < n]
        if action in ("changing", "removing"):
            self._touched |= self.targets(layer, rows)
            return {}
        if action not in ("added", "changed", "removed"):
            return {}
        touched, self._touched = self._touched, set()
        if action != "removed":
            touched |= self.targets(layer, rows)
            if not touched:  # an event without row indices: the object being edited
                touched = {(None, self.fallback_id())}
        by_plane: dict[PlaneIndex | None, set[int]] = {}
        for plane, object_id in touched:
            by_plane.setdefault(plane, set()).add(object_id)
        return by_plane
