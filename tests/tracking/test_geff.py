"""GEFF export: read back by geff's own reader and validators, and never replacing foreign data."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geff
import numpy as np
import pytest
from geff.validate.data import ValidationConfig
from geff.validate.segmentation import has_seg_ids_at_time_points

from napari_sam2.tracking.geff_export import MARK, NotOurGeffError, check_geff_path, write_geff
from napari_sam2.tracking.lineage import Lineage
from napari_sam2.tracking.results import TrackingResult

FULL_CHECK = ValidationConfig(graph=True, tracklet=True, lineage=True)
Node = tuple[int, int]  # (track_id, t)


def stack() -> tuple[np.ndarray, Lineage]:
    """Six frames: track 1 divides on frame 3 into 5 and 6; 6 misses frame 4, and the
    unrelated track 4 misses frame 2 (gaps inside a track)."""
    lineage = Lineage()
    lineage.add_track(0, track_id=1)
    lineage.add_track(0, track_id=4)
    for t in (1, 2):
        lineage.mark_present(1, t)
    for t in (1, 3, 4, 5):
        lineage.mark_present(4, t)
    assert lineage.divide(1, 3) == (5, 6)
    for t in (4, 5):
        lineage.mark_present(5, t)
    lineage.mark_present(6, 5)
    labels = np.zeros((6, 32, 40), np.uint16)
    labels[0:3, 2:6, 10:18] = 1  # 4 x 8: centroid (3.5, 13.5), area 32
    labels[3:6, 2:6, 10:14] = 5
    labels[[3, 5], 2:6, 15:18] = 6
    labels[[0, 1, 3, 4, 5], 20:30, 25:35] = 4
    return labels, lineage


PRESENT = {1: [0, 1, 2], 4: [0, 1, 3, 4, 5], 5: [3, 4, 5], 6: [3, 5]}
TRACK_EDGES = {
    ((k, a), (k, b)) for k, frames in PRESENT.items() for a, b in itertools.pairwise(frames)
}
EXPECTED_EDGES = TRACK_EDGES | {((1, 2), (5, 3)), ((1, 2), (6, 3))}


def read_back(path: Path) -> tuple[Any, Any, dict[Node, Any]]:
    """geff.read with every data check on, and the nodes by (track_id, t)."""
    geff.validate_structure(path)
    graph, metadata = geff.read(path, data_validation=FULL_CHECK)
    by_key = {(int(d["track_id"]), int(d["t"])): n for n, d in graph.nodes(data=True)}
    return graph, metadata, by_key


def edge_keys(graph: Any) -> set[tuple[Node, Node]]:
    key = {n: (int(d["track_id"]), int(d["t"])) for n, d in graph.nodes(data=True)}
    return {(key[a], key[b]) for a, b in graph.edges}


def test_lineage_reads_back_with_geffs_reader(tmp_path: Path) -> None:
    """One node per (track, frame) presence; edges along tracks (across gaps) and from the
    mother's last node to each daughter's first; centroid, area and axes as written."""
    labels, lineage = stack()
    summary = write_geff(tmp_path / "lineage.geff", labels, lineage)
    graph, metadata, nodes = read_back(tmp_path / "lineage.geff")
    presences = {(k, t) for k, frames in PRESENT.items() for t in frames}
    assert set(nodes) == presences and graph.number_of_nodes() == len(presences) == 13
    assert edge_keys(graph) == EXPECTED_EDGES and graph.number_of_edges() == 11
    assert ((4, 1), (4, 3)) in edge_keys(graph) and ((6, 3), (6, 5)) in edge_keys(graph)
    first = graph.nodes[nodes[(1, 0)]]
    assert (first["y"], first["x"], first["area"]) == (3.5, 13.5, 32)
    assert first["seg_id"] == first["track_id"] == 1
    assert {graph.nodes[nodes[(k, PRESENT[k][0])]]["lineage_id"] for k in PRESENT} == {1, 4}
    assert graph.is_directed() and metadata.directed
    assert metadata.axes is not None
    assert [(a.name, a.type, a.unit) for a in metadata.axes] == [
        ("t", "time", "frame"),
        ("y", "space", "pixel"),
        ("x", "space", "pixel"),
    ]
    assert (metadata.axes[0].min, metadata.axes[0].max) == (0, 5)
    assert metadata.track_node_props == {"tracklet": "track_id", "lineage": "lineage_id"}
    assert MARK in metadata.extra
    assert (summary.nodes, summary.edges, summary.tracks, summary.links) == (13, 11, 4, 2)
    ts, seg = zip(*((d["t"], d["seg_id"]) for _, d in graph.nodes(data=True)))
    assert has_seg_ids_at_time_points(labels, ts, seg)[0]


def test_a_zyx_stack_read_from_dask_gets_a_z_axis(tmp_path: Path) -> None:
    """(T, Z, Y, X) labels, given as a dask array, give a z centroid and axes t, z, y, x."""
    import dask.array as da

    labels = np.zeros((2, 4, 8, 8), np.uint32)
    labels[:, 1:3, 2:4, 4:8] = 7
    write_geff(tmp_path / "g.geff", da.from_array(labels, chunks=(1, 4, 8, 8)))
    graph, metadata, nodes = read_back(tmp_path / "g.geff")
    assert [a.name for a in metadata.axes] == ["t", "z", "y", "x"]
    node = graph.nodes[nodes[(7, 1)]]
    assert (node["z"], node["y"], node["x"], node["area"]) == (1.5, 2.5, 5.5, 16)
    assert edge_keys(graph) == {((7, 0), (7, 1))}


def test_a_mother_with_one_daughter_declares_no_tracklets(tmp_path: Path) -> None:
    """Daughter 6 without pixels leaves 1 → 5 unbranched: track_id is no GEFF tracklet then,
    and only the lineage is declared (which geff's lineage check accepts)."""
    labels, lineage = stack()
    labels[labels == 6] = 0
    summary = write_geff(tmp_path / "g.geff", labels, lineage)
    _, metadata, _ = read_back(tmp_path / "g.geff")
    assert not summary.tracklets and summary.links == 1
    assert metadata.track_node_props == {"lineage": "lineage_id"}


def test_a_mother_skipped_for_lack_of_pixels_links_the_grandmother(tmp_path: Path) -> None:
    """A mother with no pixels hands her daughters to her nearest ancestor that has some."""
    labels = np.zeros((3, 8, 8), np.uint8)
    labels[0, :2, :2] = 1
    labels[2, :2, :2] = 3
    labels[2, 5:, 5:] = 4
    lineage = Lineage.from_rows([(1, 0, 0, 0), (2, 1, 1, 1), (3, 2, 2, 2), (4, 2, 2, 2)])
    write_geff(tmp_path / "g.geff", labels, lineage)
    graph, _, _ = read_back(tmp_path / "g.geff")
    assert edge_keys(graph) == {((1, 0), (3, 2)), ((1, 0), (4, 2))}


def test_a_mother_present_after_her_daughter_starts_is_an_error(tmp_path: Path) -> None:
    """The message names the daughter, the mother and both frames; nothing is written."""
    labels, lineage = stack()
    labels[3, 10:12, 0:2] = 1  # the mother is still there when her daughters start
    with pytest.raises(ValueError, match="track 5 starts on frame 3 but its mother 1 is still"):
        write_geff(tmp_path / "g.geff", labels, lineage)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.zeros((4, 4), np.uint8), r"\(T, Y, X\) or \(T, Z, Y, X\)"),
        (np.zeros((2, 4, 4), np.float32), "integer track ids"),
        (np.full((2, 4, 4), -3, np.int16), "negative labels"),
    ],
)
def test_bad_labels_are_refused(tmp_path: Path, labels: np.ndarray, message: str) -> None:
    """Not a time-lapse, not integers, negative ids: each is a ValueError that says so."""
    with pytest.raises(ValueError, match=message):
        write_geff(tmp_path / "g.geff", labels)


