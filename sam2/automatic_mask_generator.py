"""Segment everything: masks for a grid of single-click prompts, filtered and de-duplicated.

``generate`` gives the reference's records for the same model and settings. Each grid point
is one positive click (three masks with ``multimask_output``). A mask is kept if its predicted
IoU is above ``pred_iou_thresh``, its stability score (:mod:`sam2.amg.stability`) at least
``stability_score_thresh``, and it is not cut off by a crop edge inside the image; box NMS then
removes duplicates within each crop and, preferring smaller crops, between crops.

Unlike the reference, masks are kept as low-res logits while they are filtered: only masks that
pass the IoU filter are upsampled (a few at a time) to be scored, and only the survivors of NMS
are upsampled again for the output. Memory stays at a few hundred kB per candidate instead of a
float32 full-resolution batch.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import numpy as np
import torch
from torch import Tensor

from sam2.amg.boxes import box_area, box_xyxy_to_xywh, is_box_near_crop_edge, logits_to_boxes
from sam2.amg.candidates import Candidates
from sam2.amg.grids import CropBox, build_all_layer_point_grids, generate_crop_boxes
from sam2.amg.nms import batched_nms
from sam2.amg.regions import clean_records
from sam2.amg.rle import coco_encode_rle, mask_to_rle, require_pycocotools
from sam2.amg.stability import stability_score
from sam2.intensity import ContrastLimits, choose_limits
from sam2.modeling.sam2_model import SAM2Model
from sam2.precision import PrecisionChoice
from sam2.sam2_image_predictor import ImageEmbedding, SAM2ImagePredictor
from sam2.transforms import as_hwc_array, to_model_coords, upsample_logits

OutputMode = Literal["binary_mask", "uncompressed_rle", "coco_rle"]
OUTPUT_MODES: tuple[OutputMode, ...] = get_args(OutputMode)
MaskRecord = dict[str, Any]

#: Keywords of ``build_sam2_hf`` that ``from_pretrained`` also hands to the constructor.
_BUILD_KEYWORDS = frozenset(
    {"device", "mode", "hydra_overrides_extra", "apply_postprocessing"}
    | {"cache_dir", "revision", "local_files_only"}
)
_UPSAMPLE_BYTES = 64 * 2**20  # float32 full-resolution logits held at once


class SAM2AutomaticMaskGenerator:
    """Masks for a whole image from a grid of point prompts (optionally also on crops).

    Parameters and defaults are the reference's: ``points_per_side`` (or explicit
    ``point_grids`` in [0, 1], one per crop layer; exactly one of the two), ``points_per_batch``
    prompts per decoder call, ``pred_iou_thresh`` (kept if greater; 0 disables),
    ``stability_score_thresh`` (kept if at least; 0 disables) with ``stability_score_offset``,
    ``mask_threshold`` on the logits, ``box_nms_thresh`` within a crop, ``crop_n_layers`` extra
    crop layers with ``crop_nms_thresh``, ``crop_overlap_ratio`` and
    ``crop_n_points_downscale_factor``, ``min_mask_region_area`` (holes and islands of at most
    this many low-res pixels are removed by the image predictor, on any device),
    ``output_mode`` (``"binary_mask"``, ``"uncompressed_rle"`` or ``"coco_rle"``, the last
    needing pycocotools), ``use_m2m`` (one refinement pass feeding each mask back as a mask
    prompt) and ``multimask_output``. ``precision="bf16"`` runs the model under bfloat16
    autocast (faster on CPUs with bf16 units; masks close to, not equal to, fp32).
    """

    def __init__(
        self,
        model: SAM2Model,
        points_per_side: int | None = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.8,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        mask_threshold: float = 0.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        point_grids: list[np.ndarray] | None = None,
        min_mask_region_area: float = 0,
        output_mode: OutputMode = "binary_mask",
        use_m2m: bool = False,
        multimask_output: bool = True,
        precision: PrecisionChoice = "fp32",
        **kwargs: Any,
    ) -> None:
        unknown = sorted(set(kwargs) - _BUILD_KEYWORDS)
        if unknown:
            raise TypeError(f"SAM2AutomaticMaskGenerator got unexpected keyword(s) {unknown}")
        if output_mode not in OUTPUT_MODES:
            raise ValueError(f"output_mode must be one of {OUTPUT_MODES}, got {output_mode!r}")
        if output_mode == "coco_rle":
            require_pycocotools()
        if int(points_per_batch) < 1:
            raise ValueError(f"points_per_batch must be at least 1, got {points_per_batch}")
        if int(crop_n_layers) < 0:
            raise ValueError(f"crop_n_layers must be 0 or more, got {crop_n_layers}")
        self.point_grids = _point_grids(
            points_per_side, point_grids, crop_n_layers, crop_n_points_downscale_factor
        )
        # The predictor binarises at 0 for its hole/sprinkle clean-up, whatever mask_threshold
        # is, as the reference's does.
        self.predictor = SAM2ImagePredictor(
            model,
            max_hole_area=min_mask_region_area,
            max_sprinkle_area=min_mask_region_area,
            precision=precision,
        )
        self.points_per_batch = int(points_per_batch)
        self.pred_iou_thresh = pred_iou_thresh
        self.stability_score_thresh = stability_score_thresh
        self.stability_score_offset = stability_score_offset
        self.mask_threshold = mask_threshold
        self.box_nms_thresh = box_nms_thresh
        self.crop_n_layers = int(crop_n_layers)
        self.crop_nms_thresh = crop_nms_thresh
        self.crop_overlap_ratio = crop_overlap_ratio
        self.crop_n_points_downscale_factor = crop_n_points_downscale_factor
        self.min_mask_region_area = min_mask_region_area
        self.output_mode: OutputMode = output_mode
        self.use_m2m = use_m2m
        self.multimask_output = multimask_output

    @classmethod
    def from_pretrained(cls, model_id: str, **kwargs: Any) -> SAM2AutomaticMaskGenerator:
        """Generator on an official model, e.g. ``"facebook/sam2.1-hiera-large"``.

        Keyword arguments go to :func:`sam2.build_sam.build_sam2_hf` (``device``,
        ``cache_dir``, ...) and to the generator (``points_per_side``, ...).
        """
        from sam2.build_sam import build_sam2_hf

        return cls(build_sam2_hf(model_id, **dict(kwargs)), **kwargs)

    # ------------------------------------------------------------------ generate
    @torch.inference_mode()
    def generate(
        self, image: np.ndarray, contrast_limits: ContrastLimits | None = None
    ) -> list[MaskRecord]:
        """Mask records for an (H, W, 3) RGB or (H, W) grayscale image.

        uint8 images are used as the reference uses them; other types are scaled once for the
        whole image (``contrast_limits``, or robust percentiles, see :mod:`sam2.intensity`), so
        every crop sees the same intensities. Each record has ``segmentation`` (per
        ``output_mode``), ``area`` (pixels), ``bbox`` (XYWH), ``predicted_iou``,
        ``point_coords`` ([[x, y]]), ``stability_score`` and ``crop_box`` (XYWH).
        """
        rgb = _checked_image(image)
        limits = choose_limits(rgb, contrast_limits)
        orig_hw = (int(rgb.shape[0]), int(rgb.shape[1]))
        crop_boxes, layers = generate_crop_boxes(
            orig_hw, self.crop_n_layers, self.crop_overlap_ratio
        )
        if any(x1 <= x0 or y1 <= y0 for x0, y0, x1, y1 in crop_boxes):
            raise ValueError(
                f"a {orig_hw[0]}×{orig_hw[1]} image is too small for crop_n_layers="
                f"{self.crop_n_layers}: some crops would be empty; use fewer crop layers"
            )
        found = Candidates.cat(
            [
                self._process_crop(rgb, limits, crop, layer, index, orig_hw)
                for index, (crop, layer) in enumerate(zip(crop_boxes, layers))
            ]
        )
        if len(crop_boxes) > 1:  # the same object found in several crops: prefer small crops
            areas = box_area(torch.tensor(crop_boxes, device=found.boxes.device))
            scores = 1 / areas[found.crop_index]
            categories = torch.zeros_like(found.iou_preds)
            found = found.select(
                batched_nms(found.boxes.float(), scores, categories, self.crop_nms_thresh)
            )
        return self._records(found, crop_boxes, orig_hw)

    def _process_crop(
        self,
        rgb: np.ndarray,
        limits: ContrastLimits | None,
        crop: CropBox,
        layer: int,
        crop_index: int,
        orig_hw: tuple[int, int],
    ) -> Candidates:
        """Candidates of one crop, de-duplicated, with points and boxes in image pixels."""
        x0, y0, x1, y1 = crop
        embedding = self.predictor.embed(rgb[y0:y1, x0:x1], contrast_limits=limits)
        crop_hw = (y1 - y0, x1 - x0)
        scale = np.array([crop_hw[1], crop_hw[0]])[None]  # (1, 2) x, y
        points = torch.as_tensor(self.point_grids[layer] * scale, dtype=torch.float32)
        step = self.points_per_batch
        found = Candidates.cat(
            [
                self._process_batch(embedding, points[i : i + step], crop, crop_index, orig_hw)
                for i in range(0, len(points), step)
            ]
        )
        categories = torch.zeros_like(found.iou_preds)
        keep = batched_nms(found.boxes.float(), found.iou_preds, categories, self.box_nms_thresh)
        return found.select(keep).shifted(x0, y0)

    def _process_batch(
        self,
        embedding: ImageEmbedding,
        points: Tensor,
        crop: CropBox,
        crop_index: int,
        orig_hw: tuple[int, int],
    ) -> Candidates:
        """Predict, score and filter the masks of one batch of grid points (P, 2) crop pixels."""
        device = self.predictor.device
        crop_hw = (crop[3] - crop[1], crop[2] - crop[0])
        coords = to_model_coords(points, crop_hw, self.predictor.model.image_size).to(device)
        labels = torch.ones(len(points), 1, dtype=torch.int, device=device)
        low_res, ious, clamped = self.predictor.predict_torch(
            coords[:, None], labels, multimask_output=self.multimask_output, embedding=embedding
        )
        per_point = low_res.shape[1]
        low_res, ious = low_res.flatten(0, 1), ious.flatten()  # (P*M, h, w), (P*M,)
        coords = coords.repeat_interleave(per_point, dim=0)
        if self.use_m2m:
            low_res, ious = self._refine(embedding, coords, clamped.flatten(0, 1))
        keep = torch.arange(len(ious), device=device)
        if self.pred_iou_thresh > 0.0:
            keep = keep[ious[keep] > self.pred_iou_thresh]
        stability, boxes = self._score(low_res[keep], crop_hw)
        passed = torch.ones_like(stability, dtype=torch.bool)
        if self.stability_score_thresh > 0.0:
            passed = stability >= self.stability_score_thresh
        orig_box = [0, 0, orig_hw[1], orig_hw[0]]
        passed &= ~is_box_near_crop_edge(boxes, crop, orig_box)
        keep, stability, boxes = keep[passed], stability[passed], boxes[passed]
        return Candidates(
            low_res=low_res[keep].contiguous(),
            iou_preds=ious[keep],
            stability=stability,
            points=points.to(device).repeat_interleave(per_point, dim=0)[keep],
            boxes=boxes,
            crop_index=torch.full((len(keep),), crop_index, dtype=torch.int64, device=device),
        )

    def _refine(
        self, embedding: ImageEmbedding, coords: Tensor, mask_input: Tensor
    ) -> tuple[Tensor, Tensor]:
        """m2m: predict each mask again from its own click plus its low-res logits as a mask
        prompt, one mask per prompt. ``coords`` (N, 2) model frame, ``mask_input`` (N, h, w)."""
        step = self.points_per_batch
        refined, ious = [], []
        for i in range(0, len(coords), step):
            batch = coords[i : i + step, None]  # (B, 1, 2)
            labels = torch.ones(batch.shape[:2], dtype=torch.int, device=batch.device)
            low_res, iou, _ = self.predictor.predict_torch(
                batch,
                labels,
                mask_input=mask_input[i : i + step, None],
                multimask_output=False,
                embedding=embedding,
            )
            refined.append(low_res[:, 0])
            ious.append(iou[:, 0])
        return torch.cat(refined), torch.cat(ious)

    def _score(self, low_res: Tensor, crop_hw: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """Stability scores (N,) and inclusive XYXY boxes (N, 4) of the binary masks at the
        crop's resolution, upsampling a few masks at a time."""
        scores, boxes = [], []
        for chunk in _chunks(low_res, crop_hw):
            logits = upsample_logits(chunk[:, None], crop_hw)[:, 0]  # (n, H, W)
            scores.append(stability_score(logits, self.mask_threshold, self.stability_score_offset))
            boxes.append(logits_to_boxes(logits, self.mask_threshold))
        if not scores:
            empty = torch.empty(0, device=low_res.device)
            return empty, empty.reshape(0, 4).long()
        return torch.cat(scores), torch.cat(boxes)

    # ------------------------------------------------------------------ output
    def _records(
        self, found: Candidates, crop_boxes: list[CropBox], orig_hw: tuple[int, int]
    ) -> list[MaskRecord]:
        segmentations: list[Any] = [None] * len(found)
        areas = [0] * len(found)
        for index in torch.unique(found.crop_index).tolist():
            x0, y0, x1, y1 = crop_boxes[index]
            rows = torch.nonzero(found.crop_index == index).flatten()
            for chunk in _chunks(rows, (y1 - y0, x1 - x0)):
                logits = upsample_logits(found.low_res[chunk][:, None], (y1 - y0, x1 - x0))
                binary = (logits[:, 0] > self.mask_threshold).cpu().numpy()
                for row, mask in zip(chunk.tolist(), binary):
                    full = np.zeros(orig_hw, dtype=bool)
                    full[y0:y1, x0:x1] = mask
                    areas[row] = int(mask.sum())
                    segmentations[row] = self._encode(full)
        crop_xywh = box_xyxy_to_xywh(torch.tensor(crop_boxes, dtype=torch.float32)).tolist()
        bboxes = box_xyxy_to_xywh(found.boxes.float()).tolist()
        return [
            {
                "segmentation": segmentations[i],
                "area": areas[i],
                "bbox": bboxes[i],
                "predicted_iou": iou,
                "point_coords": [point],
                "stability_score": stability,
                "crop_box": crop_xywh[crop],
            }
            for i, (iou, point, stability, crop) in enumerate(
                zip(
                    found.iou_preds.tolist(),
                    found.points.tolist(),
                    found.stability.tolist(),
                    found.crop_index.tolist(),
                )
            )
        ]

    def _encode(self, mask: np.ndarray) -> Any:
        if self.output_mode == "binary_mask":
            return mask
        rle = mask_to_rle(mask)
        return coco_encode_rle(rle) if self.output_mode == "coco_rle" else rle

    # ------------------------------------------------------------------ clean-up
    @staticmethod
    def postprocess_small_regions(
        records: list[MaskRecord], min_area: float, nms_thresh: float
    ) -> list[MaskRecord]:
        """Fill holes and drop islands under ``min_area`` pixels in ``generate``'s records,
        then NMS (``nms_thresh``) preferring masks that needed no change.

        Optional, as in the reference (whose ``generate`` never calls it); see
        :func:`sam2.amg.regions.clean_records`.
        """
        return clean_records(records, min_area, nms_thresh)


