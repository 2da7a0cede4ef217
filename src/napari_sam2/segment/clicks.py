"""Answering prompts on one slice: each object's SAM 2 mask, written into the Labels layer.

Embedding a slice is the slow step (seconds on a CPU), so it runs in a napari thread worker
and is cached per slice (:class:`~napari_sam2.segment.embeddings.EmbeddingCache`); a click then
costs only the prompt encoder and the mask decoder and runs on the main thread, where layers
may be touched.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from functools import partial

import numpy as np
from psygnal import Signal

from napari_sam2.axes import PlaneIndex, describe_plane, layer_array, plane_index
from napari_sam2.models import ModelLoader
from napari_sam2.segment.embeddings import EmbeddingCache, SliceEmbedding
from napari_sam2.segment.image_layers import ImageLayers
from napari_sam2.segment.layer_prompts import read_prompts

__all__ = ["SliceSegmenter"]


class SliceSegmenter:
    """Segments objects of one image's layers on a slice, from their points and boxes.

    ``segment`` asks the :class:`EmbeddingCache` for the slice and predicts when the embedding
    is there: at once when it is cached, otherwise once a thread worker has embedded it (the
    objects edited meanwhile wait with it). ``failed`` carries what went wrong (to be shown),
    ``status`` what was done.
    """

    status = Signal(str)
    failed = Signal(str)

    def __init__(self, layers: ImageLayers, factory: ModelLoader, cache_size: int = 8) -> None:
        self.layers = layers
        self.embeddings = EmbeddingCache(layers.image_layer, factory, cache_size)
        self.embeddings.failed.connect(self._forget_waiting)
        self._waiting: dict[PlaneIndex, set[int]] = {}  # objects to segment once embedded
        self._written: set[tuple[PlaneIndex, int]] = set()  # (slice, object) we wrote

    def prefetch(self) -> None:
        """Start embedding the current slice, so the first click is answered at once."""
        try:
            plane = plane_index(self.layers.image_layer, self.layers.viewer.dims)
        except ValueError:
            return
        self.embeddings.request(plane)

    def segment(
        self, obj_ids: Iterable[int] | None = None, plane: PlaneIndex | None = None
    ) -> None:
        """Segment objects (default: the current one) on a slice (default: the current one)."""
        if plane is None:
            try:
                plane = plane_index(self.layers.image_layer, self.layers.viewer.dims)
            except ValueError as exc:
                self.failed.emit(str(exc))
                return
        if not self._ready_to_write(plane):
            return
        ids = {self.layers.object_id} if obj_ids is None else {int(i) for i in obj_ids}
        waiting = self._waiting.get(plane)
        if waiting is not None:  # the slice is being embedded: its objects join the wait
            waiting.update(ids)
            return
        self._waiting[plane] = ids
        self.embeddings.request(plane, partial(self._on_embedding, plane))

    def _ready_to_write(self, plane: PlaneIndex) -> bool:
        """Check the slice and that there are prompts; make sure there is an output layer."""
        layers = self.layers
        try:
            self._check_plane(plane)
            if layers.points_layer is None and layers.shapes_layer is None:
                raise ValueError(
                    "there are no prompts yet: press 'Add points' and click on the object, "
                    "or 'Add box' and draw a rectangle around it"
                )
            layers.ensure_labels_layer()
        except ValueError as exc:
            self.failed.emit(str(exc))
            return False
        return True

    def _on_embedding(self, plane: PlaneIndex, embedded: SliceEmbedding) -> None:
        """The slice's embedding is there (at once, or after a worker): segment the objects
        waiting for it, with their prompts as they are now."""
        ids = self._waiting.pop(plane, set())
        if ids and self._ready_to_write(plane):
            for object_id in sorted(ids):
                self._predict_and_write(embedded, plane, object_id)

    def _forget_waiting(self, _message: str) -> None:
        self._waiting.clear()  # the cache dropped every queued slice

    def forget(self, plane: PlaneIndex, object_id: int) -> None:
        """The object's mask on ``plane`` was cleared: it is no longer ours to undo."""
        self._written.discard((plane, object_id))

    def _check_plane(self, plane: PlaneIndex) -> None:
        image = self.layers.image_layer
        shape = layer_array(image).shape[: len(plane)]
        if any(not 0 <= index < size for index, size in zip(plane, shape)):
            raise ValueError(
                f"a point lies on {describe_plane(image, plane)}, outside image "
                f"{image.name!r} (size {shape} along those axes); move or delete it"
            )

    def _predict_and_write(
        self, embedded: SliceEmbedding, plane: PlaneIndex, object_id: int
    ) -> None:
        """Main-thread step: prompts → masks → Labels slice. Failures keep earlier labels."""
        start = time.perf_counter()
        where = describe_plane(self.layers.image_layer, plane)
        writer = self.layers.writer
        if writer is None:
            return
        try:
            coords, labels, box = self._prompts(plane, object_id)
            if not (labels == 1).any() and box is None:
                self._no_positive_points(plane, object_id, where, bool(labels.size))
                return
            masks, ious, _ = embedded.predict(
                point_coords=coords if labels.size else None,
                point_labels=labels if labels.size else None,
                box=box,
                multimask_output=labels.size == 1 and box is None,
            )
            best = int(np.argmax(ious))  # one click is ambiguous: keep the most confident mask
            result = writer.write(plane, object_id, masks[best] > 0.5)
        except ValueError as exc:
            self.failed.emit(f"object {object_id} on {where}: {exc}")
            return
        self._written.add((plane, object_id))
        ms = 1000 * (time.perf_counter() - start)
        note = f", {result.blocked} px left to other objects" if result.blocked else ""
        self.status.emit(
            f"object {object_id} on {where}: {result.pixels} px "
            f"(score {float(ious[best]):.2f}) in {ms:.0f} ms{note}"
        )

    def _prompts(
        self, plane: PlaneIndex, object_id: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The object's points ((N, 2) x, y and (N,) labels) and box (or None) on a plane."""
        layers = self.layers
        prompts = read_prompts(layers.image_layer, layers.points_layer, layers.shapes_layer)
        prompt = prompts.frame_prompt(plane, object_id)
        return prompt.xy, prompt.labels, prompt.box

    def _no_positive_points(
        self, plane: PlaneIndex, object_id: int, where: str, has_negative: bool
    ) -> None:
        """Without a positive point there is no object: undo our own mask, keep anyone else's."""
        writer = self.layers.writer
        if (plane, object_id) in self._written and writer is not None:
            writer.clear(plane, object_id)
            self._written.discard((plane, object_id))
            self.status.emit(f"object {object_id} removed from {where} (no positive point left)")
        elif has_negative:
            self.failed.emit(
                f"object {object_id} on {where} has only negative points; add a positive "
                "(green) point on the object (press T to switch polarity)"
            )
        else:
            self.status.emit(f"no points for object {object_id} on {where}")
