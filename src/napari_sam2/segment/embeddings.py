"""Slice embeddings computed in a napari thread worker and kept in a small LRU cache.

Embedding a slice is SAM 2's slow step (seconds on a CPU); once a slice is embedded, a click
costs only the prompt encoder and mask decoder (tens of milliseconds) on the main thread. One
worker runs at a time; requests for other slices queue and are embedded in order.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from psygnal import Signal

from napari_sam2.axes import PlaneIndex, describe_plane, layer_array, read_plane
from napari_sam2.models import LoadedModel, ModelLoader

if TYPE_CHECKING:
    from napari.layers import Image
    from napari.qt.threading import FunctionWorker

    from sam2.image_embedding import ImageEmbedding
    from sam2.sam2_image_predictor import SAM2ImagePredictor

__all__ = ["EmbeddingCache", "SliceEmbedding"]

EmbeddingKey = tuple[PlaneIndex, tuple[float, float]]  # plane, contrast limits
Then = Callable[["SliceEmbedding"], None]  # what to do with a slice once it is embedded


@dataclass(frozen=True)
class SliceEmbedding:
    """A slice's embedding and the predictor (of the model that made it) that decodes it."""

    predictor: SAM2ImagePredictor
    embedding: ImageEmbedding

    def predict(self, **prompts: Any) -> Any:
        """``SAM2ImagePredictor.predict`` on this slice: masks, scores, low-res logits."""
        return self.predictor.predict(embedding=self.embedding, **prompts)


@dataclass(frozen=True)
class _Embedded:
    """A slice embedded in a worker: the loaded model, its predictor and the embedding."""

    loaded: LoadedModel
    predictor: SAM2ImagePredictor
    embedding: ImageEmbedding
    seconds: float


@dataclass(frozen=True)
class _Failure:
    message: str


def _embed_plane(
    factory: ModelLoader,
    loaded: LoadedModel | None,
    predictor: SAM2ImagePredictor | None,
    data: Any,
    plane: PlaneIndex,
    rgb: bool,
    limits: tuple[float, float],
    where: str,
) -> _Embedded | _Failure:
    """Worker body: load the model if needed and embed one slice; never touches a layer.

    Expected failures come back as a message (shown as a notification, not a traceback).
    """
    from sam2.checkpoint import CheckpointError
    from sam2.hub import CheckpointDownloadError

    start = time.perf_counter()
    try:
        loaded = loaded if loaded is not None else factory()
    except (CheckpointError, CheckpointDownloadError, ValueError, OSError, RuntimeError) as exc:
        return _Failure(f"Could not load the SAM 2 model: {exc}")
    try:
        predictor = predictor if predictor is not None else loaded.image_predictor()
        embedding = predictor.embed(read_plane(data, plane, rgb), contrast_limits=limits)
    except (ValueError, RuntimeError, OSError, MemoryError) as exc:
        return _Failure(f"SAM 2 could not embed {where}: {exc}")
    return _Embedded(loaded, predictor, embedding, time.perf_counter() - start)


class EmbeddingCache:
    """Per-slice embeddings of one image layer, computed in the background.

    ``get`` answers at once from the cache; ``request(plane, then)`` calls ``then`` with the
    slice's :class:`SliceEmbedding` on the main thread: at once when it is cached, else once a
    worker has embedded it (never, if that fails: ``failed`` says why). The key includes the
    layer's contrast limits, so new limits mean a new embedding. One predictor per model
    decodes every slice.
    """

    failed = Signal(str)
    status = Signal(str)
    busy_changed = Signal(bool)

    def __init__(self, image: Image, factory: ModelLoader, size: int = 8) -> None:
        self.image = image
        self.size = size
        self._factory = factory
        self._loaded: LoadedModel | None = None
        self._predictor: SAM2ImagePredictor | None = None
        self._cache: OrderedDict[EmbeddingKey, SliceEmbedding] = OrderedDict()
        self._pending: dict[PlaneIndex, list[Then]] = {}  # slices waiting for an embedding
        self._worker: FunctionWorker[Any] | None = None

    @property
    def busy(self) -> bool:
        """True while a model load or slice embedding runs in a worker."""
        return self._worker is not None

    def set_factory(self, factory: ModelLoader) -> None:
        """Use another model: embeddings of the old one are dropped."""
        self._factory = factory
        self._loaded = None
        self._predictor = None
        self._cache.clear()

    def get(self, plane: PlaneIndex) -> SliceEmbedding | None:
        key = self._key(plane)
        embedded = self._cache.get(key)
        if embedded is not None:
            self._cache.move_to_end(key)
        return embedded

    def request(self, plane: PlaneIndex, then: Then | None = None) -> None:
        """Embed ``plane`` if needed, then call ``then`` (if given) with its embedding."""
        embedded = self.get(plane)
        if embedded is not None:
            if then is not None:
                then(embedded)
            return
        waiting = self._pending.setdefault(plane, [])
        if then is not None:
            waiting.append(then)
        self._start_next()

    def close(self) -> None:
        """Forget queued slices; a running embedding finishes but is ignored."""
        self._pending.clear()
        if self._worker is not None:
            self._worker.returned.disconnect()

    def _key(self, plane: PlaneIndex) -> EmbeddingKey:
        low, high = self.image.contrast_limits
        return plane, (float(low), float(high))

    def _start_next(self) -> None:
        if self._worker is not None:
            return  # the running worker starts the next one when it finishes
        while self._pending:
            plane = next(iter(self._pending))
            embedded = self.get(plane)
            if embedded is None:
                break
            for then in self._pending.pop(plane):
                then(embedded)
        else:
            return
        from napari.qt.threading import create_worker

        key = self._key(plane)
        where = describe_plane(self.image, plane)
        worker = create_worker(
            _embed_plane,
            self._factory,
            self._loaded,
            self._predictor,
            layer_array(self.image),
            plane,
            bool(self.image.rgb),
            key[1],
            f"{self.image.name!r} ({where})",
            _progress={"desc": f"SAM 2: embedding {where}"},
        )
        worker.returned.connect(partial(self._on_embedded, key, self._factory))
        worker.errored.connect(self._on_errored)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        loading = "loading the model and " if self._loaded is None else ""
        self.status.emit(f"{loading}embedding {where}…")
        self.busy_changed.emit(True)
        worker.start()

    def _on_embedded(
        self, key: EmbeddingKey, factory: ModelLoader, result: _Embedded | _Failure
    ) -> None:
        if isinstance(result, _Failure):
            self._pending.clear()  # the same failure would repeat for every queued slice
            self.failed.emit(result.message)
            return
        if factory is not self._factory:
            return  # the model changed meanwhile; queued slices are embedded again
        first = self._loaded is None
        self._loaded = result.loaded
        self._predictor = result.predictor
        embedded = SliceEmbedding(result.predictor, result.embedding)
        self._cache[key] = embedded
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)
        plane = key[0]
        message = f"embedded {describe_plane(self.image, plane)} in {result.seconds:.1f} s"
        if first and result.loaded.precision_reason:  # once per model: what "auto" chose
            message += f" (precision {result.loaded.precision_reason})"
        self.status.emit(message)
        for then in self._pending.pop(plane, []):
            then(embedded)

    def _on_errored(self, exc: BaseException) -> None:
        """An error no one expected (napari shows its traceback too): drop the queue, or
        ``_on_finished`` would start the same failing work again, and again."""
        self._pending.clear()
        self.failed.emit(f"SAM 2 stopped on an unexpected error: {type(exc).__name__}: {exc}")

    def _on_finished(self) -> None:
        self._worker = None
        self.busy_changed.emit(False)
        self._start_next()