def _point_grids(
    points_per_side: int | None,
    point_grids: list[np.ndarray] | None,
    crop_n_layers: int,
    downscale: int,
) -> list[np.ndarray]:
    """The grid of each crop layer, or a ValueError that says which setting is wrong."""
    if (points_per_side is None) == (point_grids is None):
        raise ValueError(
            "give exactly one of points_per_side and point_grids (got "
            + ("both" if point_grids is not None else "neither")
            + "); set points_per_side=None to use explicit point_grids"
        )
    if points_per_side is not None:
        if downscale < 1:
            raise ValueError(f"crop_n_points_downscale_factor must be >= 1, got {downscale}")
        smallest = int(points_per_side / downscale**crop_n_layers)
        if points_per_side < 1 or smallest < 1:
            raise ValueError(
                f"points_per_side={points_per_side} leaves {smallest} points per side in crop "
                f"layer {crop_n_layers} (downscaled by {downscale} per layer); use more points "
                "or fewer crop layers"
            )
        return build_all_layer_point_grids(points_per_side, crop_n_layers, downscale)
    grids = [np.asarray(g, dtype=np.float64) for g in point_grids or []]
    if len(grids) < crop_n_layers + 1:
        raise ValueError(
            f"point_grids has {len(grids)} grid(s) but crop_n_layers={crop_n_layers} needs "
            f"{crop_n_layers + 1} (one per layer, layer 0 being the whole image)"
        )
    for i, grid in enumerate(grids):
        if grid.ndim != 2 or grid.shape[1] != 2 or len(grid) == 0:
            raise ValueError(f"point_grids[{i}] must be a non-empty (N, 2) array, got {grid.shape}")
        if not np.isfinite(grid).all() or grid.min() < 0.0 or grid.max() > 1.0:
            raise ValueError(
                f"point_grids[{i}] must hold (x, y) in [0, 1] (fractions of the crop's width "
                "and height), not pixels"
            )
    return grids


def _checked_image(image: Any) -> np.ndarray:
    """(H, W, 3|1) array from the user's image, or a ValueError that says what is wrong."""
    if isinstance(image, np.ndarray):
        if image.dtype.kind not in "biuf":
            raise ValueError(
                f"image dtype {image.dtype} is not supported; pass uint8 RGB (or another "
                "integer or float type)"
            )
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
            raise ValueError(
                f"expected an (H, W, 3) RGB or (H, W) grayscale image, got shape {image.shape}; "
                "for a stack or a multichannel image pass one 2D plane"
            )
    return as_hwc_array(image)


def _chunks(rows: Tensor, hw: tuple[int, int]) -> list[Tensor]:
    """``rows`` split so that each part's float32 logits at ``hw`` fit the upsampling budget."""
    per_chunk = max(1, _UPSAMPLE_BYTES // (4 * hw[0] * hw[1]))
    return list(rows.split(per_chunk)) if len(rows) else []
