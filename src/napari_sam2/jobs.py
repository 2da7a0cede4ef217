"""One lifecycle for long work in a napari generator worker whose items are written into layers.

The worker body runs the model and yields one item per step (a frame's masks, a tracked frame)
or a :class:`Failure`; it never touches a layer. :class:`LayerJob` does the rest on the main
thread, the same way for every job: a progress bar with a total, an ETA status line, Stop through
``worker.quit()`` (the next ``yield`` ends the body, what was written stays), the first error
wins and is shown once, a removed layer stops the job with a sentence, and ``finished`` fires
once. A subclass only says how an item is written (:meth:`LayerJob.write`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from psygnal import Signal

if TYPE_CHECKING:
    import napari
    from napari.layers import Layer
    from napari.qt.threading import GeneratorWorker

__all__ = ["Failure", "LayerJob", "Written"]

Item = TypeVar("Item")


@dataclass(frozen=True)
class Failure:
    """An expected failure, yielded by a worker body instead of raised: a sentence for the
    user (raised exceptions in a superqt worker can end up as bare warnings)."""

    message: str


@dataclass(frozen=True)
class Written:
    """What writing one item did, for the status line: ``"{what} (5/20, ~3 s left){note}"``."""

    what: str
    note: str = ""


class LayerJob(Generic[Item]):
    """A generator worker whose items are written into layers on the main thread.

    ``layers`` maps a role ("output Labels", "image") to the layers the job needs; removing one
    stops the job. ``noun`` names the job in status lines ("propagation done: 12 frame(s)").
    """

    status = Signal(str)
    finished = Signal()
    noun: ClassVar[str] = "job"

    def __init__(self, viewer: napari.viewer.Viewer, layers: Mapping[str, Layer]) -> None:
        self.viewer = viewer
        self.layers = dict(layers)
        self.total = 0
        self.frames_done = 0
        self.stopped = False
        self.error: str | None = None
        self._worker: GeneratorWorker[Any, Any, Any] | None = None
        self._started = 0.0

    @property
    def running(self) -> bool:
        return self._worker is not None

    def write(self, item: Item) -> Written:
        """Write one item into the layers (main thread); returns what was done, for the
        status line. ValueError stops the job with its message."""
        raise NotImplementedError

    def on_finished(self) -> None:
        """Hook run once the worker has ended, before ``finished`` (closing undo blocks)."""

    def summary(self) -> str:
        """Appended to the closing status line, after :meth:`on_finished` (e.g. tracking's
        ``": 5 tracks, 1 division(s)"``); nothing by default."""
        return ""

    def start(
        self,
        body: Callable[..., Generator[Item | Failure, None, None]],
        *args: Any,
        total: int,
        desc: str,
        status: str,
    ) -> None:
        """Run ``body(*args)`` in a generator worker with a progress bar of ``total`` steps."""
        from napari.qt.threading import create_worker

        if self.running:
            raise RuntimeError(f"this {self.noun} is already running")
        self.total = int(total)
        worker = create_worker(body, *args, _progress={"total": self.total, "desc": desc})
        worker.yielded.connect(self._on_yielded)
        worker.errored.connect(self._on_errored)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self._started = time.perf_counter()
        self.status.emit(status)
        worker.start()

    def stop(self) -> None:
        """Stop after the step in flight; what was written stays."""
        if self._worker is not None and not self.stopped:
            self.stopped = True
            self._worker.quit()
            self.status.emit("stopping after the current frame…")

    def fail(self, message: str) -> None:
        """Stop with ``message``, shown once as an error notification (the first one wins)."""
        from napari.utils.notifications import show_error

        if self.error is None:
            self.error = message
            show_error(message)
            self.status.emit(message)
        self.stop()

    def _layers_gone(self) -> str | None:
        for role, layer in self.layers.items():
            if layer not in self.viewer.layers:
                return (
                    f"{self.noun} stopped: the {role} layer {layer.name!r} was removed; "
                    f"{self.frames_done} frame(s) were done"
                )
        return None

    def _on_yielded(self, item: Item | Failure) -> None:
        if self.error is not None:
            return  # the worker may yield once more before it sees quit()
        if isinstance(item, Failure):
            self.fail(item.message)
            return
        gone = self._layers_gone()
        if gone is not None:
            self.fail(gone)
            return
        try:
            done = self.write(item)
        except ValueError as exc:
            self.fail(f"{self.noun} stopped: {exc}")
            return
        self.frames_done += 1
        elapsed = time.perf_counter() - self._started
        eta = elapsed / self.frames_done * max(self.total - self.frames_done, 0)
        self.status.emit(
            f"{done.what} ({self.frames_done}/{self.total}, ~{eta:.0f} s left){done.note}"
        )

    def _on_errored(self, exc: BaseException) -> None:
        self.fail(f"{self.noun} failed: {type(exc).__name__}: {exc}")

    def _on_finished(self) -> None:
        self._worker = None
        self.on_finished()
        if self.error is None:
            seconds = time.perf_counter() - self._started
            verb = "stopped after" if self.stopped else "done:"
            self.status.emit(
                f"{self.noun} {verb} {self.frames_done} frame(s) in {seconds:.1f} s{self.summary()}"
            )
        self.finished.emit()
