"""What a propagation does: the stack to track, the frames, and every object's prompts.

The stack's video axis (T or Z) becomes SAM 2's video; every other leading axis stays at the
plane the user is looking at (a TZYX stack is tracked through T at the current z). Prompts come
from the Points layer (clicks), the Shapes layer (boxes) and optionally a Labels layer (masks,
e.g. from Cellpose). Planning runs on the main thread and reads layers; the model runs later in
:mod:`napari_sam2.propagation_job`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from napari_sam2.axes import axis_name, layer_array
from napari_sam2.layers import OBJECT_ID, points_to_prompts, prompt_planes

if TYPE_CHECKING:
    from napari.layers import Image, Labels, Points, Shapes

__all__ = [
    "DIRECTIONS",
    "Direction",
    "FramePrompt",
    "NoPromptsError",
    "PropagationPlan",
    "plan_propagation",
    "prompted_lines",
]

PlaneIndex = tuple[int, ...]
Direction = Literal["forward", "backward", "both"]
DIRECTIONS: tuple[Direction, ...] = ("forward", "backward", "both")


@dataclass(frozen=True)
class FramePrompt:
    """One object's prompts on one frame: (N, 2) x, y points, (N,) labels 1/0, a box or None,
    or a (H, W) bool mask (which replaces points and box)."""

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


Prompts = dict[int, dict[int, FramePrompt]]  # object -> frame -> prompt


@dataclass(frozen=True)
class PropagationPlan:
    """What one run does: which frames, in which order, from which prompts.

    ``line`` is the plane the user is on; its entry on ``axis`` is the start frame. Frames
    ``first..last`` (inclusive) are the allowed range.
    """

    axis: int
    line: PlaneIndex
    first: int
    last: int
    direction: Direction
    prompts: Prompts = field(repr=False)

    @property
    def start(self) -> int:
        return self.line[self.axis]

    @property
    def passes(self) -> tuple[bool, ...]:
        """``reverse`` flags of the passes, in order."""
        return {"forward": (False,), "backward": (True,), "both": (False, True)}[self.direction]

    def span(self, reverse: bool) -> int:
        """Frames tracked after the start frame in one pass."""
        return self.start - self.first if reverse else self.last - self.start

    @property
    def total(self) -> int:
        """Frames the run yields (the start frame once per pass)."""
        return sum(self.span(reverse) + 1 for reverse in self.passes)

    def plane(self, frame: int) -> PlaneIndex:
        return tuple(frame if a == self.axis else i for a, i in enumerate(self.line))


class NoPromptsError(ValueError):
    """Nothing to propagate on a stack: no object has a positive point, a box or a mask."""


def plan_propagation(
    image: Image,
    points: Points | None,
    line: PlaneIndex,
    axis: int,
    direction: Direction = "forward",
    frame_range: tuple[int, int] | None = None,
    shapes: Shapes | None = None,
    masks: Labels | None = None,
    skip: frozenset[int] = frozenset(),
) -> PropagationPlan:
    """Read every object's prompts on the frames of ``line`` and check the request.

    Objects in ``skip`` (accepted by the user) are left out, so their masks stay as they are.
    Raises ValueError with a sentence for the user when there is nothing to propagate.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    if not 0 <= axis < len(line):
        raise ValueError(
            f"{image.name!r} has no stack axis to propagate along: it is a single 2D image"
        )
    n_frames = int(layer_array(image).shape[axis])
    first, last = (0, n_frames - 1) if frame_range is None else map(int, frame_range)
    name = axis_name(image, axis)
    if not 0 <= first <= last < n_frames:
        raise ValueError(
            f"frame range {first}..{last} is not within {name}=0..{n_frames - 1}; pick "
            "first ≤ last inside the stack"
        )
    if not first <= line[axis] <= last:
        raise ValueError(
            f"the current {name}={line[axis]} is outside the range {first}..{last}; move the "
            "slider into the range (propagation starts from the frame on screen)"
        )
    n_points = 0 if points is None else len(points.data)
    n_boxes = 0 if shapes is None else len(shapes.data)
    if n_points == 0 and n_boxes == 0 and masks is None:
        raise ValueError(
            "there are no prompts yet: press 'Add points' and click on an object, or "
            "'Add box' and draw a rectangle around it"
        )
    prompts = _prompts_on_line(image, points, shapes, line, axis)
    if masks is not None:
        _add_mask_prompts(prompts, masks, image, line, axis)
    prompts = {k: v for k, v in prompts.items() if k not in skip}
    if not prompts:
        where = ", ".join(f"{axis_name(image, a)}={i}" for a, i in enumerate(line) if a != axis)
        raise NoPromptsError(
            "no object has a positive point, a box or a mask on this stack"
            + (" (accepted objects are left as they are)" if skip else "")
            + (f" ({where})" if where else "")
            + ": click on an object on some frame first"
        )
    return PropagationPlan(axis, tuple(line), first, last, direction, prompts)