def test_an_existing_store_needs_overwrite_and_is_then_replaced(tmp_path: Path) -> None:
    """Our own store: FileExistsError without overwrite, replaced with it, and no temporary
    siblings left beside it. An empty folder is simply filled."""
    labels, lineage = stack()
    path = tmp_path / "lineage.geff"
    write_geff(path, labels, lineage)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_geff(path, labels[:2], lineage)
    write_geff(path, labels[:2], lineage, overwrite=True)
    graph, _, _ = read_back(path)
    assert graph.number_of_nodes() == 4
    assert [p.name for p in tmp_path.iterdir()] == ["lineage.geff"]
    (tmp_path / "empty.geff").mkdir()
    write_geff(tmp_path / "empty.geff", labels, lineage)
    assert read_back(tmp_path / "empty.geff")[0].number_of_nodes() == 13


def _plain_folder(path: Path) -> None:
    """no geff metadata in .zattrs or zarr.json"""
    path.mkdir()
    (path / "notes.txt").write_text("my notes")
    (path / ".zattrs").write_text('{"other": 1}')


def _a_file(path: Path) -> None:
    """not a folder"""
    path.write_bytes(b"\x00data")


def _another_tools_geff(path: Path) -> None:
    """a GEFF store from another tool"""
    from geff.core_io import write_arrays

    ids = np.arange(2, dtype=np.uint64)
    metadata = geff.GeffMetadata(directed=True, node_props_metadata={}, edge_props_metadata={})
    write_arrays(str(path), ids, {}, np.array([[0, 1]], np.uint64), {}, metadata)


