"""Prompt encoder: label semantics, padding, key layout; parity with the reference."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor

from sam2.modeling.prompt_encoder import PromptEncoder
from tests.oracle.harness import Oracle
from tests.oracle.modules import assert_matches, randomize_, reference_forward

KWARGS: dict[str, Any] = {
    "embed_dim": 256,
    "image_embedding_size": [64, 64],
    "input_image_size": [1024, 1024],
    "mask_in_chans": 16,
}
TARGET = "sam2.modeling.sam.prompt_encoder.PromptEncoder"

# (key, shape) of ``sam_prompt_encoder.*`` in every released checkpoint (spec Appendix A).
EXPECTED_SHAPES = {
    "pe_layer.positional_encoding_gaussian_matrix": [2, 128],
    **{f"point_embeddings.{i}.weight": [1, 256] for i in range(4)},
    "not_a_point_embed.weight": [1, 256],
    "mask_downscaling.0.weight": [4, 1, 2, 2],
    "mask_downscaling.0.bias": [4],
    "mask_downscaling.1.weight": [4],
    "mask_downscaling.1.bias": [4],
    "mask_downscaling.3.weight": [16, 4, 2, 2],
    "mask_downscaling.3.bias": [16],
    "mask_downscaling.4.weight": [16],
    "mask_downscaling.4.bias": [16],
    "mask_downscaling.6.weight": [256, 16, 1, 1],
    "mask_downscaling.6.bias": [256],
    "no_mask_embed.weight": [1, 256],
}

Prompts = dict[str, Tensor]


def _encoder(seed: int = 0) -> PromptEncoder:
    encoder = PromptEncoder(256, (64, 64), (1024, 1024), 16)
    randomize_(encoder, seed)
    return encoder.eval()


def _points(batch: int, labels: list[list[int]], seed: int) -> Prompts:
    gen = torch.Generator().manual_seed(seed)
    coords = torch.rand(batch, len(labels[0]), 2, generator=gen) * 1023
    return {"coords": coords, "labels": torch.tensor(labels, dtype=torch.int32)}


def _clicks() -> Prompts:
    return _points(1, [[1, 0, 1]], seed=1)


def _all_labels() -> Prompts:
    return _points(2, [[-1, 0, 1, 2, 3], [3, 2, 1, 0, -1]], seed=2)


def _box_as_points_and_clicks() -> Prompts:
    prompts = _points(1, [[2, 3, 1, 0]], seed=3)
    prompts["coords"][0, :2] = torch.tensor([[100.0, 200.0], [700.0, 900.0]])
    return prompts


def _box_tensor_and_clicks() -> Prompts:
    return {**_points(2, [[1], [0]], seed=4), "boxes": torch.tensor([[10.0, 20, 300, 400]] * 2)}


def _box_tensor_only() -> Prompts:
    return {"boxes": torch.tensor([[10.0, 20, 300, 400], [0, 0, 1023, 1023]])}


def _mask_and_clicks() -> Prompts:
    gen = torch.Generator().manual_seed(5)
    return {**_points(2, [[1], [1]], seed=5), "masks": torch.randn(2, 1, 256, 256, generator=gen)}


def _mask_only() -> Prompts:
    gen = torch.Generator().manual_seed(6)
    return {"masks": torch.randn(1, 1, 256, 256, generator=gen) * 8}


def _nothing() -> Prompts:
    return {}


def _batch_of_three() -> Prompts:
    return _points(3, [[1, -1, -1], [2, 3, 1], [0, 1, 0]], seed=7)


CASES: dict[str, Callable[[], Prompts]] = {
    "clicks": _clicks,
    "all_labels": _all_labels,
    "box_as_points": _box_as_points_and_clicks,
    "box_tensor_and_clicks": _box_tensor_and_clicks,
    "box_tensor_only": _box_tensor_only,
    "mask_and_clicks": _mask_and_clicks,
    "mask_only": _mask_only,
    "nothing": _nothing,
    "batch_of_three": _batch_of_three,
}


def _run(encoder: PromptEncoder, prompts: Prompts) -> tuple[Tensor, Tensor]:
    points = (prompts["coords"], prompts["labels"]) if "coords" in prompts else None
    with torch.no_grad():
        return encoder(points, prompts.get("boxes"), prompts.get("masks"))


def test_state_dict_matches_checkpoint_layout() -> None:
    """Keys and shapes equal the checkpoint's ``sam_prompt_encoder.*`` entries, nothing more."""
    got = {k: list(v.shape) for k, v in PromptEncoder(**KWARGS).state_dict().items()}
    assert got == EXPECTED_SHAPES


