"""Every prompt of one image, without napari: points, boxes, mask prompts, and the saved file.

A :class:`PromptSet` holds prompts in the image's *data* coordinates (leading indices, then y,
x), fixed once by :mod:`napari_sam2.segment.layer_prompts` when it reads the layers, so
planning (:mod:`napari_sam2.segment.propagation`), clicks and the headless replay all see the
same numbers and none of them needs a viewer. It is also what a session file stores
(``<name>.sam2.json``, with the labels beside it as a TIFF): :func:`save_prompts` and
:func:`load_prompts` read and write it.

SAM 2 takes points as (x, y): :meth:`PromptSet.frame_prompt` is the one place that turns the
stored (…, y, x) into the model's order.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_sam2.axes import PlaneIndex

__all__ = [
    "FORMAT",
    "SUFFIX",
    "Box",
    "FramePrompt",
    "Point",
    "PromptSet",
    "SessionFilesExistError",
    "load_prompts",
    "save_prompts",
]

FORMAT = "napari-sam2 session"
VERSION = 1
SUFFIX = ".sam2.json"


@dataclass(frozen=True)
class Point:
    """A click in image data coordinates (leading indices, then y, x). Fewer coordinates than
    the image has axes: a point of a (y, x) prompt layer, on whichever plane is shown."""

    coords: tuple[float, ...]
    positive: bool
    object_id: int
    origin: str = field(default="", compare=False)  # "point 3 of 'cells prompts'", for errors


@dataclass(frozen=True)
class Box:
    """A box prompt: the plane's leading indices (None: every plane, from a (y, x) box layer)
    and ``[x0, y0, x1, y1]`` image pixels."""

    plane: PlaneIndex | None
    box: tuple[float, float, float, float]
    object_id: int
    origin: str = field(default="", compare=False)


@dataclass(frozen=True)
class FramePrompt:
    """One object's prompts on one frame, in SAM 2's terms: (N, 2) x, y points, (N,) labels
    1/0, a box ``[x0, y0, x1, y1]`` or None, or a (H, W) bool mask (replacing points and box)."""

    xy: np.ndarray
    labels: np.ndarray
    box: np.ndarray | None = None
    mask: np.ndarray | None = None

    @property
    def has_object(self) -> bool:
        """A positive point, a box or a non-empty mask: something SAM 2 can segment."""
        if self.mask is not None:
            return bool(self.mask.any())
        return bool((self.labels == 1).any()) or self.box is not None


@dataclass
class PromptSet:
    """Everything needed to segment (or redo the segmentation of) one image.

    ``masks`` is a labels array of the image's shape whose objects are mask prompts (e.g. from
    Cellpose; not saved); ``labels`` is the output so far (saved beside the session file).
    """

    image_name: str
    image_shape: tuple[int, ...]  # (..., H, W), without RGB channels
    video_axis: int | None
    contrast_limits: tuple[float, float] | None = None  # what the model saw, for replays
    points: list[Point] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    masks: np.ndarray | None = field(default=None, repr=False)
    labels: np.ndarray | None = field(default=None, repr=False)

    @property
    def object_ids(self) -> list[int]:
        ids = {p.object_id for p in self.points} | {b.object_id for b in self.boxes}
        if self.labels is not None:
            ids |= {int(i) for i in np.unique(self.labels) if i > 0}
        return sorted(ids)

    @property
    def n_leading(self) -> int:
        return len(self.image_shape) - 2

    def point_plane(self, point: Point) -> PlaneIndex | None:
        """The plane a point lies on (rounded); None for a point of a (y, x) layer."""
        if len(point.coords) < len(self.image_shape):
            return None
        return tuple(round(float(c)) for c in point.coords[:-2])

    def points_on(self, plane: PlaneIndex, object_id: int | None = None) -> list[Point]:
        """The points on ``plane`` (those of a (y, x) layer are on every plane)."""
        return [self.points[i] for i in self.point_indices_on(plane, object_id)]

    def point_indices_on(self, plane: PlaneIndex, object_id: int | None = None) -> list[int]:
        """Indices into :attr:`points` of :meth:`points_on`."""
        if len(plane) != self.n_leading:
            raise ValueError(
                f"plane {tuple(plane)} has {len(plane)} leading indices, but image "
                f"{self.image_name!r} has {len(self.image_shape)} dimensions"
            )
        out = []
        for index, point in enumerate(self.points):
            if object_id is not None and point.object_id != int(object_id):
                continue
            leading = point.coords[:-2]
            tail = plane[len(plane) - len(leading) :] if leading else ()
            if all(abs(float(c) - i) < 0.5 for c, i in zip(leading, tail)):
                out.append(index)
        return out

    def box_on(self, plane: PlaneIndex, object_id: int) -> np.ndarray | None:
        """The object's box on ``plane`` as ``[x0, y0, x1, y1]``, clipped to the image; the
        last one drawn wins. A box entirely off the image raises ValueError."""
        height, width = self.image_shape[-2:]
        for box in reversed(self.boxes):
            if box.object_id != int(object_id) or box.plane not in (None, tuple(plane)):
                continue
            x0, y0, x1, y1 = box.box
            if y1 < -0.5 or x1 < -0.5 or y0 > height - 0.5 or x0 > width - 0.5:
                raise ValueError(
                    f"{box.origin or 'a box'} lies outside the image ({height}×{width} "
                    "pixels, H×W); move or delete it"
                )
            y0, y1 = np.clip([y0, y1], 0, height - 1)
            x0, x1 = np.clip([x0, x1], 0, width - 1)
            return np.array([x0, y0, x1, y1], dtype=np.float32)
        return None

    def frame_prompt(self, plane: PlaneIndex, object_id: int | None) -> FramePrompt:
        """The object's points (as (x, y)) and box on ``plane``, checked to lie on the image
        (``object_id`` None: every object's points, and no box).

        Pixel centres are integers, so the image spans [-0.5, size - 0.5]; points on its edge
        are clipped inside.
        """
        points = self.points_on(plane, object_id)
        height, width = self.image_shape[-2:]
        yx = np.array([p.coords[-2:] for p in points], dtype=np.float64).reshape(-1, 2)
        outside = (yx[:, 0] < -0.5) | (yx[:, 0] > height - 0.5)
        outside |= (yx[:, 1] < -0.5) | (yx[:, 1] > width - 0.5)
        if outside.any():
            first = int(np.flatnonzero(outside)[0])
            y, x = yx[first]
            raise ValueError(
                f"{points[first].origin or 'a point'} at (y={y:.1f}, x={x:.1f}) lies outside "
                f"the image ({height}×{width} pixels, H×W); move or delete it"
            )
        yx = np.clip(yx, 0, [height - 1, width - 1])
        xy = yx[:, ::-1].astype(np.float32)  # (N, 2) y, x -> x, y
        labels = np.array([p.positive for p in points], dtype=np.int32)
        box = None if object_id is None else self.box_on(plane, object_id)
        return FramePrompt(xy.reshape(-1, 2), labels, box)


def _limits(values: Any) -> tuple[float, float] | None:
    if values is None:
        return None
    low, high = (float(v) for v in values)
    return low, high


def _box4(values: Any) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = (float(v) for v in values)
    return x0, y0, x1, y1


def _labels_path(path: Path) -> Path:
    name = path.name[: -len(SUFFIX)] if path.name.endswith(SUFFIX) else path.stem
    return path.with_name(f"{name}.labels.tif")


class SessionFilesExistError(FileExistsError):
    """Files a session save would replace; ``paths`` lists them, so a widget can ask."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        names = " and ".join(p.name for p in paths)
        super().__init__(
            f"{names} already exist{'s' if len(paths) == 1 else ''} in {paths[0].parent}; "
            "save under another name, or replace them (overwrite=True)"
        )


def save_prompts(
    prompts: PromptSet, path: str | os.PathLike[str], *, overwrite: bool = False
) -> Path:
    """Write the JSON file (and the labels TIFF beside it); returns the JSON path.

    Boxes of every plane (from a (y, x) box layer) are not saved: a session names planes.
    An existing session or labels file of that name is only replaced with ``overwrite``
    (else :class:`SessionFilesExistError`): ``<name>.labels.tif`` may well be someone's
    corrected labels. Each file is written under a temporary name and renamed once whole, so
    a failed save leaves the old files as they were.
    """
    path = Path(path)
    if not path.name.endswith(SUFFIX):
        path = path.with_name(path.name + SUFFIX)
    labels_path = _labels_path(path) if prompts.labels is not None else None
    existing = [p for p in (path, labels_path) if p is not None and p.exists()]
    if existing and not overwrite:
        raise SessionFilesExistError(existing)
    document: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "image": {"name": prompts.image_name, "shape": list(prompts.image_shape)},
        "video_axis": prompts.video_axis,
        "contrast_limits": (
            None if prompts.contrast_limits is None else list(prompts.contrast_limits)
        ),
        "points": [
            {"coords": list(p.coords), "positive": p.positive, "object_id": p.object_id}
            for p in prompts.points
        ],
        "boxes": [
            {"plane": list(b.plane), "box": list(b.box), "object_id": b.object_id}
            for b in prompts.boxes
            if b.plane is not None
        ],
        "labels": None if labels_path is None else labels_path.name,
    }
    written: list[tuple[Path, Path]] = []  # (temporary, final)
    try:
        if labels_path is not None:
            written.append((_temporary(labels_path), labels_path))
            _write_tiff(written[-1][0], prompts.labels)
        written.append((_temporary(path), path))
        written[-1][0].write_text(json.dumps(document, indent=1), encoding="utf-8")
        for temporary, final in written:  # the labels first: the JSON names them
            os.replace(temporary, final)
    finally:
        for temporary, _ in written:
            temporary.unlink(missing_ok=True)
    return path