def _prompts_on_line(
    image: Image, points: Points | None, shapes: Shapes | None, line: PlaneIndex, axis: int
) -> Prompts:
    """Objects with a positive point or a box on the frames of ``line``, and their prompts."""
    from napari_sam2.boxes import box_planes, shapes_to_box

    groups: set[tuple[int, int]] = set()  # (object, frame)
    for layer, planes_of in ((points, prompt_planes), (shapes, box_planes)):
        if layer is None or len(layer.data) == 0:
            continue
        rows = list(range(len(layer.data)))
        ids = np.asarray(layer.features[OBJECT_ID], dtype=np.int64)
        for row, plane in zip(rows, planes_of(layer, rows, image)):
            if plane is None:  # a (y, x) prompt layer prompts the frame on screen
                groups.add((int(ids[row]), line[axis]))
            elif all(p == q for a, (p, q) in enumerate(zip(plane, line)) if a != axis):
                groups.add((int(ids[row]), plane[axis]))
    n_frames = int(layer_array(image).shape[axis])
    prompts: Prompts = {}
    for object_id, frame in sorted(groups):
        if not 0 <= frame < n_frames:
            raise ValueError(
                f"object {object_id} has a prompt at {axis_name(image, axis)}={frame}, beyond "
                f"the stack (0..{n_frames - 1}); move or delete it"
            )
        plane = tuple(frame if a == axis else i for a, i in enumerate(line))
        xy, labels = np.zeros((0, 2), np.float32), np.zeros(0, np.int32)
        if points is not None:
            xy, labels = points_to_prompts(points, plane, image, object_id)
        box = None if shapes is None else shapes_to_box(shapes, plane, image, object_id)
        prompts.setdefault(object_id, {})[frame] = FramePrompt(xy, labels, box)
    return {k: v for k, v in prompts.items() if any(p.has_object for p in v.values())}


def _add_mask_prompts(
    prompts: Prompts, masks: Labels, image: Image, line: PlaneIndex, axis: int
) -> None:
    """Every object of ``masks`` on the frame on screen becomes a mask prompt there, unless
    the user clicked or boxed that object on that frame (those prompts win)."""
    from napari_sam2.axes import plane_shape

    expected = (*layer_array(image).shape[: len(line)], *plane_shape(image))
    if tuple(masks.data.shape) != expected:
        raise ValueError(
            f"Labels layer {masks.name!r} has shape {tuple(masks.data.shape)}, but image "
            f"{image.name!r} needs {expected}; choose a mask layer of the image's shape"
        )
    frame = line[axis]
    on_frame = np.asarray(masks.data[line])  # (H, W)
    for object_id in (int(i) for i in np.unique(on_frame) if i > 0):
        if frame in prompts.get(object_id, {}):
            continue
        empty = (np.zeros((0, 2), np.float32), np.zeros(0, np.int32))
        prompts.setdefault(object_id, {})[frame] = FramePrompt(*empty, mask=on_frame == object_id)


def prompted_lines(
    image: Image,
    points: Points | None,
    shapes: Shapes | None,
    masks: Labels | None,
    line: PlaneIndex,
    axis: int,
) -> list[PlaneIndex]:
    """Every stack through ``line``'s frame along ``axis`` that holds a prompt: the positions of
    the other leading axes (e.g. each z of a TZYX stack tracked through T), in order."""
    from napari_sam2.boxes import box_planes

    found: set[PlaneIndex] = set()
    for layer, planes_of in ((points, prompt_planes), (shapes, box_planes)):
        if layer is not None and len(layer.data):
            rows = list(range(len(layer.data)))
            for plane in planes_of(layer, rows, image):
                if plane is not None:
                    found.add(tuple(line[axis] if a == axis else i for a, i in enumerate(plane)))
    if masks is not None and masks.ndim == len(line) + 2:
        frame = np.asarray(masks.data[(slice(None),) * axis + (line[axis],)])  # other axes
        for position in np.argwhere(frame.reshape(*frame.shape[:-2], -1).any(axis=-1)):
            index = [int(i) for i in position]
            index.insert(axis, line[axis])
            found.add(tuple(index))
    return sorted(found) or [tuple(line)]
