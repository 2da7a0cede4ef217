"""from_pretrained through huggingface_hub, against a local fake cache (no network)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from sam2.build_sam import build_model, build_sam2_hf
from sam2.configs import CONFIGS
from sam2.hub import HF_MODEL_ID_TO_FILENAMES, CheckpointDownloadError, download_checkpoint
from sam2.sam2_image_predictor import SAM2ImagePredictor

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _fake_hub_cache(root: Path, model_id: str, state: dict[str, torch.Tensor]) -> Path:
    """Lay out a huggingface_hub cache holding one checkpoint file, as a download would."""
    _, filename = HF_MODEL_ID_TO_FILENAMES[model_id]
    repo = root / f"models--{model_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    torch.save({"model": state}, snapshot / filename)
    return root


@pytest.fixture(scope="module")
def tiny_state() -> dict[str, torch.Tensor]:
    return build_model(CONFIGS["sam2.1_hiera_t"]).state_dict()


def test_every_config_has_a_model_id() -> None:
    """The hub table covers exactly the eight released configs."""
    names = {
        cfg.rsplit("/", 1)[-1].removesuffix(".yaml") for cfg, _ in HF_MODEL_ID_TO_FILENAMES.values()
    }
    assert names == set(CONFIGS)


def test_from_pretrained_uses_the_cache(
    tmp_path: Path, tiny_state: dict[str, torch.Tensor]
) -> None:
    """from_pretrained finds the cached file offline and loads its weights."""
    cache = _fake_hub_cache(tmp_path, "facebook/sam2.1-hiera-tiny", tiny_state)
    predictor = SAM2ImagePredictor.from_pretrained(
        "facebook/sam2.1-hiera-tiny",
        cache_dir=cache,
        local_files_only=True,
        device="cpu",
        max_hole_area=4,
    )
    assert torch.equal(predictor.model.no_mem_embed, tiny_state["no_mem_embed"])
    assert predictor.max_hole_area == 4


def test_offline_without_cache_says_what_to_download(tmp_path: Path) -> None:
    """With nothing cached and no network, the error names the file, the cache and the URL."""
    with pytest.raises(CheckpointDownloadError) as info:
        download_checkpoint(
            "facebook/sam2.1-hiera-small", cache_dir=tmp_path, local_files_only=True
        )
    message = str(info.value)
    assert "sam2.1_hiera_small.pt" in message and str(tmp_path) in message
    assert "dl.fbaipublicfiles.com" in message


def test_unknown_model_id() -> None:
    """An unknown id lists the known ones."""
    with pytest.raises(ValueError, match=r"facebook/sam2\.1-hiera-tiny"):
        build_sam2_hf("facebook/sam3-hiera-tiny")


def test_hf_hub_offline_environment(tmp_path: Path, tiny_state: dict[str, torch.Tensor]) -> None:
    """With HF_HUB_OFFLINE=1 (set before huggingface_hub is imported) the cached model loads."""
    cache = _fake_hub_cache(tmp_path / "hub", "facebook/sam2.1-hiera-tiny", tiny_state)
    script = textwrap.dedent(
        """
        import torch
        from sam2.sam2_image_predictor import SAM2ImagePredictor
        p = SAM2ImagePredictor.from_pretrained("facebook/sam2.1-hiera-tiny", device="cpu")
        print("checksum", float(p.model.no_mem_embed.sum()))
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert f"checksum {float(tiny_state['no_mem_embed'].sum())}" in result.stdout


def test_hub_model_ids_sam21_first() -> None:
    """All eight released ids, the four SAM 2.1 ones before the four SAM 2 ones."""
    from sam2.hub import hub_model_ids

    ids = hub_model_ids()
    assert sorted(ids) == sorted(HF_MODEL_ID_TO_FILENAMES)
    assert [("sam2.1" in i) for i in ids] == [True] * 4 + [False] * 4
    assert ids[0] == "facebook/sam2.1-hiera-tiny"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("sam2.1_hiera_tiny.pt", "configs/sam2.1/sam2.1_hiera_t.yaml"),
        ("/models/sam2_hiera_large.pt", "configs/sam2/sam2_hiera_l.yaml"),
        (Path("ckpt") / "sam2.1_hiera_base_plus.pth", "configs/sam2.1/sam2.1_hiera_b+.yaml"),
        ("sam2_hiera_small.pt", "configs/sam2/sam2_hiera_s.yaml"),
        ("my_finetune.pt", None),
        ("sam2.1_hiera_tiny_finetuned.pt", None),
    ],
)
def test_config_for_checkpoint(path: str | Path, expected: str | None) -> None:
    """A released checkpoint's file name gives its config wherever it lies; others give None."""
    from sam2.hub import config_for_checkpoint

    assert config_for_checkpoint(path) == expected
