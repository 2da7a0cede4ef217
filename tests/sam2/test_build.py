"""Configs, builders and checkpoints: every released model has the reference's key tree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sam2.build_sam import build_model, build_sam2
from sam2.checkpoint import CheckpointError, read_state_dict
from sam2.configs import CONFIGS, config_file_name, parse_overrides, resolve_config
from tests.conftest import ReferenceCheckpoints
from tests.oracle.harness import Oracle

ALL_CONFIGS = sorted(config_file_name(c) for c in CONFIGS.values())
PARAM_COUNTS = {
    "sam2.1_hiera_t": 38_962_498,
    "sam2.1_hiera_l": 224_446_642,
    "sam2_hiera_t": 38_945_986,
}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("configs/sam2.1/sam2.1_hiera_t.yaml", "sam2.1_hiera_t"),
        ("sam2_hiera_l.yaml", "sam2_hiera_l"),
        ("configs/sam2/sam2_hiera_b+.yaml", "sam2_hiera_b+"),
        ("sam2.1_hiera_s", "sam2.1_hiera_s"),
        ("sam2.1_hiera_base_plus", "sam2.1_hiera_b+"),
        ("sam2.1-hiera-large", "sam2.1_hiera_l"),
        ("tiny", "sam2.1_hiera_t"),
    ],
)
def test_resolve_config_accepts_familiar_names(name: str, expected: str) -> None:
    """Reference YAML paths, legacy aliases, short names and sizes resolve to one config."""
    assert resolve_config(name).name == expected


def test_resolve_config_rejects_unknown_names() -> None:
    """An unknown name lists the accepted ones."""
    with pytest.raises(ValueError, match=r"configs/sam2\.1/sam2\.1_hiera_t\.yaml"):
        resolve_config("sam3_hiera_t")


def test_overrides_are_parsed_and_checked() -> None:
    """'++model.field=value' strings set typed fields; unknown fields are refused."""
    assert parse_overrides(["++model.image_size=512", "model.non_overlap_masks=true"]) == {
        "image_size": 512,
        "non_overlap_masks": True,
    }
    assert (
        build_sam2(
            "tiny", device="cpu", hydra_overrides_extra=["++model.image_size=256"]
        ).image_size
        == 256
    )
    with pytest.raises(ValueError, match="not SAM 2 model fields"):
        build_sam2("tiny", device="cpu", hydra_overrides_extra=["++model.no_such_flag=1"])
    with pytest.raises(ValueError, match="cannot read override"):
        parse_overrides(["image_size=512"])


@pytest.mark.parametrize("name", sorted(PARAM_COUNTS))
def test_parameter_counts(name: str) -> None:
    """Parameter counts equal the released models' (tiny 2.1: 38,962,498)."""
    model = build_model(CONFIGS[name])
    assert sum(p.numel() for p in model.parameters()) == PARAM_COUNTS[name]


@pytest.mark.oracle
@pytest.mark.parametrize("config", ALL_CONFIGS)
def test_state_dict_matches_reference(oracle: Oracle, config: str) -> None:
    """Our model has exactly the reference's state-dict keys, shapes and parameter count."""
    spec = oracle.call("build:state_dict_spec", config=config)
    reference = dict(zip((str(n) for n in spec["names"]), json.loads(str(spec["shapes"]))))
    model = build_model(resolve_config(config))
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert sorted(set(ours) ^ set(reference)) == []
    assert ours == reference
    assert sum(p.numel() for p in model.parameters()) == int(spec["param_count"])


@pytest.mark.oracle
@pytest.mark.parametrize("config", ALL_CONFIGS)
def test_checkpoints_load_both_ways(
    oracle: Oracle, reference_checkpoints: ReferenceCheckpoints, config: str, tmp_path: Path
) -> None:
    """A reference checkpoint loads strictly into ours, and ours into the reference, unchanged."""
    ref_path = reference_checkpoints.get(config)
    model = build_sam2(config, ckpt_path=ref_path, device="cpu")
    reference_sd = read_state_dict(ref_path)
    for key, value in model.state_dict().items():
        assert torch.equal(value, reference_sd[key]), key
    del reference_sd
    ours = build_model(resolve_config(config))
    ours_path = tmp_path / "ours.pt"
    torch.save({"model": ours.state_dict()}, ours_path)
    checksum = sum(float(t.double().sum()) for t in ours.state_dict().values())
    loaded = oracle.call("build:load_checkpoint", config=config, path=str(ours_path))
    assert float(loaded["checksum"]) == pytest.approx(checksum, rel=1e-9)


