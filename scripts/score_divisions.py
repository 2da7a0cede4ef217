"""Score division detection on the hard cases: touching daughters, unequal daughters, divisions
against the border, 1–2 frame gaps and a division during a gap.

Builds synthetic time-lapses with :class:`sam2.synthetic_tracking.HardCases`, tracks them
from frame 0's ground truth with the default TrackingParams, and prints py-ctcmetrics' TRA,
division F1 BC(0..3), complete tracks CT and the number of orphan daughters (a track that
starts without a parent where the ground truth has one: a missed division or a broken gap).

Mask sources: ``union`` (ground truth that follows both daughters as one mask, as SAM 2 does
while they touch), ``first_daughter`` (it follows one daughter and loses the other), ``demo``
(the trained demo model through SAM 2, the tracker the widget runs; seeds >= 7000, never
used in training).

    python scripts/score_divisions.py --sources union first_daughter --seeds 0 1 2
    python scripts/score_divisions.py --sources demo --seeds 7000 7001
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from napari_sam2.tracking import TrackingParams, track_cells, write_ctc
from napari_sam2.tracking.sources import MaskSource
from sam2.synthetic import SyntheticTimelapse
from sam2.synthetic_tracking import HardCases, make_tracking_timelapse
from tests.tracking.ground_truth import GroundTruthMaskSource, write_gt_folder

METRICS = ["Valid", "TRA", "BC(0)", "BC(1)", "BC(2)", "BC(3)", "CT"]

CASES = {
    "plain": HardCases(),
    "touching": HardCases(touching_daughters=True),
    "unequal": HardCases(touching_daughters=True, daughter_size_ratio=0.7),
    "border": HardCases(touching_daughters=True, border_divisions=2),
    "gaps": HardCases(gaps=3, max_gap=2, division_in_gap=True),
    "all": HardCases(
        touching_daughters=True,
        daughter_size_ratio=0.8,
        border_divisions=1,
        gaps=2,
        division_in_gap=True,
    ),
}


def timelapse(case: str, seed: int, size: int) -> SyntheticTimelapse:
    """30 frames of a crowded field: 12 cells, 5 divisions, entries and exits."""
    return make_tracking_timelapse(
        n_frames=30, shape=(size, size), n_cells=12, n_divisions=5, seed=seed, hard=CASES[case]
    )


def mask_source(name: str, data: SyntheticTimelapse) -> MaskSource:
    if name in ("union", "first_daughter"):
        return GroundTruthMaskSource(data, name)  # type: ignore[arg-type]
    from napari_sam2.models import TRACKING_OPTIONS, LoadedModel
    from napari_sam2.tracking.sources import sam2_mask_source
    from sam2.build_sam import build_sam2_hf
    from sam2.hub import DEMO_MODEL_ID

    model = build_sam2_hf(DEMO_MODEL_ID, device="cpu")
    return sam2_mask_source(LoadedModel(model).video_predictor(TRACKING_OPTIONS), data.image)


def orphans(result_labels: np.ndarray, rows: list[tuple[int, int, int, int]], data: Any) -> int:
    """Result tracks that start after frame 0 with no parent on a GT cell that has one."""
    gt_parent = {label: parent for label, _, _, parent in data.lineage}
    count = 0
    for label, start, _, parent in rows:
        if parent or start == 0:
            continue
        under = data.labels[start][result_labels[start] == label]
        under = under[under > 0]
        if len(under) and gt_parent.get(int(np.bincount(under).argmax()), 0):
            count += 1
    return count


def score(case: str, source: str, seed: int, root: Path, params: TrackingParams) -> dict[str, Any]:
    import ctc_metrics.scripts.evaluate as evaluate

    from napari_sam2.tracking.ctc import read_ctc

    data = timelapse(case, seed, 256 if source == "demo" else 192)
    result = track_cells(data.image, data.labels[0], 0, mask_source(source, data), params)
    write_ctc(root / "01_RES", result.labels, result.lineage, allow_empty_frames=True)
    gt = write_gt_folder(root, data)
    with contextlib.redirect_stdout(io.StringIO()):
        scores = evaluate.evaluate_sequence(str(root / "01_RES"), str(gt), metrics=METRICS)
    res = read_ctc(root / "01_RES")
    rows = [(t.label, t.start, t.end, t.parent) for t in res.tracks]
    scores["orphans"] = orphans(res.labels, rows, data)
    parents = [r[3] for r in data.lineage if r[3]]
    true = sum(1 for p in set(parents) if parents.count(p) > 1)  # a gap has one "child"
    scores["divisions"] = (len(result.lineage.divisions), true)
    scores["rules"] = sorted(d.rule for d in result.lineage.divisions.values())
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--sources", nargs="+", default=["union", "first_daughter"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--param", nargs="*", default=[], help="TrackingParams overrides, e.g. division_waist=0.8"
    )
    args = parser.parse_args()
    defaults = TrackingParams().to_dict()
    overrides = {k: type(defaults[k])(v) for k, v in (item.split("=") for item in args.param)}
    params = TrackingParams(**defaults | overrides)
    print(f"params: {params}")
    keys = ["TRA", "BC(0)", "BC(1)", "BC(3)", "CT"]
    print(f"| case | source | {' | '.join(keys)} | orphans | divisions found / true |")
    print("|---" * (len(keys) + 4) + "|")
    for case in args.cases:
        for source in args.sources:
            runs = []
            for seed in args.seeds:
                with tempfile.TemporaryDirectory() as tmp:
                    runs.append(score(case, source, seed, Path(tmp), params))
            means = [np.mean([r[k] for r in runs]) for k in keys]
            found = sum(r["divisions"][0] for r in runs), sum(r["divisions"][1] for r in runs)
            print(
                f"| {case} | {source} | {' | '.join(f'{m:.3f}' for m in means)} | "
                f"{sum(r['orphans'] for r in runs)} | {found[0]} / {found[1]} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
