"""Mask decoder: prompt tokens + image embedding -> mask logits, IoU estimates, object score.

Learned output tokens ``[obj_score?, iou, mask_0 .. mask_M-1]`` are prepended to the prompt
tokens and refined by a :class:`~sam2.modeling.two_way_transformer.TwoWayTransformer`. Each mask
token then becomes, through its own hypernetwork MLP, a 1×1 filter over the upscaled image
embedding. Mask token 0 is the single-mask answer; tokens 1..M-1 the multimask answers.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sam2.modeling.common import MLP, LayerNorm2d


class MaskDecoder(nn.Module):
    """Predicts masks at 4× the embedding's resolution from image and prompt embeddings.

    ``conv_s0``/``conv_s1`` (with ``use_high_res_features``) belong to this module's weights but
    are applied by the model when it encodes the image, once per image rather than per prompt;
    :meth:`forward` receives the already-projected features.
    """

    def __init__(
        self,
        *,
        transformer_dim: int,
        transformer: nn.Module,
        num_multimask_outputs: int = 3,
        activation: type[nn.Module] = nn.GELU,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
        use_high_res_features: bool = False,
        iou_prediction_use_sigmoid: bool = False,
        dynamic_multimask_via_stability: bool = False,
        dynamic_multimask_stability_delta: float = 0.05,
        dynamic_multimask_stability_thresh: float = 0.98,
        pred_obj_scores: bool = False,
        pred_obj_scores_mlp: bool = False,
        use_multimask_token_for_obj_ptr: bool = False,
    ) -> None:
        super().__init__()
        dim = transformer_dim
        self.transformer_dim = dim
        self.transformer = transformer
        self.num_multimask_outputs = num_multimask_outputs
        self.num_mask_tokens = num_multimask_outputs + 1

        self.iou_token = nn.Embedding(1, dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, dim)
        self.pred_obj_scores = pred_obj_scores
        if pred_obj_scores:
            self.obj_score_token = nn.Embedding(1, dim)
        self.use_multimask_token_for_obj_ptr = use_multimask_token_for_obj_ptr

        # (B, C, h, w) -> (B, C/4, 2h, 2w) -> (B, C/8, 4h, 4w); 2 and 4 are parameter-free.
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(dim // 4),
            activation(),
            nn.ConvTranspose2d(dim // 4, dim // 8, kernel_size=2, stride=2),
            activation(),
        )
        self.use_high_res_features = use_high_res_features
        if use_high_res_features:
            self.conv_s0 = nn.Conv2d(dim, dim // 8, kernel_size=1, stride=1)  # stride-4 level
            self.conv_s1 = nn.Conv2d(dim, dim // 4, kernel_size=1, stride=1)  # stride-8 level

        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(dim, dim, dim // 8, 3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(
            dim,
            iou_head_hidden_dim,
            self.num_mask_tokens,
            iou_head_depth,
            sigmoid_output=iou_prediction_use_sigmoid,
        )
        if pred_obj_scores:
            self.pred_obj_score_head: nn.Module = (
                MLP(dim, dim, 1, 3) if pred_obj_scores_mlp else nn.Linear(dim, 1)
            )

        self.dynamic_multimask_via_stability = dynamic_multimask_via_stability
        self.dynamic_multimask_stability_delta = dynamic_multimask_stability_delta
        self.dynamic_multimask_stability_thresh = dynamic_multimask_stability_thresh

    def forward(
        self,
        image_embeddings: Tensor,
        image_pe: Tensor,
        sparse_prompt_embeddings: Tensor,
        dense_prompt_embeddings: Tensor,
        multimask_output: bool,
        repeat_image: bool,
        high_res_features: list[Tensor] | None = None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Masks (B, K, 4h, 4w), IoU (B, K), SAM output tokens (B, K', C), object score (B, 1).

        ``image_embeddings`` is (1 or B, C, h, w); with ``repeat_image`` it is repeated over the B
        prompt sets. ``image_pe`` is (1, C, h, w) from ``PromptEncoder.get_dense_pe()``; sparse
        and dense prompts come from the prompt encoder. ``high_res_features`` is
        ``[(·, C/8, 4h, 4w), (·, C/4, 2h, 2w)]``. K is 3 with ``multimask_output``, else 1.
        The returned token (for the object pointer) is token 0 unless ``multimask_output`` and
        ``use_multimask_token_for_obj_ptr``, even when the stability fallback chose another mask.
        """
        masks, iou_pred, mask_tokens_out, object_score_logits = self.predict_masks(
            image_embeddings=image_embeddings,
            image_pe=image_pe,
            sparse_prompt_embeddings=sparse_prompt_embeddings,
            dense_prompt_embeddings=dense_prompt_embeddings,
            repeat_image=repeat_image,
            high_res_features=high_res_features,
        )
        if multimask_output:
            masks, iou_pred = masks[:, 1:], iou_pred[:, 1:]
        elif self.dynamic_multimask_via_stability and not self.training:
            masks, iou_pred = self._dynamic_multimask_via_stability(masks, iou_pred)
        else:
            masks, iou_pred = masks[:, 0:1], iou_pred[:, 0:1]

        if multimask_output and self.use_multimask_token_for_obj_ptr:
            sam_tokens_out = mask_tokens_out[:, 1:]  # (B, M-1, C)
        else:
            sam_tokens_out = mask_tokens_out[:, 0:1]  # (B, 1, C)
        return masks, iou_pred, sam_tokens_out, object_score_logits

    def _output_tokens(self) -> Tensor:  # (T, C)
        parts = [self.iou_token.weight, self.mask_tokens.weight]
        if self.pred_obj_scores:
            parts.insert(0, self.obj_score_token.weight)
        return torch.cat(parts, dim=0)

    def predict_masks(
        self,
        image_embeddings: Tensor,
        image_pe: Tensor,
        sparse_prompt_embeddings: Tensor,
        dense_prompt_embeddings: Tensor,
        repeat_image: bool,
        high_res_features: list[Tensor] | None = None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """All M masks (B, M, 4h, 4w), IoU (B, M), mask tokens (B, M, C), object score (B, 1)."""
        batch = sparse_prompt_embeddings.shape[0]
        output_tokens = self._output_tokens().unsqueeze(0).expand(batch, -1, -1)  # (B, T, C)
        tokens = torch.cat([output_tokens, sparse_prompt_embeddings], dim=1)  # (B, T+N, C)

        if repeat_image and image_embeddings.shape[0] == 1:
            src = image_embeddings.expand(batch, -1, -1, -1)  # a view: the sum below copies
        elif repeat_image:
            src = torch.repeat_interleave(image_embeddings, batch, dim=0)
        elif image_embeddings.shape[0] != batch:
            raise ValueError(
                f"image_embeddings has batch {image_embeddings.shape[0]} but there are {batch} "
                "prompt sets; pass repeat_image=True to share one image across prompt sets"
            )
        else:
            src = image_embeddings
        src = src + dense_prompt_embeddings  # (B, C, h, w)
        if image_pe.shape[0] not in (1, batch):
            raise ValueError(
                "image_pe must have batch size 1 (from get_dense_pe()) or one per prompt set, "
                f"got shape {tuple(image_pe.shape)} for {batch} prompt sets"
            )
        pos_src = image_pe.expand(batch, -1, -1, -1)  # (B, C, h, w) view, no copy per click
        b, c, h, w = src.shape

        hs, src = self.transformer(src, pos_src, tokens)  # (B, T+N, C), (B, hw, C)
        first = 1 if self.pred_obj_scores else 0
        iou_token_out = hs[:, first]  # (B, C)
        mask_tokens_out = hs[:, first + 1 : first + 1 + self.num_mask_tokens]  # (B, M, C)

        src = src.transpose(1, 2).reshape(b, c, h, w)
        upscaled = self._upscale(src, high_res_features)  # (B, C/8, 4h, 4w)

        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)],
            dim=1,
        )  # (B, M, C/8)
        b, c, h, w = upscaled.shape
        masks = (hyper_in @ upscaled.reshape(b, c, h * w)).reshape(b, -1, h, w)  # (B, M, 4h, 4w)

        iou_pred = self.iou_prediction_head(iou_token_out)  # (B, M)
        if self.pred_obj_scores:
            object_score_logits = self.pred_obj_score_head(hs[:, 0])  # (B, 1)
        else:
            # Without a score head the object is taken as present (sigmoid(10) ≈ 1).
            object_score_logits = 10.0 * iou_pred.new_ones(iou_pred.shape[0], 1)
        return masks, iou_pred, mask_tokens_out, object_score_logits

    def _upscale(self, src: Tensor, high_res_features: list[Tensor] | None) -> Tensor:
        """(B, C, h, w) -> (B, C/8, 4h, 4w), adding the high-res features at 2× and 4×."""
        if not self.use_high_res_features:
            return self.output_upscaling(src)
        if high_res_features is None or len(high_res_features) != 2:
            raise ValueError(
                "this decoder was built with use_high_res_features=True: pass high_res_features="
                "[feat_s0 (B, C/8, 4h, 4w), feat_s1 (B, C/4, 2h, 2w)]"
            )
        deconv1, norm1, act1, deconv2, act2 = self.output_upscaling
        feat_s0, feat_s1 = high_res_features
        x = act1(norm1(deconv1(src) + feat_s1))  # (B, C/4, 2h, 2w)
        return act2(deconv2(x) + feat_s0)  # (B, C/8, 4h, 4w)

    def _get_stability_scores(self, mask_logits: Tensor) -> Tensor:  # (B, K, H, W) -> (B, K)
        """IoU of the mask thresholded at +delta and at -delta: 1 means crisp logits."""
        flat = mask_logits.flatten(-2)
        delta = self.dynamic_multimask_stability_delta
        inner = (flat > delta).sum(dim=-1).float()
        outer = (flat > -delta).sum(dim=-1).float()
        return torch.where(outer > 0, inner / outer, 1.0)

    def _dynamic_multimask_via_stability(
        self, all_mask_logits: Tensor, all_iou_scores: Tensor
    ) -> tuple[Tensor, Tensor]:  # (B, 1, H, W), (B, 1)
        """Token 0's mask where it is stable, else the best-IoU multimask mask, per prompt set.

        A single click is ambiguous, so token 0 may blur several objects; the multimask tokens
        then give a cleaner answer.
        """
        multi_logits = all_mask_logits[:, 1:]  # (B, M-1, H, W)
        multi_iou = all_iou_scores[:, 1:]  # (B, M-1)
        best = torch.argmax(multi_iou, dim=-1)  # first maximum wins ties
        rows = torch.arange(multi_iou.shape[0], device=multi_iou.device)
        best_logits = multi_logits[rows, best].unsqueeze(1)  # (B, 1, H, W)
        best_iou = multi_iou[rows, best].unsqueeze(1)  # (B, 1)

        single_logits = all_mask_logits[:, 0:1]
        single_iou = all_iou_scores[:, 0:1]
        stable = self._get_stability_scores(single_logits) >= (
            self.dynamic_multimask_stability_thresh
        )  # (B, 1)
        mask_out = torch.where(stable[..., None, None], single_logits, best_logits)
        iou_out = torch.where(stable, single_iou, best_iou)
        return mask_out, iou_out
