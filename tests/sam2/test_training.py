"""Training: losses against hand-computed values, what trains, LoRA, checkpoints, bad input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from sam2.build_sam import build_model, build_sam2
from sam2.checkpoint import CheckpointError
from sam2.configs import SAM2Config, resolve_config
from sam2.modeling.sam2_model import SAM2Model
from sam2.synthetic import make_image, make_timelapse
from sam2.training.augment import NO_AUGMENT
from sam2.training.data import LabeledStack, StackDataset
from sam2.training.losses import (
    dice_per_mask,
    focal_per_mask,
    sigmoid_focal_loss,
    step_loss,
)
from sam2.training.prompts import PromptOptions
from sam2.training.trainable import add_lora, merge_lora
from sam2.training.trainer import Trainer, TrainingOptions, save_weights

SIZE = 128  # the demo architecture at a smaller input: a training step takes ~0.2 s


@pytest.fixture(scope="module")
def config() -> SAM2Config:
    return resolve_config("demo-cells").replace(image_size=SIZE)


def _model(config: SAM2Config, seed: int = 0) -> SAM2Model:
    torch.manual_seed(seed)
    return build_model(config)


@pytest.fixture(scope="module")
def dataset() -> StackDataset:
    data = make_timelapse(n_frames=6, shape=(128, 128), n_cells=4, division_frames=(), seed=7)
    return StackDataset([LabeledStack(data.image, data.labels)], SIZE, NO_AUGMENT)


def _options(**changes: object) -> TrainingOptions:
    base: dict[str, object] = {
        "lr": 1e-3,
        "steps": 20,
        "warmup_steps": 1,
        "images_per_batch": 1,
        "objects_per_image": 2,
        "video_fraction": 0.0,
        "prompts": PromptOptions(num_correction_points=1),
    }
    return TrainingOptions(**{**base, **changes})  # type: ignore[arg-type]


# --- losses ---------------------------------------------------------------------------------


def test_focal_loss_by_hand() -> None:
    """One positive pixel at logit 0 and one negative at logit 2 (alpha 0.25, gamma 2)."""
    logits = torch.tensor([0.0, 2.0])
    targets = torch.tensor([1.0, 0.0])
    p = 1 / (1 + math.exp(-2.0))
    expected = [0.25 * math.log(2) * 0.5**2, 0.75 * -math.log(1 - p) * p**2]
    got = sigmoid_focal_loss(logits, targets, 0.25, 2.0)
    torch.testing.assert_close(got, torch.tensor(expected))
    bce = sigmoid_focal_loss(logits, targets, -1.0, 0.0)
    torch.testing.assert_close(bce, torch.tensor([math.log(2), -math.log(1 - p)]))


def test_dice_loss_by_hand() -> None:
    """2x1 mask, probabilities 0.5 and sigmoid(2), target [1, 0]: 1 - (2·0.5 + 1)/(0.5+p+1+1)."""
    logits = torch.tensor([0.0, 2.0]).view(1, 1, 1, 2)
    targets = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2)
    p = 1 / (1 + math.exp(-2.0))
    expected = 1 - (2 * 0.5 + 1) / (0.5 + p + 1 + 1)
    torch.testing.assert_close(dice_per_mask(logits, targets), torch.tensor([[expected]]))


def test_step_loss_uses_the_best_output_and_zeroes_absent_objects() -> None:
    """Of M=2 outputs only the lower-loss one counts for focal/dice; absent: object score only."""
    target = torch.zeros(2, 1, 4, 4)
    target[0, 0, :2] = 1  # object 0 present, object 1 absent
    good = (target[0] * 20 - 10)[None]  # matches object 0
    bad = -good
    masks = torch.cat([torch.stack([bad[0, 0], good[0, 0]])[None], torch.full((1, 2, 4, 4), -10.0)])
    ious = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    scores = torch.tensor([[5.0], [-5.0]])
    terms = step_loss(masks, ious, scores, target, num_objects=2)
    focal_good = float(focal_per_mask(good, target[:1], 0.25, 2.0))
    dice_good = float(dice_per_mask(good, target[:1]))
    assert float(terms.mask) == pytest.approx(focal_good / 2, rel=1e-5)
    assert float(terms.dice) == pytest.approx(dice_good / 2, rel=1e-5)
    bce = float(sigmoid_focal_loss(scores, torch.tensor([[1.0], [0.0]]), -1.0, 0.0).sum()) / 2
    assert float(terms.object_score) == pytest.approx(bce, rel=1e-5)
    expected_total = 20 * float(terms.mask) + float(terms.dice) + float(terms.iou) + bce
    assert float(terms.total) == pytest.approx(expected_total, rel=1e-5)


# --- training -------------------------------------------------------------------------------


def test_loss_falls_over_a_few_steps(config: SAM2Config, dataset: StackDataset) -> None:
    """From random weights the loss of the first steps is well above that of the last ones."""
    trainer = Trainer(_model(config), dataset, _options(steps=24))
    losses = [log.loss["total"] for log in trainer.run()]
    assert np.mean(losses[-4:]) < 0.7 * np.mean(losses[:4]), losses


@pytest.mark.parametrize(
    ("choice", "frozen_prefix"),
    [("decoder", "image_encoder."), ("no_image_encoder", "image_encoder."), ("lora", "")],
)
def test_frozen_parameters_stay_bit_identical(
    config: SAM2Config, dataset: StackDataset, choice: str, frozen_prefix: str
) -> None:
    """Only what ``trainable`` names changes; everything frozen is untouched, bit for bit."""
    model = _model(config)
    trainer = Trainer(model, dataset, _options(trainable=choice, steps=3, video_fraction=0.5))
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    list(trainer.run())
    trained = set(trainer.trained)
    assert trained
    for name, param in model.named_parameters():
        if name in trained:
            continue
        assert torch.equal(param, before[name]), name
        assert name.startswith(frozen_prefix) or choice != "no_image_encoder"
    changed = [n for n in trained if not torch.equal(dict(model.named_parameters())[n], before[n])]
    assert changed, "no trainable parameter changed"
    if choice == "decoder":
        assert all(n.startswith("sam_mask_decoder.") for n in trained)
    if choice == "lora":
        assert all(n.endswith(("lora_A", "lora_B")) for n in trained)


def test_lora_merges_into_plain_weights_that_load_strict(config: SAM2Config) -> None:
    """Merged adapters give the adapted model's outputs with exactly the official keys."""
    model = _model(config).eval()
    plain_keys = set(model.state_dict())
    add_lora(model, rank=2, alpha=4.0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("lora_B"):
                param.normal_(0, 0.05)
    image = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        adapted = model.encode_image(image).vision_features
        merged = merge_lora(model)
        again = merged.encode_image(image).vision_features
    torch.testing.assert_close(again, adapted, atol=1e-4, rtol=1e-4)
    assert set(merged.state_dict()) == plain_keys
    fresh = _model(config, seed=1)
    fresh.load_state_dict(merged.state_dict(), strict=True)


def test_checkpoint_loads_strict_and_resumes_exactly(
    config: SAM2Config, dataset: StackDataset, tmp_path: Path
) -> None:
    """Weights load strict through build_sam2 with the saved config; resume continues exactly."""
    options = _options(steps=4, video_fraction=0.5)
    first = Trainer(_model(config), dataset, options)
    for _ in range(2):
        first.train_step()
    weights = first.save(tmp_path)
    expected = first.train_step().loss["total"]

    loaded = build_sam2(str(weights.with_suffix(".json")), str(weights), device="cpu")
    resumed = Trainer(_model(config, seed=5), dataset, options)
    resumed.resume(tmp_path)
    assert resumed.step == 2
    for key, value in resumed.model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, atol=0, rtol=0)
    assert resumed.train_step().loss["total"] == pytest.approx(expected, rel=1e-6)


