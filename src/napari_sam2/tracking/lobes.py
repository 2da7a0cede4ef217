"""Two cells in one mask: find the waist of a dividing cell and cut it there.

Right after a division the daughters touch, and SAM 2 goes on following both as one object
until they drift apart, so waiting for the mask to fall apart dates divisions late (or never).
What a dividing cell shows at once is its shape: two lobes joined by a waist. In the distance
transform (each pixel's distance to the background) a lobe is a hill and the waist a saddle
between two hills; a single cell, round or elongated, has one hill. So: one watershed basin
per hill, adjacent basins merged while the saddle between them is high compared with the
lower hill, and if two sizeable basins remain the mask is cut between them.

At the image border the frame's edge counts as background: a convex cell cut by the border
is still convex, so it keeps one hill (no false division), while two lobes stay two.
"""

from __future__ import annotations

import numpy as np

from napari_sam2.tracking.params import TrackingParams

__all__ = ["split_between", "two_lobes", "waist_ratio"]


def _distance_inside(
    mask: np.ndarray, crop: tuple[slice, slice], mirror: bool = False
) -> np.ndarray:
    """Distance to the background of the cropped mask. Outside the frame counts as
    background, or with ``mirror`` as a mirror image of the inside (a daughter cut in half by
    the border then keeps its hill)."""
    from scipy import ndimage

    part = np.asarray(mask[crop], dtype=bool)
    reach = max(part.shape) if mirror else 0
    pads = [
        (reach if s.start == 0 else 0, reach if s.stop == mask.shape[axis] else 0)
        for axis, s in enumerate(crop)
    ]
    mirrored = np.pad(np.pad(part, pads, mode="symmetric"), 1)
    (y0, _), (x0, _) = pads
    distance = ndimage.distance_transform_edt(mirrored)
    return distance[1 + y0 : 1 + y0 + part.shape[0], 1 + x0 : 1 + x0 + part.shape[1]]


def _saddles(basins: np.ndarray, distance: np.ndarray) -> dict[tuple[int, int], float]:
    """For each pair of touching basins, the height of the pass between them: the largest
    distance value found on both sides of their shared boundary."""
    passes: dict[tuple[int, int], float] = {}
    for a, b, da, db in (
        (basins[:, :-1], basins[:, 1:], distance[:, :-1], distance[:, 1:]),
        (basins[:-1], basins[1:], distance[:-1], distance[1:]),
    ):
        edge = (a != b) & (a > 0) & (b > 0)
        low, high = np.minimum(a[edge], b[edge]), np.maximum(a[edge], b[edge])
        height = np.minimum(da[edge], db[edge])
        for key, h in zip(zip(low.tolist(), high.tolist()), height.tolist()):
            if h > passes.get(key, -1.0):
                passes[key] = h
    return passes


def _basins(inside: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """One watershed basin per local maximum (plateaus count once) of the distance map."""
    from scipy import ndimage
    from skimage.segmentation import watershed

    peaks = (distance == ndimage.maximum_filter(distance, size=3)) & inside
    markers, _ = ndimage.label(peaks, structure=np.ones((3, 3), dtype=bool))
    return np.asarray(watershed(-distance, markers, mask=inside))


def _merge_step(basins: np.ndarray, distance: np.ndarray) -> float | None:
    """Merge (in place) the two neighbouring basins with the highest pass relative to the
    lower of their hills; that ratio, or None when no two basins touch."""
    from scipy import ndimage

    ids = np.unique(basins[basins > 0])
    tops = dict(zip(ids.tolist(), ndimage.maximum(distance, basins, ids).tolist()))
    best, best_ratio = None, -1.0
    for (a, b), height in _saddles(basins, distance).items():
        ratio = height / max(min(tops[a], tops[b]), 1e-6)
        if ratio > best_ratio:
            best, best_ratio = (a, b), ratio
    if best is None:
        return None
    basins[basins == best[1]] = best[0]
    return best_ratio


def _two_largest(basins: np.ndarray, inside: np.ndarray, floor: float) -> tuple[int, int] | None:
    """The ids of the two largest basins if both hold at least ``floor`` pixels."""
    from scipy import ndimage

    ids = np.unique(basins[basins > 0])
    if len(ids) < 2:
        return None
    areas = np.asarray(ndimage.sum(inside, basins, ids))
    order = np.argsort(-areas, kind="stable")
    if areas[order[1]] < floor:
        return None
    return int(ids[order[0]]), int(ids[order[1]])


def _crop(mask: np.ndarray, mirror: bool) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray]:
    from napari_sam2.tracking.events import bounding_box

    crop = bounding_box(mask, margin=1)
    assert crop is not None
    return crop, np.asarray(mask[crop], dtype=bool), _distance_inside(mask, crop, mirror)


