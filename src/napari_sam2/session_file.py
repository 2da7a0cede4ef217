"""Prompts and labels saved beside the data, so a segmentation can be reopened and redone.

A session is a small JSON file (``<name>.sam2.json``) holding every prompt point (image data
coordinates, polarity, object id), every box (plane, ``[x0, y0, x1, y1]``, object id) and the
video axis, plus a reference to the labels, stored next to it as a TIFF. Coordinates are the
image's data pixels, so a session does not depend on a layer's scale or on napari at all: the
headless command line replays the same file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_sam2.layers import OBJECT_ID, POLARITY

if TYPE_CHECKING:
    from napari.layers import Image, Labels, Points, Shapes

__all__ = ["FORMAT", "SUFFIX", "Box", "Point", "Session", "load_session", "save_session"]

FORMAT = "napari-sam2 session"
VERSION = 1
SUFFIX = ".sam2.json"


@dataclass(frozen=True)
class Point:
    """A click in image data coordinates (leading indices, then y, x)."""

    coords: tuple[float, ...]
    positive: bool
    object_id: int


@dataclass(frozen=True)
class Box:
    """A box prompt: the plane's leading indices and ``[x0, y0, x1, y1]`` image pixels."""

    plane: tuple[int, ...]
    box: tuple[float, float, float, float]
    object_id: int


@dataclass
class Session:
    """Everything needed to redo a segmentation of one image."""

    image_name: str
    image_shape: tuple[int, ...]  # (..., H, W), without RGB channels
    video_axis: int | None
    contrast_limits: tuple[float, float] | None = None  # what the model saw, for replays
    points: list[Point] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    labels: np.ndarray | None = None

    @property
    def object_ids(self) -> list[int]:
        ids = {p.object_id for p in self.points} | {b.object_id for b in self.boxes}
        if self.labels is not None:
            ids |= {int(i) for i in np.unique(self.labels) if i > 0}
        return sorted(ids)

    # ------------------------------------------------------------- from and to napari layers
    @classmethod
    def from_layers(
        cls,
        image: Image,
        points: Points | None = None,
        shapes: Shapes | None = None,
        labels: Labels | None = None,
        video_axis: int | None = None,
    ) -> Session:
        """Read prompts (mapped into ``image``'s data coordinates) and labels from layers."""
        from napari_sam2.axes import layer_array, plane_shape
        from napari_sam2.boxes import box_planes, shapes_to_box

        shape = (*layer_array(image).shape[: image.ndim - 2], *plane_shape(image))
        low, high = (float(v) for v in image.contrast_limits)
        session = cls(str(image.name), tuple(int(n) for n in shape), video_axis, (low, high))
        if points is not None and len(points.data):
            world = [points.data_to_world(p) for p in np.asarray(points.data)]
            coords = np.array([image.world_to_data(w) for w in world], dtype=float)
            coords = coords.reshape(len(world), image.ndim)[:, image.ndim - points.ndim :]
            polarity = np.asarray(points.features.get(POLARITY, np.ones(len(coords), bool)))
            ids = np.asarray(points.features.get(OBJECT_ID, np.ones(len(coords), int)))
            session.points = [
                Point(tuple(float(c) for c in row), bool(pos), int(i))
                for row, pos, i in zip(coords, polarity, ids)
            ]
        if shapes is not None and len(shapes.data):
            ids = np.asarray(shapes.features.get(OBJECT_ID, np.ones(len(shapes.data), int)))
            planes = box_planes(shapes, range(len(shapes.data)), image)
            seen: set[tuple[tuple[int, ...], int]] = set()
            for plane, object_id in zip(planes, ids):
                key = (plane or (), int(object_id))
                if plane is None or key in seen:
                    continue  # the last box of an object on a plane is the prompt
                seen.add(key)
                box = shapes_to_box(shapes, plane, image, int(object_id))
                if box is not None:
                    session.boxes.append(Box(plane, _box4(box), int(object_id)))
        if labels is not None:
            if tuple(labels.data.shape) != session.image_shape:
                raise ValueError(
                    f"Labels layer {labels.name!r} has shape {tuple(labels.data.shape)}, but "
                    f"image {image.name!r} has {session.image_shape}"
                )
            session.labels = np.asarray(labels.data)
        return session

    def to_layers(self, image: Image) -> tuple[Points, Shapes, Labels | None]:
        """New Points, Shapes and Labels layers aligned with ``image`` (nothing is replaced)."""
        from napari_sam2.axes import layer_array, plane_shape
        from napari_sam2.boxes import new_shapes_layer
        from napari_sam2.layers import new_points_layer

        shape = (*layer_array(image).shape[: image.ndim - 2], *plane_shape(image))
        if tuple(shape) != self.image_shape:
            raise ValueError(
                f"this session was saved for an image of shape {self.image_shape} "
                f"({self.image_name!r}), but {image.name!r} has shape {tuple(shape)}"
            )
        points = new_points_layer(image)
        if self.points:
            points.data = np.array([p.coords for p in self.points], dtype=float)
            features = points.features
            features[POLARITY] = np.array([p.positive for p in self.points], dtype=bool)
            features[OBJECT_ID] = np.array([p.object_id for p in self.points], dtype=np.int64)
            points.features = features
            points.refresh_colors()
        shapes = new_shapes_layer(image)
        for box in self.boxes:
            x0, y0, x1, y1 = box.box
            corners = np.array([[y0, x0], [y0, x1], [y1, x1], [y1, x0]], dtype=float)
            leading = np.tile(np.asarray(box.plane, dtype=float), (4, 1))
            shapes.feature_defaults = {OBJECT_ID: box.object_id}
            shapes.add_rectangles(np.column_stack([leading, corners]))
        labels = None
        if self.labels is not None:
            from napari.layers import Labels

            labels = Labels(
                self.labels,
                name=f"{image.name} SAM 2 labels",
                scale=image.scale[: self.labels.ndim],
                translate=image.translate[: self.labels.ndim],
            )
        return points, shapes, labels


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


