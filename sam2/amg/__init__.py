"""Building blocks of the automatic mask generator ("segment everything").

Point grids and crops (:mod:`.grids`), boxes (:mod:`.boxes`), non-maximum suppression
(:mod:`.nms`), the stability score (:mod:`.stability`), run-length encoding (:mod:`.rle`),
small-region clean-up (:mod:`.regions`) and the candidate set (:mod:`.candidates`).
Shapes: N masks, H×W image or crop pixels, S model input size.
"""

from sam2.amg.boxes import (
    box_area,
    box_xyxy_to_xywh,
    is_box_near_crop_edge,
    logits_to_boxes,
    masks_to_boxes,
)
from sam2.amg.grids import build_all_layer_point_grids, build_point_grid, generate_crop_boxes
from sam2.amg.nms import batched_nms, nms
from sam2.amg.regions import remove_small_regions
from sam2.amg.rle import area_from_rle, coco_encode_rle, mask_to_rle, rle_to_mask
from sam2.amg.stability import stability_score

__all__ = [
    "area_from_rle",
    "batched_nms",
    "box_area",
    "box_xyxy_to_xywh",
    "build_all_layer_point_grids",
    "build_point_grid",
    "coco_encode_rle",
    "generate_crop_boxes",
    "is_box_near_crop_edge",
    "logits_to_boxes",
    "mask_to_rle",
    "masks_to_boxes",
    "nms",
    "remove_small_regions",
    "rle_to_mask",
    "stability_score",
]
