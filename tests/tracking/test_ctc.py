"""CTC export: valid folders, clear errors, round trips, and scores from py-ctcmetrics."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import numpy as np
import pytest

from napari_sam2.tracking import (
    Lineage,
    NotOurCTCError,
    TrackingParams,
    read_ctc,
    track_cells,
    write_ctc,
    write_ctc_labels,
)
from napari_sam2.tracking.ctc_folder import MARKER
from sam2.synthetic import SyntheticTimelapse
from sam2.synthetic_tracking import make_tracking_timelapse
from tests.tracking.ground_truth import GroundTruthMaskSource, evaluate, write_gt_folder


def validate(res: Path) -> int:
    from ctc_metrics.scripts.validate import validate_sequence

    with contextlib.redirect_stdout(io.StringIO()):
        return int(validate_sequence(str(res))["Valid"])


def run(data: SyntheticTimelapse, division: Literal["union", "first_daughter"], **kw: Any) -> Any:
    source = GroundTruthMaskSource(data, division, **kw)
    params = TrackingParams(entry_every=1, min_new_area=20)
    return track_cells(data.image, data.labels[0], 0, source, params)


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("division", ["union", "first_daughter"])
def test_tracking_scores_on_ground_truth(
    ctc_metrics: ModuleType,
    tmp_path: Path,
    seed: int,
    division: Literal["union", "first_daughter"],
) -> None:
    """Tracking synthetic cells with a ground-truth mask source scores TRA ≥ 0.99 and
    division F1 (py-ctcmetrics' BC(0), exact frame) ≥ 0.95 in a valid CTC folder."""
    data = make_tracking_timelapse(seed=seed)
    result = run(data, division)
    write_ctc(tmp_path / "01_RES", result.labels, result.lineage)
    gt = write_gt_folder(tmp_path, data)
    scores = evaluate(ctc_metrics, tmp_path / "01_RES", gt)
    assert scores["Valid"] == 1
    assert scores["TRA"] >= 0.99
    assert scores["gt_divisions"] == 3 and scores["BC(0)"] >= 0.95
    assert scores["CHOTA"] >= 0.95


def test_scores_drop_without_the_lineage(ctc_metrics: ModuleType, tmp_path: Path) -> None:
    """The same masks exported without parent links find no divisions (BC(0) = 0), while TRA
    barely moves: the division score above measures the lineage, not only the masks."""
    data = make_tracking_timelapse(seed=0)
    result = run(data, "union")
    write_ctc(tmp_path / "01_RES", result.labels, None)
    scores = evaluate(ctc_metrics, tmp_path / "01_RES", write_gt_folder(tmp_path, data))
    assert scores["BC(0)"] == 0 and 0.99 < scores["TRA"] < 1.0


def test_noisy_masks_still_track(ctc_metrics: ModuleType, tmp_path: Path) -> None:
    """Masks that grow or shrink by a pixel at random still give TRA ≥ 0.99 and every division
    within two frames (BC(2) ≥ 0.95)."""
    data = make_tracking_timelapse(seed=1)
    result = run(data, "union", jitter=1, seed=1)
    write_ctc(tmp_path / "01_RES", result.labels, result.lineage)
    gt = write_gt_folder(tmp_path, data)
    with contextlib.redirect_stdout(io.StringIO()):
        scores = ctc_metrics.evaluate_sequence(
            str(tmp_path / "01_RES"), str(gt), metrics=["TRA", "BC(2)"], threads=1
        )
    assert scores["TRA"] >= 0.99 and scores["BC(2)"] >= 0.95


def test_round_trip_and_file_names(tmp_path: Path) -> None:
    """mask000.tif… and res_track.txt read back to the same labels and rows."""
    data = make_tracking_timelapse(n_frames=12, seed=4)
    lineage = Lineage.from_rows(data.lineage)
    tracks = write_ctc(tmp_path, data.labels, lineage)
    assert (tmp_path / "mask000.tif").exists() and (tmp_path / "mask011.tif").exists()
    back = read_ctc(tmp_path)
    np.testing.assert_array_equal(back.labels, data.labels)
    assert [(t.label, t.start, t.end, t.parent) for t in back.tracks] == sorted(data.lineage)
    assert back.lineage().rows() == sorted(data.lineage)
    assert [(t.label, t.start, t.end, t.parent) for t in tracks] == sorted(data.lineage)


def test_four_digits_past_a_thousand_frames(tmp_path: Path) -> None:
    """1001 frames are named mask0000.tif … mask1000.tif."""
    labels = np.ones((1001, 2, 2), dtype=np.uint16)
    write_ctc(tmp_path, labels)
    assert (tmp_path / "mask0000.tif").exists() and (tmp_path / "mask1000.tif").exists()
    assert (tmp_path / "res_track.txt").read_text() == "1 0 1000 0\n"


def gapped() -> np.ndarray:
    labels = np.zeros((6, 8, 8), dtype=np.int32)
    labels[:, 0:2, 0:2] = 1
    labels[[0, 1, 4, 5], 5:7, 5:7] = 2  # missing on frames 2-3
    return labels


def test_a_gap_is_split_into_parent_and_child(ctc_metrics: ModuleType, tmp_path: Path) -> None:
    """A track missing for two frames is written as two tracks, the second a child of the
    first, relabelled in its masks; py-ctcmetrics finds the folder valid."""
    tracks = write_ctc(tmp_path, gapped())
    assert [(t.label, t.start, t.end, t.parent) for t in tracks] == [
        (1, 0, 5, 0),
        (2, 0, 1, 0),
        (3, 4, 5, 2),
    ]
    back = read_ctc(tmp_path)
    assert (back.labels[4:, 5:7, 5:7] == 3).all()
    assert validate(tmp_path) == 1


def test_a_gap_can_be_an_error(tmp_path: Path) -> None:
    """on_gap='raise' names the track and the missing frames."""
    with pytest.raises(ValueError, match=r"track 2 is missing on frame\(s\) 2–3"):
        write_ctc(tmp_path, gapped(), on_gap="raise")
    assert not list(tmp_path.iterdir())


def test_children_of_a_gapped_track_hang_from_its_last_part(tmp_path: Path) -> None:
    """A division after a gap links the daughters to the part after the gap."""
    labels = gapped()[:5]
    labels = np.concatenate([labels, np.zeros((2, 8, 8), np.int32)])
    labels[:, 0:2, 0:2] = 1
    labels[5:, 4:5, 4:5] = 8
    labels[5:, 7:8, 7:8] = 9
    tracks = write_ctc(tmp_path, labels, {8: 2, 9: 2})
    rows = {t.label: (t.start, t.end, t.parent) for t in tracks}
    assert rows[10] == (4, 4, 2) and rows[8] == (5, 6, 10) and rows[9] == (5, 6, 10)


def test_parent_still_present_when_child_starts_is_refused(tmp_path: Path) -> None:
    """A child that starts before its parent ends breaks the CTC rules: clear error."""
    labels = np.zeros((4, 8, 8), dtype=np.int32)
    labels[:3, 0:2, 0:2] = 1
    labels[2:, 5:7, 5:7] = 2
    with pytest.raises(ValueError, match="track 2 starts on frame 2 but its parent 1 is still"):
        write_ctc(tmp_path, labels, {2: 1})


def test_empty_frames_are_refused_unless_allowed(tmp_path: Path) -> None:
    """The CTC evaluation rejects empty frames; the error says which and how to write anyway."""
    labels = np.zeros((4, 8, 8), dtype=np.int32)
    labels[1:3, 0:2, 0:2] = 1
    with pytest.raises(ValueError, match=r"frame\(s\) 0, 3 hold no cell.*allow_empty_frames"):
        write_ctc(tmp_path / "a", labels)
    write_ctc(tmp_path / "b", labels, allow_empty_frames=True)
    assert (tmp_path / "b" / "res_track.txt").read_text() == "1 1 2 0\n"


def test_other_bad_exports(tmp_path: Path) -> None:
    """Ids past 16 bits, merges, 2D labels and an existing result are refused clearly."""
    big = np.full((2, 4, 4), 70000, dtype=np.int32)
    with pytest.raises(ValueError, match="exceeds 65535"):
        write_ctc(tmp_path / "big", big)
    labels = np.ones((2, 4, 4), dtype=np.int32)
    with pytest.raises(ValueError, match="at most one"):
        write_ctc(tmp_path / "merge", labels, {1: [2, 3]})
    with pytest.raises(ValueError, match=r"\(T, Y, X\) or \(T, Z, Y, X\)"):
        write_ctc(tmp_path / "2d", labels[0])
    write_ctc(tmp_path / "twice", labels)
    with pytest.raises(FileExistsError, match="already holds a CTC result"):
        write_ctc(tmp_path / "twice", labels)
    write_ctc(tmp_path / "twice", labels[:1], overwrite=True)
    assert sorted(p.name for p in (tmp_path / "twice").iterdir()) == [
        MARKER,
        "mask000.tif",
        "res_track.txt",
    ]


def test_a_deleted_parent_links_to_the_grandparent(tmp_path: Path) -> None:
    """If a middle track's masks were erased, its child hangs from the nearest ancestor."""
    labels = np.zeros((4, 8, 8), dtype=np.int32)
    labels[:2, 0:2, 0:2] = 1
    labels[3:, 5:7, 5:7] = 3
    tracks = write_ctc(tmp_path, labels, {3: 2, 2: 1}, allow_empty_frames=True)
    assert [(t.label, t.parent) for t in tracks] == [(1, 0), (3, 1)]


def test_3d_stacks_round_trip(tmp_path: Path) -> None:
    """(T, Z, Y, X) labels are written as 3D masks and read back unchanged."""
    labels = np.zeros((3, 2, 6, 6), dtype=np.uint16)
    labels[:, :, 1:3, 1:3] = 5
    write_ctc(tmp_path, labels)
    np.testing.assert_array_equal(read_ctc(tmp_path).labels, labels)


def test_read_checks_the_table_against_the_masks(tmp_path: Path) -> None:
    """A table that disagrees with the masks, or a missing table, is reported."""
    labels = np.ones((2, 4, 4), dtype=np.uint16)
    write_ctc(tmp_path, labels)
    (tmp_path / "res_track.txt").write_text("1 0 0 0\n")
    with pytest.raises(ValueError, match=r"frame 1: masks hold labels \[1\] but res_track.txt"):
        read_ctc(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"neither res_track\.txt nor man_track\.txt"):
        read_ctc(tmp_path / "nothing")


@pytest.mark.parametrize(
    "metadata",
    [
        "lineage-dict",
        "graph",
        "rows",
    ],
)
def test_npe2_writer_uses_the_layer_lineage(tmp_path: Path, metadata: str) -> None:
    """The napari writer reads the lineage from layer metadata in any of its forms, and
    returns the files it wrote."""
    data = make_tracking_timelapse(n_frames=10, seed=5)
    lineage = Lineage.from_rows(data.lineage)
    value: Any = {
        "lineage-dict": lineage.to_dict(),
        "graph": lineage.graph(),
        "rows": data.lineage,
    }[metadata]
    written = write_ctc_labels(str(tmp_path / "out"), data.labels, {"metadata": {"lineage": value}})
    assert written[-1].endswith("res_track.txt") and len(written) == 11
    assert [(t.label, t.parent) for t in read_ctc(tmp_path / "out").tracks] == [
        (r[0], r[3]) for r in sorted(data.lineage)
    ]


def test_npe2_writer_without_lineage_writes_roots(tmp_path: Path) -> None:
    """A plain Labels layer (no lineage) exports every track as a root."""
    labels = np.zeros((3, 4, 4), dtype=np.int32)
    labels[:, :2, :2] = 1
    labels[2, 3, 3] = 2
    write_ctc_labels(str(tmp_path), labels, {"metadata": {}})
    assert (tmp_path / "res_track.txt").read_text() == "1 0 2 0\n2 2 2 0\n"


def _cellpose_folder(folder: Path) -> dict[str, bytes]:
    """A folder of masks no export of ours wrote (as Cellpose leaves them); their bytes."""
    import tifffile

    folder.mkdir()
    for t in range(2):
        tifffile.imwrite(folder / f"mask{t:03d}.tif", np.full((4, 4), t + 1, np.uint16))
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize("how", ["napari writer", "write_ctc overwrite"])
def test_masks_of_another_origin_are_never_deleted(tmp_path: Path, how: str) -> None:
    """Saving into a folder of Cellpose (or hand-corrected) masks raises NotOurCTCError
    naming them, even when told to overwrite, and leaves every file as it was."""
    folder = tmp_path / "01_RES"
    before = _cellpose_folder(folder)
    labels = np.ones((3, 4, 4), dtype=np.uint16)
    with pytest.raises(NotOurCTCError, match=r"2 file\(s\) that no napari-sam2.*mask000\.tif"):
        if how == "napari writer":
            write_ctc_labels(str(folder), labels, {"metadata": {}})
        else:
            write_ctc(folder, labels, overwrite=True)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_overwrite_replaces_only_our_unchanged_export(tmp_path: Path) -> None:
    """A re-export replaces our earlier files (fewer frames: the extra ones go too); once a
    mask was edited by hand, the folder is refused and the edit kept."""
    import tifffile

    folder = tmp_path / "01_RES"
    labels = np.ones((4, 4, 4), dtype=np.uint16)
    write_ctc(folder, labels)
    write_ctc_labels(str(folder), labels[:2], {"metadata": {}})  # the napari writer, again
    assert sorted(p.name for p in folder.glob("mask*.tif")) == ["mask000.tif", "mask001.tif"]
    corrected = np.full((4, 4), 7, np.uint16)
    tifffile.imwrite(folder / "mask001.tif", corrected)
    with pytest.raises(NotOurCTCError, match=r"\(mask001\.tif\)"):
        write_ctc(folder, labels, overwrite=True)
    np.testing.assert_array_equal(tifffile.imread(folder / "mask001.tif"), corrected)
    assert (folder / "mask000.tif").exists() and (folder / "res_track.txt").exists()