def save_session(session: Session, path: str | os.PathLike[str]) -> Path:
    """Write the JSON file (and the labels TIFF beside it); returns the JSON path."""
    import tifffile

    path = Path(path)
    if not path.name.endswith(SUFFIX):
        path = path.with_name(path.name + SUFFIX)
    document: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "image": {"name": session.image_name, "shape": list(session.image_shape)},
        "video_axis": session.video_axis,
        "contrast_limits": (
            None if session.contrast_limits is None else list(session.contrast_limits)
        ),
        "points": [
            {"coords": list(p.coords), "positive": p.positive, "object_id": p.object_id}
            for p in session.points
        ],
        "boxes": [
            {"plane": list(b.plane), "box": list(b.box), "object_id": b.object_id}
            for b in session.boxes
        ],
        "labels": None,
    }
    if session.labels is not None:
        labels_path = _labels_path(path)
        tifffile.imwrite(labels_path, session.labels, compression="zlib")
        document["labels"] = labels_path.name
    path.write_text(json.dumps(document, indent=1))
    return path


def load_session(path: str | os.PathLike[str]) -> Session:
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
        session = Session(
            image_name=str(document["image"]["name"]),
            image_shape=tuple(int(n) for n in document["image"]["shape"]),
            video_axis=document.get("video_axis"),
            contrast_limits=_limits(document.get("contrast_limits")),
            points=[
                Point(
                    tuple(float(c) for c in p["coords"]), bool(p["positive"]), int(p["object_id"])
                )
                for p in document.get("points", [])
            ],
            boxes=[
                Box(tuple(int(i) for i in b["plane"]), _box4(b["box"]), int(b["object_id"]))
                for b in document.get("boxes", [])
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
        session.labels = tifffile.imread(labels_path)
    return session