def waist_ratio(mask: np.ndarray, min_fraction: float = 0.2, mirror: bool = False) -> float:
    """How narrow the waist between a mask's two lobes is: the pass height between them over
    the lower hill's height (1 for one convex cell, near 0 for two cells that barely touch).
    Lobes smaller than ``min_fraction`` of the mask do not count; an empty mask gives 1."""
    if not np.any(mask):
        return 1.0
    _, inside, distance = _crop(mask, mirror)
    basins = _basins(inside, distance)
    floor = min_fraction * float(inside.sum())
    while _two_largest(basins, inside, floor) is not None:
        ratio = _merge_step(basins, distance)
        if ratio is None:  # separate pieces, no waist between them
            return 1.0
        if _two_largest(basins, inside, floor) is None:
            return min(ratio, 1.0)
    return 1.0


def two_lobes(mask: np.ndarray, params: TrackingParams) -> tuple[np.ndarray, np.ndarray] | None:
    """The two daughters of a mask whose waist is narrower than ``params.division_waist``
    (pass over the lower hill, see :func:`waist_ratio`), each at least
    ``division_min_fraction`` of the mask and ``min_area`` pixels, larger first; None for one
    cell. At the image border a lobe is also looked for in the mask mirrored across the
    border (a daughter half outside the frame). Small leftover lobes go to the nearer daughter.
    """
    from skimage.segmentation import expand_labels

    if params.division_waist <= 0 or int(np.count_nonzero(mask)) < 2 * params.min_area:
        return None
    for mirror in (False, True):
        crop, inside, distance = _crop(mask, mirror)
        basins = _basins(inside, distance)
        floor = max(params.min_area, params.division_min_fraction * float(inside.sum()))
        while True:
            pair = _two_largest(basins, inside, floor)
            if pair is None:
                break
            kept = basins.copy()
            ratio = _merge_step(basins, distance)
            if ratio is None or ratio < params.division_waist:
                seeds = np.where(kept == pair[0], 1, 0) + np.where(kept == pair[1], 2, 0)
                split = expand_labels(seeds, distance=max(inside.shape)) * inside
                out = []
                for k in (1, 2):
                    full = np.zeros(mask.shape, dtype=bool)
                    full[crop] = split == k
                    out.append(full)
                if ratio is None and not _joined(out[0], out[1]):
                    return None  # separate pieces: the split rule's business, not a waist
                return out[0], out[1]
        if not _touches_frame_edge(crop, mask.shape):
            break
    return None


def _joined(a: np.ndarray, b: np.ndarray) -> bool:
    from scipy import ndimage

    return bool((ndimage.binary_dilation(a) & b).any())


def _touches_frame_edge(crop: tuple[slice, slice], shape: tuple[int, ...]) -> bool:
    return any(s.start == 0 or s.stop == shape[axis] for axis, s in enumerate(crop))


def split_between(
    mask: np.ndarray, a: np.ndarray, b: np.ndarray, params: TrackingParams
) -> tuple[np.ndarray, np.ndarray] | None:
    """``mask`` cut in two, each pixel to the nearer of ``a`` and ``b`` (two daughters seen
    a frame later); None when either part is smaller than ``division_min_fraction`` of the
    mask or ``min_area`` pixels."""
    from scipy import ndimage

    from napari_sam2.tracking.events import bounding_box

    box = bounding_box(mask | a | b, margin=1)
    if box is None or not mask.any() or not a.any() or not b.any():
        return None
    to_a = ndimage.distance_transform_edt(~a[box])
    to_b = ndimage.distance_transform_edt(~b[box])
    inside = np.asarray(mask[box], dtype=bool)
    floor = max(params.min_area, params.division_min_fraction * float(inside.sum()))
    parts = []
    for near in (inside & (to_a <= to_b), inside & (to_a > to_b)):
        if near.sum() < floor:
            return None
        full = np.zeros(mask.shape, dtype=bool)
        full[box] = near
        parts.append(full)
    return parts[0], parts[1]
