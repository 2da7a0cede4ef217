"""Which files of a CTC result folder our own export wrote, so that nothing else is deleted.

A folder chosen for an export may already hold masks of another origin: Cellpose output, masks
corrected by hand, another tool's result. :func:`write_marker` records the name, size and
modification time of every file an export wrote; :func:`check_folder` lets a later export
replace exactly those (while unchanged) and refuses the folder if it holds anything else.
Hidden files (``.DS_Store``, the marker, an interrupted export's staging folder) are ignored:
they are neither replaced nor part of the result.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["MARKER", "NotOurCTCError", "check_folder", "write_marker"]

#: What an export writes beside its files, so that the next one knows which files are its own.
MARKER = ".napari-sam2-ctc.json"
_FORMAT = "napari-sam2 CTC export"


class NotOurCTCError(FileExistsError):
    """The folder holds files that no napari-sam2 export wrote (or that changed since): an
    export never removes them, so this is raised even with ``overwrite=True``."""


def check_folder(folder: Path, overwrite: bool) -> list[Path]:
    """The files of our earlier export in ``folder`` that may be replaced; raises if there
    are others, or if there is an earlier export and not ``overwrite``."""
    ours = _our_files(folder)
    others = sorted(
        p.name for p in folder.iterdir() if not p.name.startswith(".") and p.name not in ours
    )
    if others:
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        raise NotOurCTCError(
            f"{folder} holds {len(others)} file(s) that no napari-sam2 CTC export wrote, or "
            f"that changed since ({shown}); they are left untouched and nothing was written. "
            "Choose an empty folder (e.g. a new 01_RES), or move those files away first"
        )
    if ours and not overwrite:
        raise FileExistsError(
            f"{folder} already holds a CTC result exported by napari-sam2 ({len(ours)} "
            "file(s)); choose an empty folder or pass overwrite=True to replace it"
        )
    return [folder / name for name in sorted(ours)]


def _our_files(folder: Path) -> set[str]:
    """Names of the files our marker lists that are still as written (same size and time)."""
    try:
        document = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        files = document["files"] if document.get("format") == _FORMAT else {}
        listed = {str(name): (int(size), int(mtime)) for name, (size, mtime) in files.items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return set()  # no marker, or not ours: nothing here is known to be ours
    ours = set()
    for name, stamp in listed.items():
        path = folder / name
        if Path(name).name == name and path.is_file() and _stamp(path) == stamp:
            ours.add(name)
    return ours


def _stamp(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_size, status.st_mtime_ns


def write_marker(folder: Path, names: list[str]) -> None:
    """Record ``names`` (just written into ``folder``) as ours, replacing the old marker."""
    document = {
        "format": _FORMAT,
        "files": {name: list(_stamp(folder / name)) for name in names},
    }
    temporary = folder / f"{MARKER}.tmp"
    temporary.write_text(json.dumps(document, indent=1), encoding="utf-8")
    os.replace(temporary, folder / MARKER)
