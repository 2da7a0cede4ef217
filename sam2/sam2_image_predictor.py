"""Prompted segmentation of single images, with the reference predictor's API and results.

Compute the image embedding once (``set_image``), then ask for masks as often as you like
(``predict``): a click costs only the prompt encoder and the small mask decoder.
``precision="bf16"`` runs both under bfloat16 autocast (:mod:`sam2.precision`): about twice
as fast on CPUs with bf16 matrix units, with masks that agree closely but not bit for bit.
"""

from __future__ import annotations

import weakref
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from sam2.image_embedding import ImageEmbedding
from sam2.intensity import ContrastLimits
from sam2.modeling.sam2_model import SAM2Model
from sam2.postprocess import remove_small_regions
from sam2.precision import Precision, PrecisionChoice, autocast_context, check_precision
from sam2.prompts import validate_box, validate_mask_input, validate_points
from sam2.transforms import as_hwc_array, preprocess, to_model_coords, upsample_logits

__all__ = ["ImageEmbedding", "LowResPrediction", "SAM2ImagePredictor"]

PredictOutput = tuple[np.ndarray, np.ndarray, np.ndarray]


class LowResPrediction(NamedTuple):
    """What :meth:`SAM2ImagePredictor.predict_torch` gives for B prompt sets (C masks each)."""

    logits: Tensor  # (B, C, S/4, S/4) float32, small holes and islands removed
    ious: Tensor  # (B, C) predicted IoU of each mask
    low_res_logits: Tensor  # (B, C, S/4, S/4) raw, clamped to ±32: the next mask_input


