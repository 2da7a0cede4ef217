"""What a propagation does, and its worker body: pure functions of a PromptSet, no napari.

The stack's video axis (T or Z) becomes SAM 2's video; every other leading axis stays at the
plane the user is looking at (a TZYX stack is tracked through T at the current z). Prompts are
a :class:`~napari_sam2.prompts.PromptSet` (clicks, boxes and optionally mask prompts, e.g. from
Cellpose), so the widget, the headless replay and the tests plan the same way.
:func:`run_propagation` is the body the widget's worker and the replay both run.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import numpy as np

from napari_sam2.axes import PlaneIndex
from napari_sam2.jobs import Failure
from napari_sam2.models import PROPAGATION_OPTIONS, ModelLoader
from napari_sam2.prompts import FramePrompt, PromptSet

__all__ = [
    "DIRECTIONS",
    "Direction",
    "FrameMasks",
    "FramePrompt",
    "NoPromptsError",
    "PropagationPlan",
    "plan_propagation",
    "plan_run",
    "prompted_lines",
    "run_propagation",
    "stack_view",
]

Direction = Literal["forward", "backward", "both"]
DIRECTIONS: tuple[Direction, ...] = ("forward", "backward", "both")


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


def _name(names: Sequence[str] | None, axis: int) -> str:
    return names[axis] if names is not None else f"axis {axis}"


def plan_propagation(
    prompts: PromptSet,
    line: PlaneIndex,
    axis: int,
    direction: Direction = "forward",
    frame_range: tuple[int, int] | None = None,
    skip: frozenset[int] = frozenset(),
    axis_names: Sequence[str] | None = None,
) -> PropagationPlan:
    """Every object's prompts on the frames of ``line`` along ``axis``, and the checked request.

    Objects in ``skip`` (accepted by the user) are left out, so their masks stay as they are.
    ``axis_names`` name the leading axes in messages (default ``axis 0`` …). Raises ValueError
    with a sentence for the user when there is nothing to propagate.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    if not 0 <= axis < len(line):
        raise ValueError(
            f"{prompts.image_name!r} has no stack axis to propagate along: it is a single 2D image"
        )
    n_frames = int(prompts.image_shape[axis])
    first, last = (0, n_frames - 1) if frame_range is None else map(int, frame_range)
    name = _name(axis_names, axis)
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
    if not prompts.points and not prompts.boxes and prompts.masks is None:
        raise ValueError(
            "there are no prompts yet: press 'Add points' and click on an object, or "
            "'Add box' and draw a rectangle around it"
        )
    found = _prompts_on_line(prompts, line, axis, name)
    if prompts.masks is not None:
        _add_mask_prompts(found, prompts.masks, line, axis)
    found = {k: v for k, v in found.items() if k not in skip}
    if not found:
        where = ", ".join(f"{_name(axis_names, a)}={i}" for a, i in enumerate(line) if a != axis)
        raise NoPromptsError(
            "no object has a positive point, a box or a mask on this stack"
            + (" (accepted objects are left as they are)" if skip else "")
            + (f" ({where})" if where else "")
            + ": click on an object on some frame first"
        )
    return PropagationPlan(axis, tuple(line), first, last, direction, found)


def _prompt_planes(prompts: PromptSet) -> list[tuple[int, PlaneIndex | None]]:
    """(object, plane) of every point and box; None: a prompt of whichever plane is shown."""
    return [(p.object_id, prompts.point_plane(p)) for p in prompts.points] + [
        (b.object_id, b.plane) for b in prompts.boxes
    ]


def _prompts_on_line(prompts: PromptSet, line: PlaneIndex, axis: int, name: str) -> Prompts:
    """Objects with a positive point or a box on the frames of ``line``, and their prompts."""
    groups: set[tuple[int, int]] = set()  # (object, frame)
    for object_id, plane in _prompt_planes(prompts):
        if plane is None:
            groups.add((object_id, line[axis]))
        elif all(p == q for a, (p, q) in enumerate(zip(plane, line)) if a != axis):
            groups.add((object_id, plane[axis]))
    n_frames = int(prompts.image_shape[axis])
    found: Prompts = {}
    for object_id, frame in sorted(groups):
        if not 0 <= frame < n_frames:
            raise ValueError(
                f"object {object_id} has a prompt at {name}={frame}, beyond the stack "
                f"(0..{n_frames - 1}); move or delete it"
            )
        plane = tuple(frame if a == axis else i for a, i in enumerate(line))
        found.setdefault(object_id, {})[frame] = prompts.frame_prompt(plane, object_id)
    return {k: v for k, v in found.items() if any(p.has_object for p in v.values())}


