"""GEFF export of a tracked stack: one graph node per cell and frame, edges along the lineage.

GEFF (Graph Exchange File Format, https://liveimagetrackingtools.org/geff/) is the tracking
community's zarr-based graph format: node ids, ``(source, target)`` edge ids, one array per
property and metadata naming the spatiotemporal axes. It keeps what a CTC folder cannot: a
track that vanishes for a few frames stays one track (an edge spans the gap, no relabelling),
and centroids and areas travel with the graph, so a tracking tool can show and edit the
lineage without reading the masks.

What is written (with geff's own writer, which checks the structure before it returns):

- nodes: one per (track, frame) where the track has pixels in ``labels``, numbered in frame
  then track order, with properties ``t``, ``[z,] y, x`` (centroid, pixels), ``area`` (pixel or
  voxel count), ``track_id`` and ``seg_id`` (both the label value, so a reader finds the mask
  as ``labels[t] == seg_id``) and ``lineage_id`` (the track id of the lineage's root);
- edges: each track's presences in time order, a gap included, and the mother's last node to
  each daughter's first node (a mother without pixels is skipped up to its nearest ancestor
  with some, as the CTC export does);
- metadata: directed; axes ``t`` (time, unit ``frame``: the spec's word for "the stack's frame
  index") and ``[z,] y, x`` (space, unit ``pixel``: the physical pixel size is not known here);
  ``track_node_props`` names ``lineage_id`` and, where it is one, ``track_id`` as the tracklet.

A track with exactly one child is no GEFF tracklet (the spec's tracklet is a maximal
unbranched path, which would run on into the child), so then only the lineage is declared.

An existing path is replaced only with ``overwrite=True``, and only when it is a GEFF store
this module wrote (the mark in its metadata's ``extra``, nothing else inside): anything else is
left untouched. The new store is written under a hidden sibling name and renamed into place
when complete, so a failed export leaves the previous one as it was.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_sam2 import __version__
from napari_sam2.tracking.lineage import Lineage

__all__ = ["MARK", "GeffSummary", "NotOurGeffError", "check_geff_path", "write_geff"]

#: The key of the metadata's ``extra`` that says napari-sam2 wrote the store (and may replace it).
MARK = "napari_sam2"
#: What a store written here holds at its top level (zarr v2 and v3 metadata files).
_STORE_ENTRIES = frozenset({".zattrs", ".zgroup", "zarr.json", "nodes", "edges"})
_SPACE = ("z", "y", "x")
#: Each node property's description in the store (readers show it; the spec has no fixed words).
_DESCRIPTIONS = {
    "t": "frame index in the stack",
    "z": "centroid z of the mask",
    "y": "centroid y of the mask",
    "x": "centroid x of the mask",
    "area": "pixels (voxels in 3D) of the mask",
    "track_id": "the track: its label value from one event (entry, division) to the next",
    "seg_id": "the mask's label value on this frame (labels[t] == seg_id)",
    "lineage_id": "track id of the lineage's root track",
}


class NotOurGeffError(FileExistsError):
    """The path exists and is not a GEFF store napari-sam2 wrote, so it is never replaced."""


@dataclass(frozen=True)
class GeffSummary:
    """What :func:`write_geff` wrote: counts for a status line, and the tracklet choice."""

    path: Path
    nodes: int
    edges: int  # all edges: along tracks (gaps included) and mother → daughter
    tracks: int  # tracks with at least one node
    links: int  # mother → daughter edges
    tracklets: bool  # True when ``track_id`` is declared as the GEFF tracklet property


@dataclass
class _Graph:
    props: dict[str, np.ndarray]  # node property → (N,) values
    edges: np.ndarray  # (E, 2) node indices
    tracks: int
    links: int
    tracklets: bool


def write_geff(
    path: str | os.PathLike[str],
    labels: Any,
    lineage: Lineage | None = None,
    *,
    overwrite: bool = False,
) -> GeffSummary:
    """Write the lineage of ``labels`` ((T, Y, X) or (T, Z, Y, X) track ids) as a GEFF store.

    ``labels`` may be numpy, zarr or dask: it is read one frame at a time. ``lineage`` gives
    the mother of each daughter (None: every track is a root). Raises FileExistsError when
    ``path`` holds a GEFF store and not ``overwrite``, :class:`NotOurGeffError` (a
    FileExistsError) when it holds anything else, whatever ``overwrite`` says, and ValueError
    when the labels are not an integer stack or a mother is still present after its daughter
    starts.
    """
    shape = tuple(int(s) for s in labels.shape)
    if len(shape) not in (3, 4):
        raise ValueError(
            f"GEFF export needs a (T, Y, X) or (T, Z, Y, X) labels stack, got shape {shape}"
        )
    dtype = np.dtype(labels.dtype)
    if not np.issubdtype(dtype, np.integer):
        raise ValueError(f"labels must hold integer track ids, got dtype {dtype}")
    path = Path(path)
    check_geff_path(path, overwrite=overwrite)  # before reading every frame
    graph = _graph(labels, shape, lineage.parents() if lineage is not None else {})
    metadata = _metadata(graph, shape)
    from geff.core_io import write_arrays

    path.parent.mkdir(parents=True, exist_ok=True)
    staging = _sibling(path, "writing")
    try:
        write_arrays(
            str(staging),
            node_ids=np.arange(len(graph.props["t"]), dtype=np.uint64),
            node_props={name: {"values": v, "missing": None} for name, v in graph.props.items()},
            edge_ids=graph.edges.astype(np.uint64),
            edge_props={},
            metadata=metadata,
        )
        _move_into_place(staging, path, overwrite)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return GeffSummary(
        path, len(graph.props["t"]), len(graph.edges), graph.tracks, graph.links, graph.tracklets
    )


def check_geff_path(path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
    """Raise what :func:`write_geff` would raise about ``path`` itself, before any work.

    A missing path or an empty folder is fine; a GEFF store written here needs
    ``overwrite``; anything else raises :class:`NotOurGeffError`.
    """
    path = Path(path)
    if not (path.exists() or path.is_symlink()) or _is_empty_folder(path):
        return
    reason = _not_ours(path)
    if reason is not None:
        raise NotOurGeffError(
            f"{path} exists and is not a GEFF store written by napari-sam2 ({reason}); it is "
            "left untouched: choose another path"
        )
    if not overwrite:
        raise FileExistsError(
            f"{path} already holds a GEFF lineage; choose another path or pass overwrite=True "
            "to replace it"
        )


# ---------------------------------------------------------------------------- the graph
def _graph(labels: Any, shape: tuple[int, ...], parents: dict[int, int]) -> _Graph:
    props = _nodes(labels, shape)
    track_ids = props["track_id"]
    nodes_of: dict[int, list[int]] = {}  # track → its node indices, in time order
    for node, track in enumerate(track_ids.tolist()):
        nodes_of.setdefault(track, []).append(node)
    edges = [pair for nodes in nodes_of.values() for pair in itertools.pairwise(nodes)]
    mother_of = {track: _present_ancestor(track, parents, nodes_of) for track in nodes_of}
    frames = props["t"]
    children: dict[int, int] = {}
    links = 0
    for track in sorted(nodes_of):
        mother = mother_of[track]
        if not mother:
            continue
        last, first = nodes_of[mother][-1], nodes_of[track][0]
        if frames[last] >= frames[first]:
            raise ValueError(
                f"track {track} starts on frame {frames[first]} but its mother {mother} is still "
                f"present on frame {frames[last]}; a mother must end before her daughters start"
            )
        edges.append((last, first))
        children[mother] = children.get(mother, 0) + 1
        links += 1
    props["seg_id"] = track_ids.copy()
    props["lineage_id"] = np.array([_root(t, mother_of) for t in track_ids.tolist()], np.int64)
    return _Graph(
        props=props,
        edges=np.array(edges, dtype=np.int64).reshape(-1, 2),
        tracks=len(nodes_of),
        links=links,
        tracklets=1 not in children.values(),
    )


def _nodes(labels: Any, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """``t, [z,] y, x, area, track_id`` of every (frame, track) with pixels, frame by frame."""
    axes = _SPACE[4 - len(shape) :]
    columns: dict[str, list[np.ndarray]] = {name: [] for name in ("t", *axes, "area", "track_id")}
    for t in range(shape[0]):
        frame = np.asarray(labels[t])
        where = np.nonzero(frame)
        if not len(where[0]):
            continue
        ids, inverse, counts = np.unique(frame[where], return_inverse=True, return_counts=True)
        if ids[0] < 0:
            raise ValueError(f"frame {t} holds negative labels; track ids must be ≥ 0")
        columns["t"].append(np.full(len(ids), t, dtype=np.int64))
        for axis, coords in zip(axes, where):
            sums = np.bincount(inverse, weights=coords, minlength=len(ids))
            columns[axis].append(sums / counts)
        columns["area"].append(counts.astype(np.int64))
        columns["track_id"].append(ids.astype(np.int64))
    types = {"area": np.int64, "t": np.int64, "track_id": np.int64}
    return {
        name: np.concatenate(parts) if parts else np.zeros(0, types.get(name, np.float64))
        for name, parts in columns.items()
    }


def _present_ancestor(track: int, parents: dict[int, int], nodes_of: dict[int, list[int]]) -> int:
    """The nearest ancestor of ``track`` that has nodes (0: none)."""
    parent, seen = parents.get(track, 0), {track}
    while parent and parent not in nodes_of:
        if parent in seen:
            raise ValueError(f"the parent links around track {track} form a cycle")
        seen.add(parent)
        parent = parents.get(parent, 0)
    return parent


def _root(track: int, mother_of: dict[int, int]) -> int:
    while mother_of.get(track, 0):
        track = mother_of[track]
    return track


def _metadata(graph: _Graph, shape: tuple[int, ...]) -> Any:
    from geff_spec import Axis, DisplayHint, GeffMetadata, PropMetadata

    ndim = len(shape) - 1
    space = _SPACE[3 - ndim :]
    track_props: dict[Any, str] = {"lineage": "lineage_id"}
    if graph.tracklets:
        track_props["tracklet"] = "track_id"
    return GeffMetadata(
        directed=True,
        axes=[
            Axis(name="t", type="time", unit="frame"),
            *(Axis(name=axis, type="space", unit="pixel") for axis in space),
        ],
        node_props_metadata={
            name: PropMetadata(
                identifier=name, dtype=str(values.dtype), description=_DESCRIPTIONS[name]
            )
            for name, values in graph.props.items()
        },
        edge_props_metadata={},
        track_node_props=track_props,
        display_hints=DisplayHint(
            display_horizontal="x",
            display_vertical="y",
            display_depth="z" if ndim == 3 else None,
            display_time="t",
        ),
        extra={MARK: {"version": __version__, "labels_shape": list(shape)}},
    )


# ---------------------------------------------------------------------------- the store
def _sibling(path: Path, purpose: str) -> Path:
    """A hidden, unused name beside ``path`` (same folder, so renaming is atomic)."""
    return path.with_name(f".{path.name}.{purpose}-{uuid.uuid4().hex[:12]}")


def _move_into_place(staging: Path, path: Path, overwrite: bool) -> None:
    """Rename the finished store to ``path``, replacing only what :func:`check_geff_path` allows."""
    check_geff_path(path, overwrite=overwrite)  # again: something may have appeared meanwhile
    if _is_empty_folder(path):
        path.rmdir()
    if not (path.exists() or path.is_symlink()):
        staging.rename(path)
        return
    old = _sibling(path, "replaced")
    path.rename(old)
    try:
        staging.rename(path)
    except OSError:
        old.rename(path)
        raise
    shutil.rmtree(old)


def _is_empty_folder(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and not any(path.iterdir())


def _not_ours(path: Path) -> str | None:
    """Why ``path`` is not a store this module wrote (None: it is one)."""
    if path.is_symlink() or not path.is_dir():
        return "not a folder"
    meta = _attributes(path).get("geff")
    if not isinstance(meta, dict):
        return "no geff metadata in .zattrs or zarr.json"
    extra = meta.get("extra")
    if not isinstance(extra, dict) or MARK not in extra:
        return "a GEFF store from another tool"
    others = sorted(p.name for p in path.iterdir() if p.name not in _STORE_ENTRIES)
    if others:
        return f"it also holds {', '.join(others[:3])}{', …' if len(others) > 3 else ''}"
    return None


def _attributes(path: Path) -> dict[str, Any]:
    """The zarr group attributes of ``path`` (v2 ``.zattrs`` or v3 ``zarr.json``), or {}."""
    for name in (".zattrs", "zarr.json"):
        file = path / name
        if not file.is_file():
            continue
        try:
            data = json.loads(file.read_text())
        except (OSError, ValueError):
            return {}
        if name == "zarr.json" and isinstance(data, dict):
            data = data.get("attributes", {})
        return data if isinstance(data, dict) else {}
    return {}
