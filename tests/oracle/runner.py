"""Oracle server: runs the reference ``sam2==1.1.0`` in its own process.

Started by :mod:`tests.oracle.harness` with the oracle's install directory first on
``PYTHONPATH``, so ``import sam2`` here is the reference, never our package. It reads one
JSON request per line on stdin (``{"probe": "module:function", "inputs": npz, "params": {...},
"output": npz}``), calls ``probes/<module>.py:<function>(inputs, **params)`` and answers one JSON
line on the real stdout. Anything the reference prints goes to stderr.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
import types

import numpy as np
import torch


def _install_torchvision_nms() -> None:
    """Register ``torchvision::nms`` with a pure-torch CPU kernel.

    PyPI's torchvision matching torch 2.13 is a CUDA build whose C++ ops do not load with the CPU
    torch; torchvision then fails at import because this operator is missing.
    """

    torch.library.define(
        "torchvision::nms", "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
    )

    @torch.library.impl("torchvision::nms", "CPU")
    def _nms(dets: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
        order = torch.argsort(scores, descending=True, stable=True)
        boxes = dets[order]
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        keep: list[int] = []
        removed = torch.zeros(len(order), dtype=torch.bool)
        for i in range(len(order)):
            if removed[i]:
                continue
            keep.append(i)
            lt = torch.maximum(boxes[i, :2], boxes[i + 1 :, :2])
            rb = torch.minimum(boxes[i, 2:], boxes[i + 1 :, 2:])
            wh = (rb - lt).clamp(min=0)
            inter = wh[:, 0] * wh[:, 1]
            iou = inter / (area[i] + area[i + 1 :] - inter)
            removed[i + 1 :] |= iou.double() > iou_threshold  # float64, as torchvision's kernel
        return order[torch.tensor(keep, dtype=torch.long)]

    # Its fake-tensor (meta) registrations name C++ ops that do not exist here; they only
    # matter for torch.compile, so an empty module stands in for them.
    sys.modules["torchvision._meta_registrations"] = types.ModuleType(
        "torchvision._meta_registrations"
    )


def _install_connected_components() -> None:
    """Give the reference a CPU ``sam2._C`` so it post-processes on CPU as it does on GPU.

    Same contract as its CUDA kernel: input (N, 1, H, W) uint8; outputs int32 labels (0 for
    background) and, per pixel, the area of its 8-connected component.
    """
    from scipy import ndimage

    import sam2

    def get_connected_componnets(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        arr = mask.cpu().numpy().astype(bool)
        labels = np.zeros(arr.shape, dtype=np.int32)
        counts = np.zeros(arr.shape, dtype=np.int32)
        for n in range(arr.shape[0]):
            lab, num = ndimage.label(arr[n, 0], structure=np.ones((3, 3), dtype=bool))
            areas = np.bincount(lab.ravel(), minlength=num + 1).astype(np.int32)
            areas[0] = 0
            labels[n, 0] = lab
            counts[n, 0] = areas[lab]
        return torch.from_numpy(labels), torch.from_numpy(counts)

    module = types.ModuleType("sam2._C")
    module.get_connected_componnets = get_connected_componnets  # type: ignore[attr-defined]
    sys.modules["sam2._C"] = module
    sam2._C = module  # type: ignore[attr-defined]


def _serve() -> None:
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # reference prints go to stderr
    sys.stdout = sys.stderr

    _install_torchvision_nms()
    import sam2

    here = os.path.dirname(os.path.abspath(__file__))
    if os.path.dirname(os.path.abspath(sam2.__file__)).startswith(os.path.dirname(here)):
        raise RuntimeError(f"the oracle imported our own sam2 ({sam2.__file__}), not the reference")
    _install_connected_components()
    protocol.write(json.dumps({"ready": True, "sam2": sam2.__file__}) + "\n")

    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            module_name, func_name = request["probe"].split(":")
            func = getattr(importlib.import_module(f"probes.{module_name}"), func_name)
            with np.load(request["inputs"], allow_pickle=False) as data:
                inputs = {k: data[k] for k in data.files}
            torch.manual_seed(0)
            outputs = func(inputs, **request.get("params", {}))
            np.savez(request["output"], **{k: np.asarray(v) for k, v in outputs.items()})
            protocol.write(json.dumps({"ok": True}) + "\n")
        except Exception:
            protocol.write(json.dumps({"ok": False, "error": traceback.format_exc()}) + "\n")


if __name__ == "__main__":
    _serve()
