"""Prompt encoder: clicks, box corners and a low-res mask turned into decoder inputs.

Clicks and box corners become *sparse* tokens (a random-Fourier encoding of the position plus a
learned per-label vector); a mask prompt becomes a *dense* map the size of the image embedding.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn

from sam2.modeling.common import LayerNorm2d
from sam2.modeling.position_encoding import PositionEmbeddingRandom

#: Point labels understood by :meth:`PromptEncoder._embed_points`.
LABEL_PAD = -1  # "not a point": padding, or the dummy point of an unprompted frame
LABEL_NEGATIVE = 0
LABEL_POSITIVE = 1
LABEL_BOX_TOP_LEFT = 2
LABEL_BOX_BOTTOM_RIGHT = 3


class PromptEncoder(nn.Module):
    """Embeds point/box/mask prompts for :class:`~sam2.modeling.mask_decoder.MaskDecoder`.

    Coordinates are pixels of the model's input frame (``input_image_size``, (H, W)), x first.
    """

    def __init__(
        self,
        embed_dim: int,
        image_embedding_size: tuple[int, int],
        input_image_size: tuple[int, int],
        mask_in_chans: int,
        activation: type[nn.Module] = nn.GELU,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.image_embedding_size = (int(image_embedding_size[0]), int(image_embedding_size[1]))
        self.input_image_size = (int(input_image_size[0]), int(input_image_size[1]))
        # Mask prompts are 4× the embedding grid (256² for a 64² embedding).
        self.mask_input_size = (4 * self.image_embedding_size[0], 4 * self.image_embedding_size[1])
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)

        # One learned vector per label 0..3 (negative, positive, box top-left, box bottom-right).
        self.num_point_embeddings = 4
        self.point_embeddings = nn.ModuleList(
            nn.Embedding(1, embed_dim) for _ in range(self.num_point_embeddings)
        )
        self.not_a_point_embed = nn.Embedding(1, embed_dim)

        hidden = mask_in_chans // 4
        # Indices 2 and 5 are the (parameter-free) activations: the checkpoint skips them.
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, hidden, kernel_size=2, stride=2),
            LayerNorm2d(hidden),
            activation(),
            nn.Conv2d(hidden, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            activation(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def get_dense_pe(self) -> Tensor:  # (1, C, h, w)
        """Positional encoding of every cell of the image embedding, for the decoder's keys."""
        return self.pe_layer(self.image_embedding_size).unsqueeze(0)

    def _embed_points(self, points: Tensor, labels: Tensor, pad: bool) -> Tensor:
        """Encode (B, N, 2) pixel coords with (B, N) labels into (B, N [+1], C) tokens.

        ``pad`` appends one "not a point" token per set: the released models were trained with
        it whenever no box tensor is given, so dropping it changes the masks.
        """
        points = points + 0.5  # pixel index -> pixel centre
        if pad:
            points = torch.cat([points, points.new_zeros(points.shape[0], 1, 2)], dim=1)
            labels = torch.cat([labels, labels.new_full((labels.shape[0], 1), LABEL_PAD)], dim=1)
        embedding = self.pe_layer.forward_with_coords(points, self.input_image_size)  # (B, N, C)
        labels = labels.unsqueeze(-1)  # (B, N, 1), broadcasts over channels
        # Padding carries no position at all: its token is the learned vector alone.
        embedding = torch.where(
            labels == LABEL_PAD,
            self.not_a_point_embed.weight.expand_as(embedding),
            embedding,
        )
        for label in range(self.num_point_embeddings):
            vector = self._label_vector(label)
            embedding = torch.where(labels == label, embedding + vector, embedding)
        return embedding

    def _label_vector(self, label: int) -> Tensor:  # (1, C)
        return cast(nn.Embedding, self.point_embeddings[label]).weight

    def _embed_boxes(self, boxes: Tensor) -> Tensor:
        """Encode (B, 4) boxes ``x0, y0, x1, y1`` into two corner tokens each: (B, 2, C).

        The SAM 2 predictors never take this path: they pass boxes as points labelled 2 and 3.
        """
        corners = (boxes + 0.5).reshape(-1, 2, 2)  # (B, 2 corners, xy)
        embedding = self.pe_layer.forward_with_coords(corners, self.input_image_size)
        offsets = torch.cat([self._label_vector(2), self._label_vector(3)])  # (2, C)
        return embedding + offsets

    def _embed_masks(self, masks: Tensor) -> Tensor:  # (B, 1, 4h, 4w) -> (B, C, h, w)
        """Downscale mask logits to the embedding grid."""
        return self.mask_downscaling(masks)

    @staticmethod
    def _batch_size(
        points: tuple[Tensor, Tensor] | None, boxes: Tensor | None, masks: Tensor | None
    ) -> int:
        """The prompt batch: from points, else boxes, else masks, else a single set."""
        if points is not None:
            return int(points[0].shape[0])
        if boxes is not None:
            return int(boxes.shape[0])
        if masks is not None:
            return int(masks.shape[0])
        return 1

    def forward(
        self,
        points: tuple[Tensor, Tensor] | None,
        boxes: Tensor | None,
        masks: Tensor | None,
    ) -> tuple[Tensor, Tensor]:  # sparse (B, N, C), dense (B, C, h, w)
        """Sparse tokens for points (then boxes) and a dense map for the mask prompt.

        ``points`` is ``(coords (B, N, 2), labels (B, N))``; ``boxes`` is (B, 4); ``masks`` is
        (B, 1, 4h, 4w) logits. With no points and no boxes the sparse output has N = 0.
        """
        if points is not None:
            coords, labels = points
            if coords.ndim != 3 or coords.shape[-1] != 2:
                raise ValueError(
                    f"point coords must have shape (B, N, 2), got {tuple(coords.shape)}"
                )
            if labels.shape != coords.shape[:2]:
                raise ValueError(
                    f"point labels must have shape {tuple(coords.shape[:2])} (B, N) to match "
                    f"the coords, got {tuple(labels.shape)}"
                )
        if masks is not None and tuple(masks.shape[-2:]) != self.mask_input_size:
            raise ValueError(
                f"mask prompts must be (B, 1, {self.mask_input_size[0]}, "
                f"{self.mask_input_size[1]}) logits, got {tuple(masks.shape)}; resize them first"
            )

        batch = self._batch_size(points, boxes, masks)
        weight = self.no_mask_embed.weight
        sparse = weight.new_empty((batch, 0, self.embed_dim))  # (B, 0, C)
        if points is not None:
            sparse = torch.cat([sparse, self._embed_points(*points, pad=boxes is None)], dim=1)
        if boxes is not None:
            sparse = torch.cat([sparse, self._embed_boxes(boxes)], dim=1)

        if masks is not None:
            dense = self._embed_masks(masks)
        else:
            h, w = self.image_embedding_size
            dense = weight.reshape(1, -1, 1, 1).expand(batch, -1, h, w)  # (B, C, h, w)
        return sparse, dense
