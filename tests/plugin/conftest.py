"""GUI fixtures: a small random model and viewers with the widget added via the manifest."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from napari_sam2.segment.widget import SegmentWidget
from tests.plugin.session import WAIT_MS, Session


@pytest.fixture(scope="session")
def fast_predictor() -> Any:
    """A random-weight SAM 2.1 tiny at 256 px: real code paths, ~0.2 s per embedding."""
    import torch

    from sam2.build_sam import build_sam2
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    torch.manual_seed(0)
    model = build_sam2("tiny", device="cpu", hydra_overrides_extra=["++model.image_size=256"])
    return SAM2ImagePredictor(model)


@pytest.fixture(scope="session")
def fast_model(fast_predictor: Any) -> Any:
    """The same model as :func:`fast_predictor`, as the widgets' model loaders return it."""
    from napari_sam2.models import LoadedModel

    return LoadedModel(fast_predictor.model)


@pytest.fixture
def open_session(
    make_napari_viewer: Callable[..., Any], qtbot: Any, fast_model: Any
) -> Iterator[Callable[[str | None], Session]]:
    """Open a sample (or nothing), add the widget via the manifest, inject the fast model."""
    sessions: list[Session] = []

    def factory(sample: str | None = "cells_timelapse") -> Session:
        viewer = make_napari_viewer()
        if sample is not None:
            viewer.open_sample("napari-sam2", sample)
        _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2 segmentation")
        assert isinstance(widget, SegmentWidget)
        widget.set_model_factory(lambda: fast_model)
        sessions.append(Session(viewer, widget, qtbot))
        return sessions[-1]

    yield factory
    for session in sessions:  # never leave a worker running into the viewer's teardown
        for controller in session.widget._controllers.values():
            controller.stop()
            qtbot.waitUntil(lambda c=controller: not c.busy and not c.propagating, timeout=WAIT_MS)