# --- bad input ------------------------------------------------------------------------------


def test_bad_training_input_is_refused(config: SAM2Config, dataset: StackDataset) -> None:
    image, labels = make_image(shape=(64, 64))
    with pytest.raises(ValueError, match="do not match the image"):
        LabeledStack(image, labels[:32])
    with pytest.raises(ValueError, match="labels are empty"):
        LabeledStack(image, np.zeros_like(labels))
    single = StackDataset([LabeledStack(image, labels)], SIZE)
    with pytest.raises(ValueError, match="a single frame cannot train the video memory"):
        single.clip_batch(np.random.default_rng(0), 1, 4, 2)
    with pytest.raises(ValueError, match="image_size=128"):
        Trainer(_model(config), StackDataset([LabeledStack(image, labels)], 256), _options())
    with pytest.raises(ValueError, match="video_fraction"):
        _options(video_fraction=1.5)


def test_weights_of_another_config_are_refused(config: SAM2Config, tmp_path: Path) -> None:
    """A checkpoint saved for one config does not load silently into another."""
    path = save_weights(_model(config), tmp_path / "small.safetensors")
    with pytest.raises(CheckpointError):
        build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", str(path), device="cpu")


def test_video_training_after_a_video_run_of_the_same_model(
    config: SAM2Config, dataset: StackDataset
) -> None:
    """Tracking first (inference mode) must not poison what training reuses (the RoPE table)."""
    from sam2.sam2_video_predictor import SAM2VideoPredictor

    model = _model(config)
    predictor = SAM2VideoPredictor(model)
    state = predictor.init_state(dataset.stacks[0].unit)
    predictor.add_new_points_or_box(state, 0, 1, points=[[64, 64]], labels=[1])
    assert len(list(predictor.propagate_in_video(state))) == 6
    # 6-frame clips: some frames are always tracked through memory attention (its RoPE).
    options = _options(steps=2, video_fraction=1.0, clip_frames=6)
    logs = list(Trainer(model, dataset, options).run())
    assert [log.kind for log in logs] == ["video", "video"]
    assert all(math.isfinite(log.loss["total"]) for log in logs)