def _save(tmp_path: Path, state: dict[str, torch.Tensor], name: str = "ckpt.pt") -> Path:
    path = tmp_path / name
    torch.save({"model": state}, path)
    return path


def test_sam21_checkpoint_in_sam20_config_is_explained(tmp_path: Path) -> None:
    """Loading 2.1 weights with a 2.0 config names the three extra keys and the fix."""
    path = _save(tmp_path, build_model(CONFIGS["sam2.1_hiera_t"]).state_dict())
    with pytest.raises(
        CheckpointError, match=r"(?s)3 unexpected keys.*SAM 2.1 but the config is SAM 2.0"
    ):
        build_sam2("sam2_hiera_t", ckpt_path=path, device="cpu")


def test_wrong_size_checkpoint_is_explained(tmp_path: Path) -> None:
    """Loading tiny weights into a small config says the checkpoint is the tiny model."""
    path = _save(tmp_path, build_model(CONFIGS["sam2.1_hiera_t"]).state_dict())
    with pytest.raises(CheckpointError, match="trunk is the tiny model"):
        build_sam2("sam2.1_hiera_s", ckpt_path=path, device="cpu")


def test_unreadable_and_missing_checkpoints(tmp_path: Path) -> None:
    """A missing file, a non-checkpoint file and a pickled object give CheckpointError."""
    with pytest.raises(CheckpointError, match="not found"):
        read_state_dict(tmp_path / "absent.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="weights_only=True"):
        read_state_dict(junk)
    weird = tmp_path / "weird.pt"
    torch.save({"model": {"a": 1}}, weird)
    with pytest.raises(CheckpointError, match="does not hold a state dict"):
        read_state_dict(weird)


def test_code_carrying_checkpoint_is_refused(tmp_path: Path) -> None:
    """A checkpoint holding an arbitrary Python object is not unpickled, and the error says
    so, naming the object, instead of relaying torch's advice to pass weights_only=False."""
    evil = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.zeros(1)}, "hook": Path("/")}, evil)
    with pytest.raises(CheckpointError, match=r"refused: .* Python object pathlib\.") as caught:
        read_state_dict(evil)
    assert "weights_only=False" not in str(caught.value)


@pytest.mark.parametrize("cut", ["last bytes", "header only", "empty"])
def test_damaged_safetensors_is_a_checkpoint_error(tmp_path: Path, cut: str) -> None:
    """A truncated .safetensors file raises CheckpointError naming the file and the fix,
    not safetensors' own SafetensorError (which no caller catches)."""
    from safetensors.torch import save_file

    path = tmp_path / "model.safetensors"
    save_file({"w": torch.zeros(64, 64)}, str(path))
    data = path.read_bytes()
    path.write_bytes({"last bytes": data[:-100], "header only": data[:20], "empty": b""}[cut])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: .*download, copy or export"):
        read_state_dict(path)


def test_safetensors_checkpoint_loads(tmp_path: Path) -> None:
    """A .safetensors file with the same tensors loads like the .pt file."""
    from safetensors.torch import save_file

    state = build_model(CONFIGS["sam2.1_hiera_t"]).state_dict()
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    model = build_sam2("sam2.1_hiera_t", ckpt_path=path, device="cpu")
    assert torch.equal(model.no_mem_embed, state["no_mem_embed"])


def test_unavailable_device_falls_back_to_cpu() -> None:
    """Asking for CUDA on a machine without it warns and builds on the CPU."""
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.warns(UserWarning, match="cuda is not available"):
        model = build_sam2("tiny", device="cuda")
    assert model.device.type == "cpu"


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_compiled_image_encoder_matches_eager() -> None:
    """compile_image_encoder=True compiles in place: same keys, same features as eager."""
    overrides = ["++model.image_size=256"]
    compiled = build_sam2(
        "tiny",
        device="cpu",
        hydra_overrides_extra=[*overrides, "++model.compile_image_encoder=true"],
    )
    eager = build_sam2("tiny", device="cpu", hydra_overrides_extra=overrides)
    eager.load_state_dict(compiled.state_dict(), strict=True)
    image = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        torch.testing.assert_close(
            compiled.encode_image(image).vision_features,
            eager.encode_image(image).vision_features,
            atol=1e-4,
            rtol=1e-4,
        )
