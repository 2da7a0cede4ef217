"""EmbeddingCache.request: one worker per slice, every waiting callback answered."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pytest
from napari.layers import Image

from napari_sam2.models import ModelLoader
from napari_sam2.segment.embeddings import EmbeddingCache, SliceEmbedding

pytestmark = pytest.mark.gui  # the workers need a Qt application

WAIT_MS = 10_000


class _CountingPredictor:
    """Stands in for SAM2ImagePredictor: ``embed`` records the slice it was given."""

    def __init__(self) -> None:
        self.embedded: list[np.ndarray] = []

    def embed(self, image: np.ndarray, contrast_limits: tuple[float, float]) -> object:
        self.embedded.append(np.array(image))
        return object()


class _Loaded:
    """Stands in for LoadedModel: hands out the one counting predictor."""

    precision_reason = "auto: fp32, a stand-in"

    def __init__(self, predictor: _CountingPredictor) -> None:
        self.predictor = predictor

    def image_predictor(self) -> _CountingPredictor:
        return self.predictor


def _cache() -> tuple[EmbeddingCache, _CountingPredictor, Image]:
    image = Image(np.arange(3 * 8 * 8, dtype=np.float32).reshape(3, 8, 8), name="stack")
    predictor = _CountingPredictor()
    loaded = _Loaded(predictor)
    factory = cast(ModelLoader, lambda: loaded)  # duck-typed LoadedModel
    return EmbeddingCache(image, factory, size=4), predictor, image


def test_same_plane_twice_is_embedded_once_and_both_callbacks_run(qtbot: Any) -> None:
    """Two requests for plane 1 before the worker is done: one embedding, both ``then``s get
    the same SliceEmbedding; a third request is answered at once from the cache."""
    cache, predictor, image = _cache()
    got: list[tuple[str, SliceEmbedding]] = []
    cache.request((1,), lambda e: got.append(("first", e)))
    cache.request((1,), lambda e: got.append(("second", e)))
    assert cache.busy and got == []  # nothing is answered before the worker returns
    qtbot.waitUntil(lambda: not cache.busy, timeout=WAIT_MS)
    assert [name for name, _ in got] == ["first", "second"]
    assert got[0][1] is got[1][1] and got[0][1].predictor is predictor
    assert len(predictor.embedded) == 1
    np.testing.assert_array_equal(predictor.embedded[0], image.data[1])
    cache.request((1,), lambda e: got.append(("cached", e)))
    assert not cache.busy and got[-1] == ("cached", got[0][1])  # at once, no worker
    assert len(predictor.embedded) == 1


def test_another_plane_is_embedded_anew(qtbot: Any) -> None:
    """Plane 2 after plane 1: a second embedding, of plane 2's pixels, with its own result;
    plane 1 stays cached."""
    cache, predictor, image = _cache()
    got: dict[int, SliceEmbedding] = {}
    said: list[str] = []
    cache.status.connect(said.append)
    cache.request((1,), lambda e: got.__setitem__(1, e))
    cache.request((2,), lambda e: got.__setitem__(2, e))  # queued behind plane 1
    qtbot.waitUntil(lambda: len(got) == 2 and not cache.busy, timeout=WAIT_MS)
    assert len(predictor.embedded) == 2
    np.testing.assert_array_equal(predictor.embedded[1], image.data[2])
    assert got[1] is not got[2] and got[1].embedding is not got[2].embedding
    assert cache.get((1,)) is got[1] and cache.get((2,)) is got[2]
    # what precision "auto" chose is said once, with the first embedding of the model
    done = [m for m in said if m.startswith("embedded")]
    assert done[0].endswith("(precision auto: fp32, a stand-in)")
    assert len(done) == 2 and "precision" not in done[1]
