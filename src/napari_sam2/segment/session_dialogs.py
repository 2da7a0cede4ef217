"""Where the segment widget saves and opens sessions: the file dialogs and their folder.

A session is the prompts (``<name>.sam2.json``) and labels saved beside the data by
:meth:`~napari_sam2.segment.controller.SegmentController.save_session`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtpy.QtWidgets import QFileDialog, QWidget

__all__ = ["ask_open_path", "ask_save_path", "session_dir"]

FILTER = "SAM 2 sessions (*.sam2.json)"


def session_dir(image: Any) -> str:
    """Beside the image's file when napari knows it, else the working directory."""
    source = getattr(getattr(image, "source", None), "path", None)
    return str(Path(source).parent) if source else ""


def ask_save_path(parent: QWidget, image: Any) -> str:
    """The file the user picks to save ``image``'s session to ("" when cancelled)."""
    suggested = Path(session_dir(image)) / f"{image.name}.sam2.json"
    path, _ = QFileDialog.getSaveFileName(parent, "Save SAM 2 session", str(suggested), FILTER)
    return str(path)


def ask_open_path(parent: QWidget, image: Any) -> str:
    """The session file the user picks to open for ``image`` ("" when cancelled)."""
    path, _ = QFileDialog.getOpenFileName(parent, "Open SAM 2 session", session_dir(image), FILTER)
    return str(path)
