"""The typed state of one video: its frames, its objects, their prompts and memories.

Frames come from a :class:`~sam2.frames.FrameSource`, the one protocol that every source (arrays,
TIFF stacks, JPEG folders, or a caller's own) implements; image features of a few frames are kept
in the session's :class:`~sam2.video.features.FeatureCache`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from sam2.frames.base import FrameSource
from sam2.video.features import FeatureCache
from sam2.video.inputs import check_frame_index
from sam2.video.memory import FrameOutput, MemoryBank
from sam2.video.window import ObjectMotion

__all__ = ["FrameSource", "ObjectState", "PointPrompt", "PropagationGuard", "VideoSession"]


@dataclass
class PointPrompt:
    coords: Tensor  # (1, P, 2) model-input pixels (x, y)
    labels: Tensor  # (1, P) int32


@dataclass
class ObjectState:
    """One tracked object: prompts per frame, pending (not yet memorised) outputs, memory."""

    obj_id: Hashable
    points: dict[int, PointPrompt] = field(default_factory=dict)
    masks: dict[int, Tensor] = field(default_factory=dict)  # (1, 1, S, S) binary prompts
    pending: dict[int, tuple[FrameOutput, bool]] = field(default_factory=dict)  # (out, is_cond)
    bank: MemoryBank = field(default_factory=MemoryBank)
    tracked: dict[int, bool] = field(default_factory=dict)  # frame -> tracked in reverse
    motion: ObjectMotion = field(default_factory=ObjectMotion)  # for fast tracking's windows

    @property
    def prompted_frames(self) -> set[int]:
        """Frames where this object has clicks, a box or a mask."""
        return set(self.points) | set(self.masks)

    def output_on(self, frame_idx: int, prefer_cond: bool | None = None) -> FrameOutput | None:
        """The newest output on a frame: pending first, then memorised."""
        if frame_idx in self.pending:
            out, is_cond = self.pending[frame_idx]
            if prefer_cond is None or prefer_cond == is_cond:
                return out
        return self.bank.get(frame_idx)

    def clear(self) -> None:
        self.points.clear()
        self.masks.clear()
        self.pending.clear()
        self.bank.clear()
        self.tracked.clear()


@dataclass
class VideoSession:
    """What ``init_state`` returns: everything the predictor knows about one video."""

    frames: FrameSource
    device: torch.device
    keep_history: bool = False
    objects: OrderedDict[Hashable, ObjectState] = field(default_factory=OrderedDict)
    maskmem_pos_enc: Tensor | None = None  # (1, 64, h', w'), the same for every memory
    features: FeatureCache = field(default_factory=FeatureCache)
    resets: int = 0  # how many times reset_state ran: a propagation started before is stale

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @property
    def video_height(self) -> int:
        return self.frames.orig_hw[0]

    @property
    def video_width(self) -> int:
        return self.frames.orig_hw[1]

    @property
    def obj_ids(self) -> list[Hashable]:
        return list(self.objects)

    def prompted_frames(self) -> set[int]:
        """Frames where any object has a prompt (their features are worth keeping)."""
        return set().union(*(obj.prompted_frames for obj in self.objects.values()))

    def object(self, obj_id: Hashable, create: bool = False) -> ObjectState:
        if obj_id not in self.objects:
            if not create:
                raise KeyError(f"unknown object id {obj_id!r}; known ids: {self.obj_ids}")
            self.objects[obj_id] = ObjectState(obj_id)
        return self.objects[obj_id]

    def pending_is_cond(self, frame_idx: int) -> bool:
        """Whether some object's not-yet-encoded prompt on ``frame_idx`` is a conditioning one."""
        return any(
            obj.pending[frame_idx][1] for obj in self.objects.values() if frame_idx in obj.pending
        )

    def remember_pos_enc(self, pos: Tensor) -> None:
        """Keep the first memory's (1, 64, h', w') position encoding: it is the same for all."""
        if self.maskmem_pos_enc is None:
            self.maskmem_pos_enc = pos[0:1].clone()

    def check_frame(self, frame_idx: int, name: str = "frame_idx") -> int:
        """``frame_idx`` as an int in range; floats, bools and strings are refused, not cast."""
        return check_frame_index(frame_idx, self.num_frames, name)

    def reset(self) -> None:
        """Forget every object, and mark any suspended propagation as stale."""
        self.objects.clear()
        self.resets += 1


class PropagationGuard:
    """What a suspended ``propagate_in_video`` relies on, checked each time it resumes.

    Between two frames the caller may edit the session. Clicks on a tracked object and
    removing one of several objects are fine (the pass goes on with what is left), but after
    ``reset_state``, removing every object, adding an object or clearing an object's last
    prompt, the next frame has no memory to track from and would fail deep in torch; this
    says what happened and what to do instead.
    """

    def __init__(self, session: VideoSession) -> None:
        self.session = session
        self.resets = session.resets
        self.objects = dict(session.objects)  # id -> the very ObjectState being tracked

    def check(self) -> None:
        """Raise ``RuntimeError`` if the pass cannot go on; otherwise nothing."""
        again = "add prompts and call propagate_in_video again"
        session = self.session
        if session.resets != self.resets:
            raise RuntimeError(
                "the session was reset (reset_state) while propagate_in_video was suspended, "
                f"so this propagation cannot resume: {again}"
            )
        if not session.objects:
            raise RuntimeError(
                f"every object was removed while propagate_in_video was suspended: {again}"
            )
        for obj_id, obj in session.objects.items():
            if self.objects.get(obj_id) is not obj:
                raise RuntimeError(
                    f"object {obj_id!r} was added while propagate_in_video was suspended; it "
                    "has no memory yet: call propagate_in_video again to track it"
                )
            if not obj.bank.conditioning_frames:
                raise RuntimeError(
                    f"object {obj_id!r} lost its prompts (clear_all_prompts_in_frame) while "
                    "propagate_in_video was suspended, so it has nothing to track from: add a "
                    "prompt for it (or remove it) and call propagate_in_video again"
                )