class SAM2ImagePredictor:
    """Masks from points, boxes and low-res mask prompts on an embedded image.

    ``mask_threshold`` binarises logits; ``max_hole_area`` / ``max_sprinkle_area`` (pixels of
    the low-res mask) fill small holes / remove small islands before upsampling, on any device.
    ``precision`` is ``"fp32"`` (the reference's numbers) or ``"bf16"`` (autocast on CPU or
    CUDA); either way stored features and returned arrays are float32.
    """

    def __init__(
        self,
        sam_model: SAM2Model,
        mask_threshold: float = 0.0,
        max_hole_area: float = 0.0,
        max_sprinkle_area: float = 0.0,
        precision: PrecisionChoice = "fp32",
        **kwargs: Any,
    ) -> None:
        self.model = sam_model
        self.mask_threshold = mask_threshold
        self.max_hole_area = max_hole_area
        self.max_sprinkle_area = max_sprinkle_area
        self.precision: Precision = check_precision(precision, sam_model.device)
        self.reset_predictor()

    @classmethod
    def from_pretrained(cls, model_id: str, **kwargs: Any) -> SAM2ImagePredictor:
        """Predictor for an official model id, e.g. ``"facebook/sam2.1-hiera-tiny"``.

        Keyword arguments go to :func:`sam2.build_sam.build_sam2_hf` (``device``, ``cache_dir``,
        ``revision``, ``local_files_only``) and to the predictor (``max_hole_area``,
        ``precision``, ...).
        """
        from sam2.build_sam import build_sam2_hf

        return cls(build_sam2_hf(model_id, **dict(kwargs)), **kwargs)

    @property
    def device(self) -> torch.device:
        return self.model.device

    def reset_predictor(self) -> None:
        """Forget the current image(s) and their embeddings."""
        self._is_image_set = False
        self._is_batch = False
        self._embeddings: list[ImageEmbedding] = []  # one per image set
        self._dense_pe: Tensor | None = None  # (1, C, S/16, S/16), the same for every click

    @property
    def _orig_hw(self) -> list[tuple[int, int]]:  # the reference's attribute
        return [e.orig_hw for e in self._embeddings]

    # ------------------------------------------------------------------ embedding
    @torch.inference_mode()
    def embed(self, image: Any, contrast_limits: ContrastLimits | None = None) -> ImageEmbedding:
        """The embedding of one image, to pass to ``predict(..., embedding=)`` later.

        Takes what :meth:`set_image` takes; the predictor's own image is left as it was.
        Keeping embeddings lets one predictor serve many images (e.g. the slices of a stack)
        without re-encoding them or cloning the predictor.
        """
        return self._embed([as_hwc_array(image)], contrast_limits)[0]

    @torch.inference_mode()
    def set_image(self, image: Any, contrast_limits: ContrastLimits | None = None) -> None:
        """Embed one image: HWC RGB, grayscale (H, W), any integer or float dtype, or PIL.

        Intensities are scaled as described in :mod:`sam2.intensity` (uint8 as the reference,
        16-bit with robust percentiles unless ``contrast_limits`` are given).
        """
        self.reset_predictor()
        self._embeddings = [self.embed(image, contrast_limits)]
        self._is_image_set = True

    @torch.inference_mode()
    def set_image_batch(
        self, image_list: list[np.ndarray], contrast_limits: ContrastLimits | None = None
    ) -> None:
        """Embed several images at once, for :meth:`predict_batch`."""
        if not isinstance(image_list, (list, tuple)) or not image_list:
            raise ValueError("set_image_batch expects a non-empty list of HWC images")
        self.reset_predictor()
        self._embeddings = self._embed([as_hwc_array(im) for im in image_list], contrast_limits)
        self._is_image_set = True
        self._is_batch = True

    def _embed(
        self, images: list[np.ndarray], contrast_limits: ContrastLimits | None
    ) -> list[ImageEmbedding]:
        """Encode the images as one batch; one embedding per image (views of the batch)."""
        size = self.model.image_size
        batch = torch.stack([preprocess(im, size, contrast_limits) for im in images])
        batch = batch.to(device=self.device, dtype=self.model.dtype)
        with autocast_context(self.precision, self.device):
            feats = self.model.encode_image(batch)
        # bf16: high-res levels stay bfloat16 as in the reference on CUDA (float32 copies gave
        # the same masks, 10% slower); the s16 level is float32 from the FPN, kept so for users
        image_embed = feats.vision_features
        if self.precision != "fp32":
            image_embed = image_embed.float()
        if self.model.directly_add_no_mem_embed:
            no_mem = self.model.no_mem_embed.reshape(1, -1, 1, 1)  # (1, C, 1, 1)
            image_embed = image_embed + no_mem
        # channels-last (as the FPN already gives it): the decoder's (B, hw, C) token view is
        # then contiguous, which saves 3-5 ms per click on 2 CPU cores; values are unchanged
        image_embed = image_embed.contiguous(memory_format=torch.channels_last)
        model_ref = weakref.ref(self.model)
        return [
            ImageEmbedding(
                features=feats.select(i),
                image_embed=image_embed[i : i + 1],
                orig_hw=(int(im.shape[0]), int(im.shape[1])),
                image_size=size,
                precision=self.precision,
                model_ref=model_ref,
            )
            for i, im in enumerate(images)
        ]

    def get_image_embedding(self) -> Tensor:
        """(B, 256, S/16, S/16) embedding of the current image(s), no_mem_embed included."""
        embeddings = self._require_image()
        if len(embeddings) == 1:
            return embeddings[0].image_embed
        return torch.cat([e.image_embed for e in embeddings])

    def _require_image(self) -> list[ImageEmbedding]:
        if not self._is_image_set or not self._embeddings:
            raise RuntimeError("no image is set: call set_image(image) before predicting")
        return self._embeddings

    def _chosen(self, embedding: ImageEmbedding | None, img_idx: int = -1) -> ImageEmbedding:
        """``embedding`` if this predictor may decode it, else the set image number ``img_idx``."""
        if embedding is None:
            return self._require_image()[img_idx]
        if not isinstance(embedding, ImageEmbedding):
            raise TypeError(
                f"embedding must be an ImageEmbedding from predictor.embed(image), got "
                f"{type(embedding).__name__}"
            )
        embedding.check_usable(self.model, self.precision)
        return embedding

    def _image_pe(self) -> Tensor:  # (1, C, S/16, S/16) dense positional encoding
        if self._dense_pe is None or self._dense_pe.device != self.device:
            self._dense_pe = self.model.sam_prompt_encoder.get_dense_pe()
        return self._dense_pe

    # ------------------------------------------------------------------ prompts
    def predict(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        normalize_coords: bool = True,
        embedding: ImageEmbedding | None = None,
    ) -> PredictOutput:
        """Masks for the prompts on the current image, or on ``embedding`` if given.

        ``point_coords`` (N, 2) (x, y) pixels with ``point_labels`` (N,) (1 fg, 0 bg), or a
        batch (B, N, 2)/(B, N); ``box`` (4,) or (B, 4) as [x0, y0, x1, y1]; ``mask_input`` a
        previous low-res output (1, S/4, S/4). Returns ``masks`` (C, H, W) float 0/1 (or
        logits), ``iou_predictions`` (C,) and low-res logits (C, S/4, S/4); C is 3 with
        ``multimask_output`` else 1, with a leading B for batched prompts.

        ``embedding`` (from :meth:`embed`, by this predictor's model) is used instead of the
        image of :meth:`set_image`, which then need not be called.
        """
        if embedding is None and self._is_batch:
            raise RuntimeError("images were set with set_image_batch: use predict_batch")
        return self._predict_numpy(
            self._chosen(embedding),
            point_coords,
            point_labels,
            box,
            mask_input,
            multimask_output,
            return_logits,
            normalize_coords,
        )

    def predict_batch(
        self,
        point_coords_batch: list[np.ndarray | None] | None = None,
        point_labels_batch: list[np.ndarray | None] | None = None,
        box_batch: list[np.ndarray | None] | None = None,
        mask_input_batch: list[np.ndarray | None] | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        normalize_coords: bool = True,
    ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """:meth:`predict` for each image of :meth:`set_image_batch`, with its own prompts."""
        embeddings = self._require_image()
        if not self._is_batch:
            raise RuntimeError("predict_batch needs images set with set_image_batch")
        n = len(embeddings)

        def pick(items: list[Any] | None, i: int) -> Any:
            if items is not None and len(items) != n:
                raise ValueError(f"got prompts for {len(items)} images, but {n} images are set")
            return items[i] if items is not None else None

        results = [
            self._predict_numpy(
                embeddings[i],
                pick(point_coords_batch, i),
                pick(point_labels_batch, i),
                pick(box_batch, i),
                pick(mask_input_batch, i),
                multimask_output,
                return_logits,
                normalize_coords,
            )
            for i in range(n)
        ]
        return [r[0] for r in results], [r[1] for r in results], [r[2] for r in results]

    def _predict_numpy(
        self,
        embedding: ImageEmbedding,
        point_coords: Any,
        point_labels: Any,
        box: Any,
        mask_input: Any,
        multimask_output: bool,
        return_logits: bool,
        normalize_coords: bool,
    ) -> PredictOutput:
        """Checked numpy prompts in image pixels -> :meth:`predict_torch` -> numpy masks."""
        hw = embedding.orig_hw
        size = self.model.image_size
        coords = labels = boxes = masks_in = None
        if point_coords is not None or point_labels is not None:
            xy, lab = validate_points(point_coords, point_labels, hw, normalize_coords)
            coords = to_model_coords(torch.from_numpy(xy), hw, size, normalize_coords)
            labels = torch.from_numpy(lab)
            if coords.ndim == 2:
                coords, labels = coords[None], labels[None]
        if box is not None:
            checked = validate_box(box, hw, normalize_coords)
            corners = torch.from_numpy(checked).reshape(-1, 2, 2)
            boxes = to_model_coords(corners, hw, size, normalize_coords)  # (B, 2, 2)
        if mask_input is not None:
            masks_in = torch.from_numpy(validate_mask_input(mask_input, size // 4))
        with torch.inference_mode():
            out = self.predict_torch(
                coords, labels, boxes, masks_in, multimask_output, embedding=embedding
            )
            masks = upsample_logits(out.logits, hw)
            if not return_logits:
                # in place: float 0/1 without a bool and a second float (H, W) buffer
                masks = masks.gt_(self.mask_threshold)
        results = (masks, out.ious, out.low_res_logits)
        masks_np, ious_np, low_np = (t.squeeze(0).cpu().numpy() for t in results)
        return masks_np, ious_np, low_np

    @torch.inference_mode()
    def _predict(
        self,
        point_coords: Tensor | None,
        point_labels: Tensor | None,
        boxes: Tensor | None = None,
        mask_input: Tensor | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        img_idx: int = -1,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The reference's tensor-level predict: :meth:`predict_torch`, upsampled.

        Third-party code calls it, so it stays. Returns masks (B, C, H, W) at the size of set
        image ``img_idx`` (bool, or float32 logits), IoUs (B, C) and low-res logits
        (B, C, S/4, S/4) clamped to ±32.
        """
        embedding = self._chosen(None, img_idx)
        out = self.predict_torch(
            point_coords, point_labels, boxes, mask_input, multimask_output, embedding=embedding
        )
        masks = upsample_logits(out.logits, embedding.orig_hw)
        if not return_logits:
            masks = masks > self.mask_threshold
        return masks, out.ious, out.low_res_logits

    @torch.inference_mode()
    def predict_torch(
        self,
        point_coords: Tensor | None,
        point_labels: Tensor | None,
        boxes: Tensor | None = None,
        mask_input: Tensor | None = None,
        multimask_output: bool = True,
        *,
        embedding: ImageEmbedding | None = None,
    ) -> LowResPrediction:
        """Batched tensor twin of :meth:`predict`, on prompts already in model input pixels.

        Points (B, N, 2) (x, y) in [0, S] with labels (B, N); boxes (B, 4) or (B, 2, 2) as
        XYXY, put before the clicks as two corners labelled 2 and 3; ``mask_input``
        (B, 1, S/4, S/4) logits. Nothing is upsampled: callers that need only some masks at
        full size (the automatic mask generator) upsample those with
        :func:`sam2.transforms.upsample_logits`. Decodes the set image (the last one of a
        batch) unless ``embedding`` is given.
        """
        embedding = self._chosen(embedding)
        device = self.device
        points: tuple[Tensor, Tensor] | None = None
        if point_coords is not None and point_labels is not None:
            points = (point_coords.to(device).float(), point_labels.to(device).int())
        if boxes is not None:
            corners = boxes.reshape(-1, 2, 2).to(device).float()
            corner_labels = torch.tensor([[2, 3]], dtype=torch.int, device=device)
            corner_labels = corner_labels.repeat(corners.shape[0], 1)
            if points is not None:
                points = (
                    torch.cat([corners, points[0]], 1),
                    torch.cat([corner_labels, points[1]], 1),
                )
            else:
                points = (corners, corner_labels)
        dtype = self.model.dtype
        if mask_input is not None:
            mask_input = mask_input.to(device=device, dtype=dtype)
        # The prompt encoder stays float32 in every precision: it is cheap, and its
        # hand-written LayerNorm2d would otherwise normalise bf16 values.
        sparse, dense = self.model.sam_prompt_encoder(points=points, boxes=None, masks=mask_input)
        repeat = points is not None and points[0].shape[0] > 1
        with autocast_context(self.precision, device):
            low_res, ious, _, _ = self.model.sam_mask_decoder(
                image_embeddings=embedding.image_embed,
                image_pe=self._image_pe(),
                sparse_prompt_embeddings=sparse.to(dtype),
                dense_prompt_embeddings=dense.to(dtype),
                multimask_output=multimask_output,
                repeat_image=repeat,
                high_res_features=embedding.high_res_features,
            )
        low_res = low_res.float()
        processed = remove_small_regions(
            low_res, self.max_hole_area, self.max_sprinkle_area, self.mask_threshold
        )
        return LowResPrediction(processed, ious.float(), torch.clamp(low_res, -32.0, 32.0))