def _add_mask_prompts(found: Prompts, masks: Any, line: PlaneIndex, axis: int) -> None:
    """Every object of ``masks`` on the frame on screen becomes a mask prompt there, unless
    the user clicked or boxed that object on that frame (those prompts win)."""
    frame = line[axis]
    on_frame = np.asarray(masks[tuple(line)])  # (H, W)
    for object_id in (int(i) for i in np.unique(on_frame) if i > 0):
        if frame in found.get(object_id, {}):
            continue
        empty = (np.zeros((0, 2), np.float32), np.zeros(0, np.int32))
        found.setdefault(object_id, {})[frame] = FramePrompt(*empty, mask=on_frame == object_id)


def prompted_lines(prompts: PromptSet, line: PlaneIndex, axis: int) -> list[PlaneIndex]:
    """Every stack through ``line``'s frame along ``axis`` that holds a prompt: the positions of
    the other leading axes (e.g. each z of a TZYX stack tracked through T), in order."""
    found: set[PlaneIndex] = set()
    for _, plane in _prompt_planes(prompts):
        if plane is not None:
            found.add(tuple(line[axis] if a == axis else i for a, i in enumerate(plane)))
    masks = prompts.masks
    if masks is not None and masks.ndim == len(line) + 2:
        frame = np.asarray(masks[(slice(None),) * axis + (line[axis],)])  # other axes
        for position in np.argwhere(frame.reshape(*frame.shape[:-2], -1).any(axis=-1)):
            index = [int(i) for i in position]
            index.insert(axis, line[axis])
            found.add(tuple(index))
    return sorted(found) or [tuple(line)]


def plan_run(
    prompts: PromptSet,
    line: PlaneIndex,
    axis: int,
    direction: Direction = "forward",
    frame_range: tuple[int, int] | None = None,
    skip: frozenset[int] = frozenset(),
    axis_names: Sequence[str] | None = None,
    every_position: bool = False,
) -> list[PropagationPlan]:
    """The plans of one run: the stack through ``line`` or, with ``every_position``, every
    stack through its frame that holds prompts (:func:`prompted_lines`).

    Stacks without prompts are left out of a run over several; a lone one raises
    :class:`NoPromptsError`, like :func:`plan_propagation`.
    """
    lines = [line]
    if every_position and axis >= 0:
        lines = prompted_lines(prompts, line, axis)
    plans = []
    for position in lines:
        try:
            plans.append(
                plan_propagation(prompts, position, axis, direction, frame_range, skip, axis_names)
            )
        except NoPromptsError:
            if len(lines) == 1:
                raise
    return plans


# ---------------------------------------------------------------------------- worker body
@dataclass(frozen=True)
class FrameMasks:
    """One frame's result, from the worker: (N, H, W) bool masks of ``obj_ids``."""

    frame: int
    obj_ids: list[int]
    masks: np.ndarray


def stack_view(data: Any, line: PlaneIndex, axis: int) -> Any:
    """The (T, H, W[, C]) frames of ``line`` along ``axis``, as a view (numpy) or lazily."""
    key = tuple(slice(None) if a == axis else i for a, i in enumerate(line))
    return data[key]


def run_propagation(
    factory: ModelLoader,
    data: Any,
    limits: tuple[float, float],
    plan: PropagationPlan,
) -> Generator[FrameMasks | Failure, None, None]:
    """Worker body: yields each frame's masks as it is tracked; never touches a layer.

    Expected failures (model load, unreadable data) are yielded as a message, once.
    """
    from sam2.checkpoint import CheckpointError
    from sam2.hub import CheckpointDownloadError

    try:
        loaded = factory()
    except (CheckpointError, CheckpointDownloadError, ValueError, OSError, RuntimeError) as exc:
        yield Failure(f"Could not load the SAM 2 model: {exc}")
        return
    video = loaded.video_predictor(PROPAGATION_OPTIONS)
    try:
        state = video.init_state(stack_view(data, plan.line, plan.axis), contrast_limits=limits)
    except (ValueError, TypeError, OSError, MemoryError) as exc:
        yield Failure(f"SAM 2 could not read the stack: {exc}")
        return
    try:
        for object_id, frames in plan.prompts.items():
            for frame, prompt in sorted(frames.items()):
                if prompt.mask is not None:
                    video.add_new_mask(state, frame, object_id, prompt.mask)
                    continue
                has_points = prompt.labels.size > 0
                video.add_new_points_or_box(
                    state,
                    frame,
                    object_id,
                    points=prompt.xy if has_points else None,
                    labels=prompt.labels if has_points else None,
                    box=prompt.box,
                )
        for reverse in plan.passes:
            for frame, obj_ids, logits in video.propagate_in_video(
                state,
                start_frame_idx=plan.start,
                max_frame_num_to_track=plan.span(reverse),
                reverse=reverse,
            ):
                masks = (logits[:, 0] > 0).cpu().numpy()
                yield FrameMasks(int(frame), [int(cast(int, i)) for i in obj_ids], masks)
    finally:
        close = getattr(state.frames, "close", None)  # stop its prefetch thread now
        if close is not None:
            close()
