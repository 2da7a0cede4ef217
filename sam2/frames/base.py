"""The frame-source protocol and the LRU cache + prefetch thread that every source shares.

Loading is split in two: ``_load`` (file I/O and decoding, numpy only) runs on the prefetch
thread and its result is what the cache holds; ``_to_input`` (the torch part: resize, normalise)
runs in ``get`` on the caller's thread. Torch work on a second thread starts a second OpenMP
team that competes with the model's on small machines (+40% per frame on 2 cores, measured).
"""

from __future__ import annotations

import operator
import threading
import weakref
from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import Protocol, runtime_checkable

import numpy as np
from torch import Tensor


@runtime_checkable
class FrameSource(Protocol):
    """Frames of a video or stack as model inputs, read on demand."""

    def __len__(self) -> int: ...

    @property
    def orig_hw(self) -> tuple[int, int]:
        """(H, W) of the original frames, to map masks back."""
        ...

    def get(self, index: int) -> Tensor:
        """(3, S, S) float32 model input of frame ``index``, ImageNet-normalised."""
        ...

    def close(self) -> None: ...


class _Prefetch:
    """State shared with the prefetch thread; it must not reference the source (see finalize)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.pending: list[int] = []
        self.busy = False
        self.stopped = False
        self.thread: threading.Thread | None = None

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.pending.clear()
            self.cond.notify_all()


class _Loading:
    """A frame being loaded by one thread; others wait for it instead of loading it again."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.frame: np.ndarray | None = None


def _prefetch_loop(ref: weakref.ReferenceType[LazyFrames], state: _Prefetch) -> None:
    """Load queued frames into the source's cache; holds the source only while loading."""
    while True:
        with state.cond:
            while not state.pending and not state.stopped:
                state.cond.wait()
            if state.stopped:
                return
            index = state.pending.pop(0)
            state.busy = True
        try:
            source = ref()
            if source is None:
                return
            source._fetch(index, prefetching=True)
        except Exception:
            pass  # not fatal here: the predictor's own get() of that frame raises it
        finally:
            source = None
            with state.cond:
                state.busy = False
                state.cond.notify_all()


class LazyFrames(ABC):
    """LRU cache, prefetch thread and index checks; subclasses implement ``_load`` and
    ``_to_input``."""

    def __init__(self, length: int, image_size: int, cache_size: int, prefetch: int) -> None:
        if int(image_size) <= 0:
            raise ValueError(f"image_size must be positive, got {image_size}")
        if cache_size < 0 or prefetch < 0:
            raise ValueError(
                f"cache_size and prefetch must be >= 0, got cache_size={cache_size}, "
                f"prefetch={prefetch}"
            )
        self.image_size = int(image_size)
        self._length = length
        self._cache_size = int(cache_size)
        # prefetched frames must not push the frame just asked for out of the cache
        self._prefetch = min(int(prefetch), max(self._cache_size - 1, 0))
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()  # raw frames
        self._loading: dict[int, _Loading] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._last: int | None = None
        self._step = 1  # +1 forward, -1 reverse
        self._state = _Prefetch()
        weakref.finalize(self, self._state.stop)

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> Tensor:
        return self.get(index)

    def __enter__(self) -> LazyFrames:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def _load(self, index: int) -> np.ndarray:
        """Read and decode one frame, numpy only (it may run on the prefetch thread)."""

    @abstractmethod
    def _to_input(self, raw: np.ndarray) -> Tensor:
        """A frame from ``_load`` -> (3, S, S) float32 model input, a new tensor."""

    def get(self, index: int) -> Tensor:
        """(3, S, S) float32 model input of frame ``index`` (a new tensor each call)."""
        try:
            index = operator.index(index)
        except TypeError:
            raise TypeError(f"frame index must be an integer, got {index!r}") from None
        if not 0 <= index < self._length:
            raise IndexError(
                f"frame index {index} is out of range for a stack of {self._length} frames"
            )
        raw = self._fetch(index)
        assert raw is not None
        self._schedule(index)
        return self._to_input(raw)

    def cached_indices(self) -> list[int]:
        """Frames in the cache, least recently used first."""
        with self._lock:
            return list(self._cache)

    def wait_for_prefetch(self, timeout: float | None = None) -> bool:
        """Block until the prefetch queue is empty; False if ``timeout`` ran out first."""
        state = self._state
        with state.cond:
            return state.cond.wait_for(lambda: not state.pending and not state.busy, timeout)

    def close(self) -> None:
        """Stop the prefetch thread and drop cached frames; ``get`` raises afterwards."""
        with self._lock:
            self._closed = True
            self._cache.clear()
        self._state.stop()
        thread = self._state.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10.0)
        self._release()

    def _release(self) -> None:  # noqa: B027 - optional hook, most sources hold no files
        """Close files held by a subclass."""

    def _fetch(self, index: int, prefetching: bool = False) -> np.ndarray | None:
        """The cached frame, else load it once however many threads ask at the same time."""
        while True:
            with self._lock:
                if self._closed:
                    raise RuntimeError("this frame source is closed")
                frame = self._cache.get(index)
                if frame is not None:
                    self._cache.move_to_end(index)
                    return frame
                pending = self._loading.get(index)
                if pending is None:
                    pending = self._loading[index] = _Loading()
                    break
            if prefetching:
                return None  # another thread is loading it already
            pending.done.wait()
            if pending.frame is not None:
                return pending.frame
            # that load failed: try again here, so this thread sees the error itself
        try:
            frame = self._load(index)
        except BaseException:
            with self._lock:
                del self._loading[index]
            pending.done.set()
            raise
        pending.frame = frame
        with self._lock:
            del self._loading[index]
            if not self._closed and self._cache_size > 0:
                self._cache[index] = frame
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        pending.done.set()
        return frame

    def _schedule(self, index: int) -> None:
        """Queue the next frames in the direction of the last move (replacing stale requests)."""
        if self._prefetch == 0:
            return
        with self._lock:
            if self._last is not None and index != self._last:
                self._step = 1 if index > self._last else -1
            self._last = index
            ahead = [index + self._step * k for k in range(1, self._prefetch + 1)]
            todo = []
            for i in (i for i in ahead if 0 <= i < self._length):
                if i in self._cache:
                    self._cache.move_to_end(i)  # needed soon: keep it from being evicted
                else:
                    todo.append(i)
        state = self._state
        with state.cond:
            if state.stopped:
                return
            state.pending = todo
            if todo and state.thread is None:
                state.thread = threading.Thread(
                    target=_prefetch_loop,
                    args=(weakref.ref(self), state),
                    name="sam2-frame-prefetch",
                    daemon=True,
                )
                state.thread.start()
            state.cond.notify_all()
