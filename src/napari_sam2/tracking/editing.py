"""Hand corrections of divisions: confirm, undo or add one, keeping labels and lineage in step.

Automatic divisions start unconfirmed, so a reviewer can walk through them; undoing or adding
one relabels the affected masks in place (numpy, memmap or zarr) and returns the frames it
touched, so a viewer refreshes only those.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from napari_sam2.tracking.lineage import Division, Lineage

__all__ = ["add_division", "confirm_division", "undo_division"]


def confirm_division(lineage: Lineage, mother: int) -> Division:
    """Mark the division of ``mother`` as checked by a person."""
    division = _division(lineage, mother)
    division.confirmed = True
    return division


def undo_division(
    lineage: Lineage, labels: Any, mother: int, keep: Literal["merge"] | int = "merge"
) -> list[int]:
    """Take back the division of ``mother``.

    ``keep="merge"``: it was no division; all daughters become the mother again (its mask is
    their union). ``keep=<daughter id>``: the mother simply continues as that daughter and the
    other daughters become independent cells (parent 0), e.g. a neighbour that drifted in.
    """
    division = _division(lineage, mother)
    if keep != "merge" and keep not in division.daughters:
        raise ValueError(
            f"keep must be 'merge' or one of the daughters {list(division.daughters)} of track "
            f"{mother}, got {keep!r}"
        )
    merged = list(division.daughters) if keep == "merge" else [int(keep)]
    del lineage.divisions[mother]
    touched = _relabel(labels, {d: mother for d in merged}, lineage[merged[0]].start)
    track = lineage[mother]
    for daughter in merged:
        _adopt(lineage, daughter, mother)
        track.end = max(track.end, lineage[daughter].end)
        del lineage.tracks[daughter]
    for daughter in division.daughters:
        if daughter not in merged:
            lineage[daughter].parent = 0
    return touched


def add_division(
    lineage: Lineage, labels: Any, mother: int, frame: int, sister: int
) -> tuple[int, int]:
    """Record that ``mother`` divides on ``frame``, into its own continuation and ``sister``.

    The mother's masks from ``frame`` on become a new daughter track; ``sister`` (a track that
    starts on ``frame`` or later, e.g. one the tracker took for a new cell, or one painted by
    hand) becomes the second daughter. Returns the two daughters' ids.
    """
    track = lineage[mother] if mother in lineage else None
    if track is None or sister not in lineage:
        missing = mother if track is None else sister
        raise ValueError(f"track {missing} does not exist")
    if mother in lineage.divisions:
        raise ValueError(
            f"track {mother} already divides on frame {lineage.divisions[mother].frame}"
        )
    if not track.start < frame <= track.end:
        raise ValueError(
            f"track {mother} is present on frames {track.start}–{track.end}; a division on "
            f"frame {frame} must leave it at least one frame and come before its end"
        )
    other = lineage[sister]
    if other.start < frame:
        raise ValueError(
            f"track {sister} starts on frame {other.start}, before the division on frame "
            f"{frame}; a daughter cannot exist before its mother divides"
        )
    if other.parent:
        raise ValueError(f"track {sister} already has a parent ({other.parent})")
    first = lineage.add_track(frame, parent=mother)
    first.end, first.active, track.active = track.end, track.active, False
    _relabel(labels, {mother: first.track_id}, frame)
    for child in lineage.children(mother):
        if child != first.track_id:
            lineage[child].parent = first.track_id
    track.end = _last_present(labels, mother, frame - 1, track.start)
    other.parent = mother
    daughters = (first.track_id, sister)
    lineage.divisions[mother] = Division(mother, daughters, int(frame), "manual", True)
    return daughters


def _division(lineage: Lineage, mother: int) -> Division:
    if mother not in lineage.divisions:
        known = sorted(lineage.divisions)
        raise ValueError(f"track {mother} has no division to change; dividing tracks: {known}")
    return lineage.divisions[mother]


def _adopt(lineage: Lineage, old: int, new: int) -> None:
    """Children and division of track ``old`` pass to track ``new``."""
    for child in lineage.children(old):
        lineage[child].parent = new
    if old in lineage.divisions:
        d = lineage.divisions.pop(old)
        lineage.divisions[new] = Division(new, d.daughters, d.frame, d.rule, d.confirmed)


def _relabel(labels: Any, mapping: dict[int, int], first_frame: int) -> list[int]:
    touched = []
    for t in range(max(int(first_frame), 0), int(labels.shape[0])):
        frame = np.asarray(labels[t])
        hit = np.isin(frame, list(mapping))
        if not hit.any():
            continue
        frame = frame.copy()
        for before, after in mapping.items():
            frame[frame == before] = after
        labels[t] = frame
        touched.append(t)
    return touched


def _last_present(labels: Any, track_id: int, last: int, first: int) -> int:
    for t in range(last, first - 1, -1):
        if (np.asarray(labels[t]) == track_id).any():
            return t
    return first
