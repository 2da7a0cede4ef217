"""Reference video predictor driven by a script of operations (init, prompts, propagation)."""

from __future__ import annotations

from typing import Any

import numpy as np
from probes.build import build

_PATCHED = False


def _patch_memory_dtype() -> None:
    """Upcast stored bf16 memories to the compute dtype before memory attention.

    In fp32 without autocast the reference fails with a dtype mismatch when a frame sees no
    object pointer (type promotion with fp32 pointers is what upcasts them otherwise).
    """
    global _PATCHED
    if _PATCHED:
        return
    from sam2.modeling.memory_attention import MemoryAttention

    original = MemoryAttention.forward

    def forward(self, curr, memory, curr_pos=None, memory_pos=None, num_obj_ptr_tokens=0):  # type: ignore[no-untyped-def]
        dtype = (curr[0] if isinstance(curr, list) else curr).dtype
        memory = memory.to(dtype)
        memory_pos = memory_pos.to(dtype) if memory_pos is not None else None
        return original(self, curr, memory, curr_pos, memory_pos, num_obj_ptr_tokens)

    MemoryAttention.forward = forward
    _PATCHED = True


def _scores(state: dict, frame_idx: int) -> np.ndarray:
    """Object score logits of every object on a frame (NaN where it has no output)."""
    scores = []
    for obj_idx in range(len(state["obj_ids"])):
        out = None
        for key in ("cond_frame_outputs", "non_cond_frame_outputs"):
            out = out or state["output_dict_per_obj"][obj_idx][key].get(frame_idx)
        scores.append(float(out["object_score_logits"].item()) if out is not None else np.nan)
    return np.array(scores, dtype=np.float32)


def run_script(
    inputs: dict[str, np.ndarray],
    config: str,
    ckpt: str,
    video: str,
    ops: list[dict[str, Any]],
    image_size: int = 1024,
    options: dict[str, Any] | None = None,
) -> dict[str, np.ndarray]:
    """Run ``ops`` on a JPEG-folder video; outputs keyed by op index (see the test module)."""
    _patch_memory_dtype()
    overrides = {"image_size": image_size, **(options or {})}
    predictor = build(config, ckpt=ckpt, video=True, overrides=overrides)
    state = predictor.init_state(video, offload_video_to_cpu=True)
    out: dict[str, np.ndarray] = {}
    for i, op in enumerate(ops):
        kind = op["op"]
        if kind == "points":
            frame, ids, masks = predictor.add_new_points_or_box(
                state,
                op["frame"],
                op["obj"],
                points=inputs.get(op.get("points", ""), None),
                labels=inputs.get(op.get("labels", ""), None),
                clear_old_points=op.get("clear_old_points", True),
                box=inputs.get(op.get("box", ""), None),
            )
        elif kind == "mask":
            frame, ids, masks = predictor.add_new_mask(
                state, op["frame"], op["obj"], inputs[op["mask"]]
            )
        elif kind == "propagate":
            frames = []
            for frame, ids, masks in predictor.propagate_in_video(
                state,
                start_frame_idx=op.get("start"),
                max_frame_num_to_track=op.get("max"),
                reverse=op.get("reverse", False),
            ):
                frames.append(frame)
                out[f"{i}.{frame}.masks"] = masks.numpy()
                out[f"{i}.{frame}.scores"] = _scores(state, frame)
                out[f"{i}.{frame}.ids"] = np.array(ids)
            out[f"{i}.frames"] = np.array(frames, dtype=np.int64)
            continue
        elif kind == "remove":
            ids, updated = predictor.remove_object(state, op["obj"])
            out[f"{i}.ids"] = np.array(ids)
            for frame, masks in updated:
                out[f"{i}.{frame}.masks"] = masks.numpy()
            continue
        elif kind == "clear":
            frame, ids, masks = predictor.clear_all_prompts_in_frame(state, op["frame"], op["obj"])
        else:
            raise ValueError(f"unknown op {kind}")
        out[f"{i}.masks"] = masks.numpy()
        out[f"{i}.ids"] = np.array(ids)
        out[f"{i}.frame"] = np.array(frame)
    return out
