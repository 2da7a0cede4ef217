"""The embedding of one image: what a click needs from the image encoder, as a value.

An :class:`ImageEmbedding` is made by :meth:`SAM2ImagePredictor.embed` and passed back to
``predict(..., embedding=)``. It exists so that a caller can keep many embeddings (the plugin
caches one per slice of a stack) and click on any of them with one predictor, instead of
keeping one predictor, with its hidden embedding, per slice.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import Tensor

from sam2.configs import config_file_name
from sam2.modeling.sam2_model import ImageFeatures
from sam2.precision import Precision

if TYPE_CHECKING:
    from sam2.modeling.sam2_model import SAM2Model


@dataclass(frozen=True, eq=False)
class ImageEmbedding:
    """The encoder's output for one image (batch dim 1), ready for the SAM heads.

    ``features`` is the model's output as :meth:`SAM2Model.encode_image` gives it (high-res
    levels already projected for the decoder). ``image_embed`` is its s16 level as the decoder
    consumes it: ``no_mem_embed`` added (for models that add it), float32, channels-last.
    ``orig_hw`` is the image's (H, W) in pixels, where prompts live and masks are returned.
    The embedding remembers which model and precision made it, so that it is never decoded
    by another model (see :meth:`check_usable`).
    """

    features: ImageFeatures  # levels (1, 32, S/4, S/4), (1, 64, S/8, S/8), (1, 256, S/16, S/16)
    image_embed: Tensor  # (1, 256, S/16, S/16)
    orig_hw: tuple[int, int]
    image_size: int  # S, the model's input size
    precision: Precision
    model_ref: weakref.ReferenceType[SAM2Model]

    @property
    def high_res_features(self) -> list[Tensor]:  # (1, 32, S/4, S/4), (1, 64, S/8, S/8)
        return self.features.high_res_features

    def check_usable(self, model: SAM2Model, precision: Precision) -> None:
        """Raise ValueError unless this embedding was made by ``model`` in ``precision``."""
        if self.image_size != model.image_size:
            raise ValueError(
                f"this ImageEmbedding is for model input size {self.image_size}, but the "
                f"predictor's model takes {model.image_size}; embed the image with this "
                "predictor (predictor.embed(image))"
            )
        made_by = self.model_ref()
        if made_by is not model:
            other = "a model that no longer exists" if made_by is None else "another model"
            if made_by is not None and made_by.config != model.config:
                other = f"another model ({config_file_name(made_by.config)})"
            raise ValueError(
                f"this ImageEmbedding was computed by {other}, not by the predictor's model "
                f"({config_file_name(model.config)}); embed the image with this predictor "
                "(predictor.embed(image))"
            )
        if self.precision != precision:
            raise ValueError(
                f"this ImageEmbedding was computed with precision={self.precision!r} but the "
                f"predictor runs {precision!r}; embed the image with this predictor"
            )
