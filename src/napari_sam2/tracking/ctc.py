"""Cell Tracking Challenge (CTC) export and import: ``mask###.tif`` + ``res_track.txt``.

The format's rules, checked here with errors that name the track and frame:

- one uint16 label image per frame, ``mask000.tif`` … (4 digits past 1000 frames);
- ``res_track.txt`` has one line "L B E P" per track: label, first and last frame
  (inclusive), parent label (0: none);
- a track is present on every frame from B to E (no gaps), and a parent ends before its
  children start;
- the official evaluation treats a frame without any cell as invalid.

Start and end frames are read from the labels themselves, so a lineage only contributes the
parent links. A track that vanishes for a few frames is written, as the CTC prescribes, as a
new track whose parent is the part before the gap (``on_gap="split"``).

An export never deletes or replaces a file it did not write: it leaves a small marker
(``.napari-sam2-ctc.json``, the name, size and time of every file written) and a later export
replaces exactly those files, and only while they are unchanged. A folder holding anything
else (a hand-corrected mask, Cellpose output, a result of another tool or of a version before
the marker) is refused with :class:`NotOurCTCError`, whatever ``overwrite`` says.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from napari_sam2.tracking.ctc_folder import NotOurCTCError, check_folder, write_marker
from napari_sam2.tracking.lineage import Lineage

__all__ = [
    "CTCData",
    "CTCTrack",
    "NotOurCTCError",
    "ctc_tracks",
    "parents_from_metadata",
    "read_ctc",
    "write_ctc",
    "write_ctc_labels",
]

TRACK_FILE = "res_track.txt"
GT_TRACK_FILE = "man_track.txt"
_UINT16_MAX = 65535


@dataclass(frozen=True)
class CTCTrack:
    """One line of a CTC track file."""

    label: int
    start: int
    end: int
    parent: int


@dataclass
class CTCData:
    """A CTC folder read back: (T, [Z,] Y, X) labels and their track table."""

    labels: np.ndarray
    tracks: list[CTCTrack]

    def lineage(self) -> Lineage:
        return Lineage.from_rows((t.label, t.start, t.end, t.parent) for t in self.tracks)


ParentsLike = Lineage | Mapping[int, Any] | Iterable[Iterable[int]] | None


def _parent_map(parents: ParentsLike) -> dict[int, int]:
    """``{child: parent}`` from a Lineage, a mapping (values int or [int]) or L B E P rows."""
    if parents is None:
        return {}
    if isinstance(parents, Lineage):
        return parents.parents()
    if isinstance(parents, Mapping):
        out = {}
        for child, parent in parents.items():
            if isinstance(parent, list | tuple | np.ndarray):
                if len(parent) > 1:
                    raise ValueError(
                        f"track {child} has {len(parent)} parents {list(parent)}; CTC tracks "
                        "have at most one (merges cannot be written)"
                    )
                parent = parent[0] if len(parent) else 0
            if int(parent):
                out[int(child)] = int(parent)
        return out
    out = {}
    for row in parents:
        values = [int(v) for v in row]
        if len(values) != 4:
            raise ValueError(f"track rows must be (L, B, E, P), got {values}")
        if values[3]:
            out[values[0]] = values[3]
    return out


def ctc_tracks(
    labels: Any,
    parents: ParentsLike = None,
    *,
    on_gap: Literal["split", "raise"] = "split",
    allow_empty_frames: bool = False,
) -> tuple[list[CTCTrack], dict[int, dict[int, int]]]:
    """The CTC track table of a labels stack, and the relabelling gaps need.

    Returns the tracks and ``{frame: {old label: new label}}`` for the parts after gaps.
    Parents missing from the labels are skipped up to the nearest ancestor that is present.
    """
    n_frames = int(labels.shape[0])
    frames_of: dict[int, list[int]] = {}
    empty = []
    for t in range(n_frames):
        ids = np.unique(np.asarray(labels[t]))
        ids = ids[ids != 0]
        if len(ids) and ids.min() < 0:
            raise ValueError(f"frame {t} holds negative labels; labels must be ≥ 0")
        if not len(ids):
            empty.append(t)
        for label in ids.tolist():
            frames_of.setdefault(int(label), []).append(t)
    if empty and not allow_empty_frames:
        raise ValueError(
            f"frame(s) {_ranges(empty)} hold no cell; the CTC evaluation rejects empty frames "
            "(pass allow_empty_frames=True to write them anyway)"
        )
    if not frames_of:
        raise ValueError("the labels hold no cells at all; there is nothing to export")
    links = _parent_map(parents)
    next_label = max(frames_of) + 1
    relabel: dict[int, dict[int, int]] = {}
    last_part: dict[int, CTCTrack] = {}
    tracks: list[CTCTrack] = []
    for label in sorted(frames_of):
        runs = _runs(frames_of[label])
        if len(runs) > 1 and on_gap == "raise":
            missing = [t for a, b in itertools.pairwise(runs) for t in range(a[1] + 1, b[0])]
            raise ValueError(
                f"track {label} is missing on frame(s) {_ranges(missing)} between its first "
                f"frame {runs[0][0]} and last frame {runs[-1][1]}; CTC tracks cannot have gaps "
                "(use on_gap='split' to write each part as a child of the one before)"
            )
        previous = 0
        for i, (start, end) in enumerate(runs):
            new = label if i == 0 else next_label
            if i:
                next_label += 1
                for t in range(start, end + 1):
                    relabel.setdefault(t, {})[label] = new
            track = CTCTrack(new, start, end, previous)
            tracks.append(track)
            previous = new
        last_part[label] = tracks[-1]
    by_label = {t.label: t for t in tracks}
    for label in sorted(frames_of):
        parent = links.get(label, 0)
        seen = {label}
        while parent and parent not in frames_of:  # skip ancestors with no masks left
            if parent in seen:
                raise ValueError(f"the parent links around track {label} form a cycle")
            seen.add(parent)
            parent = links.get(parent, 0)
        if not parent:
            continue
        mother = last_part[parent]
        child = by_label[label]
        if mother.end >= child.start:
            raise ValueError(
                f"track {label} starts on frame {child.start} but its parent {parent} is still "
                f"present on frame {mother.end}; a parent must end before its children start"
            )
        by_label[label] = CTCTrack(child.label, child.start, child.end, mother.label)
    tracks = sorted(by_label.values(), key=lambda t: t.label)
    if tracks[-1].label > _UINT16_MAX:
        raise ValueError(
            f"label {tracks[-1].label} exceeds 65535; CTC masks are 16-bit, so relabel the "
            "tracks with smaller ids first"
        )
    return tracks, relabel


def write_ctc(
    folder: str | os.PathLike[str],
    labels: Any,
    parents: ParentsLike = None,
    *,
    on_gap: Literal["split", "raise"] = "split",
    allow_empty_frames: bool = False,
    overwrite: bool = False,
) -> list[CTCTrack]:
    """Write ``labels`` (T, [Z,] Y, X) and their lineage as a CTC result folder.

    ``parents`` is a :class:`Lineage`, ``{child: parent}`` (napari's ``{child: [parent]}``
    works too) or "L B E P" rows; start and end frames always come from the labels.

    ``folder`` must be empty (or new) or hold an earlier export of ours: that one raises
    FileExistsError unless ``overwrite``, which replaces exactly the files the marker lists.
    Any other file in the folder (hidden ones aside) raises :class:`NotOurCTCError` and
    nothing is written: mask files of another origin would mix with ours in the result.
    The new files are written aside first, so a failed export leaves the old one in place.
    """
    shape = tuple(int(s) for s in labels.shape)
    if len(shape) not in (3, 4):
        raise ValueError(
            f"CTC export needs a (T, Y, X) or (T, Z, Y, X) labels stack, got shape {shape}"
        )
    tracks, relabel = ctc_tracks(
        labels, parents, on_gap=on_gap, allow_empty_frames=allow_empty_frames
    )
    import tifffile

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    old = check_folder(folder, overwrite)
    staging = Path(tempfile.mkdtemp(prefix=".napari-sam2-ctc-", dir=folder))
    try:
        digits = max(3, len(str(shape[0] - 1)))
        for t in range(shape[0]):
            frame = np.asarray(labels[t]).astype(np.int64)
            for before, after in relabel.get(t, {}).items():
                frame[frame == before] = after
            tifffile.imwrite(
                staging / f"mask{t:0{digits}d}.tif",
                frame.astype(np.uint16),
                photometric="minisblack",
            )
        lines = [f"{t.label} {t.start} {t.end} {t.parent}" for t in tracks]
        (staging / TRACK_FILE).write_text("\n".join(lines) + "\n")
        old = check_folder(folder, overwrite)  # again: something may have appeared meanwhile
        for path in old:
            path.unlink(missing_ok=True)
        written = sorted(staging.iterdir())
        for path in written:
            os.replace(path, folder / path.name)
        write_marker(folder, [p.name for p in written])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return tracks


def read_ctc(folder: str | os.PathLike[str]) -> CTCData:
    """Read a CTC result (``mask*.tif`` + ``res_track.txt``) or ground-truth ``TRA`` folder
    (``man_track*.tif`` + ``man_track.txt``), checking that masks and table agree."""
    import tifffile

    folder = Path(folder)
    layouts = [(TRACK_FILE, r"mask(\d+)\.tif"), (GT_TRACK_FILE, r"man_track(\d+)\.tif")]
    found = [(name, pattern) for name, pattern in layouts if (folder / name).exists()]
    if not found:
        raise FileNotFoundError(f"{folder} has neither {TRACK_FILE} nor {GT_TRACK_FILE}")
    table_name, pattern = found[0]
    table = folder / table_name
    files = sorted(
        (int(m.group(1)), p) for p in folder.iterdir() if (m := re.fullmatch(pattern, p.name))
    )
    if not files:
        raise FileNotFoundError(f"{folder} has {table_name} but no mask images")
    numbers = [n for n, _ in files]
    if numbers != list(range(len(files))):
        raise ValueError(f"{folder}: mask files must be numbered 0..{len(files) - 1} without holes")
    labels = np.stack([tifffile.imread(p) for _, p in files])
    tracks = []
    for i, line in enumerate(table.read_text().splitlines()):
        if not line.strip():
            continue
        values = line.split()
        if len(values) != 4:
            raise ValueError(f"{table.name} line {i + 1}: expected 'L B E P', got {line!r}")
        tracks.append(CTCTrack(*(int(v) for v in values)))
    _check_table(labels, tracks, table.name)
    return CTCData(labels=labels, tracks=tracks)


def _check_table(labels: np.ndarray, tracks: list[CTCTrack], name: str) -> None:
    by_label = {t.label: t for t in tracks}
    if len(by_label) != len(tracks):
        raise ValueError(f"{name} lists a label more than once")
    for t in tracks:
        if t.end < t.start:
            raise ValueError(f"{name}: track {t.label} ends (frame {t.end}) before it starts")
        if t.parent and t.parent not in by_label:
            raise ValueError(f"{name}: track {t.label} names parent {t.parent}, not in the file")
        if t.parent and by_label[t.parent].end >= t.start:
            raise ValueError(
                f"{name}: track {t.label} starts on frame {t.start} but its parent {t.parent} "
                f"ends on frame {by_label[t.parent].end}"
            )
    for frame in range(labels.shape[0]):
        found = set(np.unique(labels[frame]).tolist()) - {0}
        expected = {t.label for t in tracks if t.start <= frame <= t.end}
        if found != expected:
            raise ValueError(
                f"frame {frame}: masks hold labels {sorted(found)} but {name} lists "
                f"{sorted(expected)} there"
            )


def parents_from_metadata(metadata: Mapping[str, Any] | None) -> ParentsLike:
    """The lineage a Labels layer carries in ``metadata["lineage"]`` (as written by the
    tracker: :meth:`Lineage.to_dict`, a Lineage, ``{child: parent}`` or L B E P rows)."""
    if not metadata:
        return None
    value = metadata.get("lineage")
    if value is None or isinstance(value, Lineage):
        return value
    if isinstance(value, Mapping) and "tracks" in value:
        return Lineage.from_dict(value)
    if isinstance(value, Mapping):
        return {int(k): v for k, v in value.items()}
    return list(value)


def write_ctc_labels(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """npe2 writer: save a tracked Labels layer as a CTC result folder at ``path``.

    The lineage comes from the layer's ``metadata["lineage"]``; without one every track is a
    root. Gaps are split into parent/child parts; empty frames are written (napari users may
    track part of a stack) and are the only relaxation of the CTC rules. Saving again to the
    same folder replaces our earlier export there; a folder with any other files (e.g. masks
    from Cellpose or corrected by hand) raises :class:`NotOurCTCError` and is left as it is.
    """
    parents = parents_from_metadata(attributes.get("metadata"))
    tracks = write_ctc(path, data, parents, allow_empty_frames=True, overwrite=True)
    folder = Path(path)
    digits = max(3, len(str(int(data.shape[0]) - 1)))
    written = [str(folder / f"mask{t:0{digits}d}.tif") for t in range(int(data.shape[0]))]
    return [*written, str(folder / TRACK_FILE)] if tracks else written


def _runs(frames: list[int]) -> list[tuple[int, int]]:
    """Sorted frames → contiguous (start, end) runs."""
    runs: list[tuple[int, int]] = []
    for t in frames:
        if runs and t == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], t)
        else:
            runs.append((t, t))
    return runs


def _ranges(frames: list[int]) -> str:
    parts = [f"{a}" if a == b else f"{a}–{b}" for a, b in _runs(sorted(frames))]
    return ", ".join(parts[:8]) + (", …" if len(parts) > 8 else "")
