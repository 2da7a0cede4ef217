"""The oracle harness itself: the reference builds all 8 released configs in its own process."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.oracle.harness import Oracle, OracleError

REFERENCE_CONFIGS = {
    "configs/sam2/sam2_hiera_t.yaml": (468, 38_945_986),
    "configs/sam2/sam2_hiera_s.yaml": (516, 46_043_842),
    "configs/sam2/sam2_hiera_b+.yaml": (612, 80_833_666),
    "configs/sam2/sam2_hiera_l.yaml": (900, 224_430_130),
    "configs/sam2.1/sam2.1_hiera_t.yaml": (471, 38_962_498),
    "configs/sam2.1/sam2.1_hiera_s.yaml": (519, 46_060_354),
    "configs/sam2.1/sam2.1_hiera_b+.yaml": (615, 80_850_178),
    "configs/sam2.1/sam2.1_hiera_l.yaml": (903, 224_446_642),
}
SAM21_ONLY_KEYS = {"no_obj_embed_spatial", "obj_ptr_tpos_proj.weight", "obj_ptr_tpos_proj.bias"}

pytestmark = pytest.mark.oracle


def test_oracle_is_the_reference(oracle: Oracle) -> None:
    """The subprocess imports the reference sam2 from the oracle directory, not ours."""
    assert ".oracle" in oracle.reference_path or "oracle" in oracle.reference_path
    assert "/sam2/__init__.py" in oracle.reference_path


@pytest.mark.parametrize("config", sorted(REFERENCE_CONFIGS))
def test_reference_builds_released_config(oracle: Oracle, config: str) -> None:
    """Each released config builds in the reference with the documented key and parameter counts."""
    spec = oracle.call("build:state_dict_spec", config=config)
    names = [str(n) for n in spec["names"]]
    shapes = json.loads(str(spec["shapes"]))
    n_keys, n_params = REFERENCE_CONFIGS[config]
    assert len(names) == len(shapes) == n_keys
    assert int(spec["param_count"]) == n_params
    has_21_keys = SAM21_ONLY_KEYS <= set(names)
    assert has_21_keys == ("sam2.1" in config)
    assert dict(zip(names, shapes))[
        "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"
    ] == [2, 128]


def test_oracle_reports_reference_errors(oracle: Oracle) -> None:
    """A failure inside the reference comes back as OracleError with its traceback."""
    with pytest.raises(OracleError, match="configs/does_not_exist"):
        oracle.call("build:state_dict_spec", config="configs/does_not_exist.yaml")
    # the process survives a failed request
    assert oracle.call("build:state_dict_spec", config="configs/sam2.1/sam2.1_hiera_t.yaml")[
        "param_count"
    ] == np.array(38_962_498)