def _our_geff_with_more_inside(path: Path) -> None:
    """it also holds image"""
    labels, lineage = stack()
    write_geff(path, labels, lineage)
    (path / "image").mkdir()
    (path / "image" / "0.0").write_bytes(b"pixels")


@pytest.mark.parametrize(
    "make", [_plain_folder, _a_file, _another_tools_geff, _our_geff_with_more_inside]
)
def test_foreign_paths_are_never_replaced(tmp_path: Path, make: Callable[[Path], None]) -> None:
    """Whatever is not a store written here is refused even with overwrite=True, with the
    reason (the maker's docstring) in the message, and left byte-identical."""
    path = tmp_path / "lineage.geff"
    make(path)
    before = _snapshot(tmp_path)
    labels, lineage = stack()
    assert make.__doc__ is not None
    with pytest.raises(NotOurGeffError, match=make.__doc__) as caught:
        write_geff(path, labels, lineage, overwrite=True)
    assert isinstance(caught.value, FileExistsError) and "left untouched" in str(caught.value)
    assert _snapshot(tmp_path) == before


def test_a_failed_write_keeps_the_previous_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The new store is written beside the old one: if writing fails, the old one stays and
    the half-written sibling is removed."""
    import geff.core_io

    labels, lineage = stack()
    path = tmp_path / "lineage.geff"
    write_geff(path, labels, lineage)
    before = _snapshot(tmp_path)

    def broken(*args: Any, **kwargs: Any) -> None:
        Path(args[0]).mkdir()
        raise OSError("disk full")

    monkeypatch.setattr(geff.core_io, "write_arrays", broken)
    with pytest.raises(OSError, match="disk full"):
        write_geff(path, labels[:2], lineage, overwrite=True)
    assert _snapshot(tmp_path) == before


def test_headless_results_hold_the_geff(tmp_path: Path) -> None:
    """The command line's results folder gets lineage.geff; a foreign lineage.geff there is
    refused before any tracking, even with --overwrite."""
    from napari_sam2.headless import _prepare_out, _write_outputs

    labels, lineage = stack()
    result = TrackingResult(labels, lineage, [], first_frame=0, last_frame=5)
    out = tmp_path / "results"
    out.mkdir()
    _write_outputs(out, labels, labels, result, None)
    graph, _, _ = read_back(out / "lineage.geff")
    assert edge_keys(graph) == EXPECTED_EDGES
    with pytest.raises(FileExistsError, match=r"lineage\.geff"):
        _prepare_out(out, overwrite=False)
    _prepare_out(out, overwrite=True)  # our own store: replaced later
    foreign = tmp_path / "other"
    foreign.mkdir()
    _plain_folder(foreign / "lineage.geff")
    with pytest.raises(NotOurGeffError):
        _prepare_out(foreign, overwrite=True)
    check_geff_path(out / "missing.geff")


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with its bytes (None for folders)."""
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(folder.rglob("*"))
    }