def _temporary(final: Path) -> Path:
    """A new hidden file beside ``final`` (same folder: renaming it is atomic)."""
    handle, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent)
    os.close(handle)
    return Path(name)


def _write_tiff(path: Path, data: Any) -> None:
    import tifffile

    with open(path, "wb") as handle:  # a file object: the temporary name's suffix is not .tif
        tifffile.imwrite(handle, data, compression="zlib")


def load_prompts(path: str | os.PathLike[str]) -> PromptSet:
    """Read a session file; ValueError with the reason if it is not one of ours."""
    import tifffile

    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path.name} is not a napari-sam2 session file: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"{path.name} is not a napari-sam2 session file")
    if int(document.get("version", 0)) > VERSION:
        raise ValueError(
            f"{path.name} was written by a newer napari-sam2 (format version "
            f"{document['version']}); update the plugin to open it"
        )
    try:
        prompts = PromptSet(
            image_name=str(document["image"]["name"]),
            image_shape=tuple(int(n) for n in document["image"]["shape"]),
            video_axis=document.get("video_axis"),
            contrast_limits=_limits(document.get("contrast_limits")),
            points=[
                Point(
                    tuple(float(c) for c in p["coords"]),
                    bool(p["positive"]),
                    int(p["object_id"]),
                    f"point {i} of {path.name}",
                )
                for i, p in enumerate(document.get("points", []))
            ],
            boxes=[
                Box(
                    tuple(int(i) for i in b["plane"]),
                    _box4(b["box"]),
                    int(b["object_id"]),
                    f"box {i} of {path.name}",
                )
                for i, b in enumerate(document.get("boxes", []))
            ],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path.name} is a damaged session file ({exc!r})") from None
    if document.get("labels"):
        labels_path = path.with_name(str(document["labels"]))
        if not labels_path.is_file():
            raise ValueError(
                f"the labels of {path.name} ({labels_path.name}) are missing; they are saved "
                "beside the session file"
            )
        prompts.labels = tifffile.imread(labels_path)
    return prompts
