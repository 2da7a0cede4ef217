"""Where the segment widget saves and opens sessions: the file dialogs and their folder.

A session is the prompts (``<name>.sam2.json``) and labels saved beside the data by
:meth:`~napari_sam2.segment.controller.SegmentController.save_session`. Replacing files is
asked once, by :func:`confirm_replace`, for every file the save would replace: the save
dialog's own question would only be about the ``.sam2.json`` and never about the labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtpy.QtWidgets import QFileDialog, QMessageBox, QWidget

__all__ = ["ask_open_path", "ask_save_path", "confirm_replace", "session_dir"]

FILTER = "SAM 2 sessions (*.sam2.json)"


def session_dir(image: Any) -> str:
    """Beside the image's file when napari knows it, else the working directory."""
    source = getattr(getattr(image, "source", None), "path", None)
    return str(Path(source).parent) if source else ""


def ask_save_path(parent: QWidget, image: Any) -> str:
    """The file the user picks to save ``image``'s session to ("" when cancelled)."""
    suggested = Path(session_dir(image)) / f"{image.name}.sam2.json"
    path, _ = QFileDialog.getSaveFileName(
        parent,
        "Save SAM 2 session",
        str(suggested),
        FILTER,
        options=QFileDialog.Option.DontConfirmOverwrite,  # confirm_replace asks, for all
    )
    return str(path)


def confirm_replace(parent: QWidget, paths: list[Path]) -> bool:
    """Whether the user agrees to replace ``paths`` (existing session or labels files)."""
    names = "\n".join(f"  {p.name}" for p in paths)
    answer = QMessageBox.question(
        parent,
        "Replace session files?",
        f"These files already exist in {paths[0].parent}:\n{names}\n\nReplace them?",
    )
    return bool(answer == QMessageBox.StandardButton.Yes)


def ask_open_path(parent: QWidget, image: Any) -> str:
    """The session file the user picks to open for ``image`` ("" when cancelled)."""
    path, _ = QFileDialog.getOpenFileName(parent, "Open SAM 2 session", session_dir(image), FILTER)
    return str(path)