def test_padding_and_label_semantics() -> None:
    """Padding adds one token; label -1 is exactly not_a_point_embed; 0..3 add their vector."""
    encoder = _encoder()
    prompts = _all_labels()
    coords, labels = prompts["coords"], prompts["labels"]
    with torch.no_grad():
        padded = encoder._embed_points(coords, labels, pad=True)
        plain = encoder._embed_points(coords, labels, pad=False)
        pe = encoder.pe_layer.forward_with_coords(coords + 0.5, (1024, 1024))
    assert padded.shape == (2, 6, 256) and plain.shape == (2, 5, 256)
    # Six points and five are different matmul shapes: their kernels may round differently
    # (1.2e-7 apart on AVX2-only CPUs), so the real points agree within float tolerance only.
    torch.testing.assert_close(padded[:, :5], plain)
    pad_vector = encoder.not_a_point_embed.weight[0]
    assert torch.equal(padded[:, 5], pad_vector.expand(2, -1))
    for b in range(2):
        for n in range(5):
            label = int(labels[b, n])
            expected = pad_vector if label == -1 else pe[b, n] + encoder._label_vector(label)[0]
            torch.testing.assert_close(plain[b, n], expected)


def test_no_prompts_gives_empty_sparse_and_no_mask_embed() -> None:
    """Without any prompt: sparse is (1, 0, C) and dense is no_mask_embed on every cell."""
    encoder = _encoder()
    sparse, dense = _run(encoder, {})
    assert sparse.shape == (1, 0, 256)
    assert dense.shape == (1, 256, 64, 64)
    assert torch.equal(dense[0, :, 17, 42], encoder.no_mask_embed.weight[0])


@pytest.mark.parametrize(
    ("points", "masks", "message"),
    [
        ((torch.zeros(1, 2), torch.zeros(1, 2)), None, r"coords must have shape \(B, N, 2\)"),
        ((torch.zeros(1, 2, 2), torch.zeros(1, 3)), None, r"labels must have shape \(1, 2\)"),
        (None, torch.zeros(1, 1, 64, 64), r"mask prompts must be \(B, 1, 256, 256\)"),
    ],
)
def test_bad_prompt_shapes_raise(
    points: tuple[Tensor, Tensor] | None, masks: Tensor | None, message: str
) -> None:
    """Malformed prompts raise a ValueError naming the expected shape."""
    with pytest.raises(ValueError, match=message):
        _encoder()(points, None, masks)


@pytest.mark.oracle
@pytest.mark.parametrize("case", list(CASES))
def test_matches_reference(oracle: Oracle, case: str) -> None:
    """Sparse and dense embeddings equal the reference's for each kind of prompt."""
    encoder = _encoder(seed=len(case))
    prompts = CASES[case]()
    sd = {f"sd.{k}": v.numpy() for k, v in encoder.state_dict().items()}
    inputs = {**sd, **{k: v.numpy() for k, v in prompts.items()}}
    ref = oracle.call("sam_heads:prompt_encoder", inputs, kwargs=KWARGS)
    sparse, dense = _run(encoder, prompts)
    if sparse.numel() == 0:  # assert_matches needs at least one element
        assert sparse.shape == ref["sparse"].shape
    else:
        assert_matches(sparse, ref["sparse"])
    assert_matches(dense, ref["dense"])


@pytest.mark.oracle
def test_dense_pe_matches_reference(oracle: Oracle) -> None:
    """get_dense_pe() on the 64×64 grid equals the reference's."""
    encoder = _encoder(seed=3)
    ref = reference_forward(oracle, encoder, TARGET, KWARGS, {}, method="get_dense_pe")
    with torch.no_grad():
        assert_matches(encoder.get_dense_pe(), ref["out"])


@pytest.mark.oracle
def test_state_dict_matches_reference(oracle: Oracle) -> None:
    """A freshly built reference encoder has the same keys and shapes as ours."""
    ref = oracle.call(
        "sam_heads:state_dict_shapes",
        {},
        encoder_kwargs=KWARGS,
        decoder_kwargs={"transformer_dim": 256},
        transformer_kwargs={"depth": 1, "embedding_dim": 256, "num_heads": 8, "mlp_dim": 64},
    )
    shapes = json.loads(str(np.asarray(ref["shapes"])))
    prefix = "sam_prompt_encoder."
    assert {k[len(prefix) :]: v for k, v in shapes.items() if k.startswith(prefix)} == (
        EXPECTED_SHAPES
    )
