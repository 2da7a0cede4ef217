"""ImageEmbedding: embeddings kept outside the predictor decode exactly like the set image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam2.build_sam import build_sam2
from sam2.image_embedding import ImageEmbedding
from sam2.sam2_image_predictor import SAM2ImagePredictor

CLICK = {"point_coords": np.array([[30.0, 20.0]]), "point_labels": np.array([1])}


def _tiny(image_size: int = 256, seed: int = 0) -> SAM2ImagePredictor:
    torch.manual_seed(seed)
    overrides = [f"++model.image_size={image_size}"]
    return SAM2ImagePredictor(build_sam2("tiny", device="cpu", hydra_overrides_extra=overrides))


@pytest.fixture(scope="module")
def predictor() -> SAM2ImagePredictor:
    """A random-weight tiny model at input size 256."""
    return _tiny()


def _images() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, size=(48, 64, 3), dtype=np.uint8)
    b = rng.integers(0, 4000, size=(56, 40), dtype=np.uint16)
    return a, b


def test_embedding_of_a_while_b_is_set_gives_a_exactly(predictor: SAM2ImagePredictor) -> None:
    """predict(embedding=A) with image B set equals predict() after set_image(A), bit for bit."""
    a, b = _images()
    predictor.set_image(a)
    expected = predictor.predict(**CLICK)
    embedding = predictor.embed(a)
    assert embedding.orig_hw == (48, 64)
    assert embedding.image_embed.shape == (1, 256, 16, 16)
    predictor.set_image(b)
    got = predictor.predict(**CLICK, embedding=embedding)
    for g, e in zip(got, expected):
        assert torch.equal(torch.from_numpy(g), torch.from_numpy(e))
    on_b = predictor.predict(**CLICK)
    assert on_b[0].shape[-2:] == (56, 40)  # the set image is untouched


def test_embedding_needs_no_set_image() -> None:
    """A fresh predictor decodes a given embedding without set_image."""
    predictor = _tiny()
    embedding = predictor.embed(_images()[0])
    masks, ious, low_res = predictor.predict(**CLICK, embedding=embedding)
    assert masks.shape == (3, 48, 64) and ious.shape == (3,) and low_res.shape == (3, 64, 64)


def test_embed_matches_set_image(predictor: SAM2ImagePredictor) -> None:
    """embed() computes what set_image() stores (same tensors' values)."""
    a, _ = _images()
    predictor.set_image(a)
    embedding = predictor.embed(a)
    assert torch.equal(embedding.image_embed, predictor.get_image_embedding())


def test_embedding_from_another_size_is_refused(predictor: SAM2ImagePredictor) -> None:
    """An embedding made at another model input size names both sizes."""
    a, _ = _images()
    other = _tiny(image_size=512).embed(a)
    with pytest.raises(ValueError, match="input size 512, but the predictor's model takes 256"):
        predictor.predict(**CLICK, embedding=other)


def test_embedding_from_another_model_is_refused(predictor: SAM2ImagePredictor) -> None:
    """An embedding made by another model of the same size is refused, not silently decoded."""
    a, _ = _images()
    other_model = _tiny(seed=1)
    other = other_model.embed(a)
    with pytest.raises(ValueError, match="computed by another model"):
        predictor.predict(**CLICK, embedding=other)
    del other_model
    with pytest.raises(ValueError, match="embed the image with this predictor"):
        predictor.predict(**CLICK, embedding=other)


def test_embedding_is_shared_by_predictors_of_one_model(predictor: SAM2ImagePredictor) -> None:
    """Predictors sharing a model (other options) accept each other's embeddings."""
    a, _ = _images()
    sibling = SAM2ImagePredictor(predictor.model, max_hole_area=10.0)
    masks, _, _ = sibling.predict(**CLICK, embedding=predictor.embed(a))
    assert masks.shape == (3, 48, 64)


def test_embedding_of_another_precision_is_refused(predictor: SAM2ImagePredictor) -> None:
    """A bf16 embedding is refused by an fp32 predictor of the same model."""
    a, _ = _images()
    bf16 = SAM2ImagePredictor(predictor.model, precision="bf16").embed(a)
    with pytest.raises(ValueError, match="precision='bf16'"):
        predictor.predict(**CLICK, embedding=bf16)


def test_not_an_embedding_is_a_type_error(predictor: SAM2ImagePredictor) -> None:
    """A tensor passed as embedding says what to pass instead."""
    with pytest.raises(TypeError, match=r"ImageEmbedding from predictor.embed\(image\)"):
        predictor.predict(**CLICK, embedding=torch.zeros(1, 256, 16, 16))  # type: ignore[arg-type]


def test_embedding_is_frozen(predictor: SAM2ImagePredictor) -> None:
    """Embeddings are values: their fields cannot be reassigned."""
    embedding = predictor.embed(_images()[0])
    assert isinstance(embedding, ImageEmbedding)
    with pytest.raises(AttributeError):
        embedding.orig_hw = (1, 1)  # type: ignore[misc]
