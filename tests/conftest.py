"""Shared fixtures: the reference oracle, scratch checkpoints, deterministic seeds."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.oracle.harness import INSTALL_HINT, Oracle, oracle_available


@pytest.fixture(scope="session")
def oracle() -> Iterator[Oracle]:
    """The reference sam2==1.1.0 in a subprocess; under CI a missing oracle fails, never skips."""
    if not oracle_available():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but " + INSTALL_HINT, pytrace=False)
        pytest.skip(INSTALL_HINT)
    instance = Oracle()
    yield instance
    instance.close()


class ReferenceCheckpoints:
    """Random-weight checkpoints written by the reference (cached for the session)."""

    def __init__(self, oracle: Oracle, folder: Path) -> None:
        self._oracle = oracle
        self._folder = folder
        self._paths: dict[tuple[str, int], Path] = {}

    def get(self, config: str, seed: int = 0) -> Path:
        """``{"model": state_dict}`` of a reference ``config`` model initialised with ``seed``."""
        key = (config, seed)
        if key not in self._paths:
            path = self._folder / f"{config.replace('/', '_')}-{seed}.pt"
            self._oracle.call(
                "build:save_random_checkpoint", config=config, path=str(path), seed=seed
            )
            self._paths[key] = path
        return self._paths[key]


@pytest.fixture(scope="session")
def reference_checkpoints(
    oracle: Oracle, tmp_path_factory: pytest.TempPathFactory
) -> ReferenceCheckpoints:
    """Checkpoints made by the reference, so parity tests start from its initialisation."""
    return ReferenceCheckpoints(oracle, tmp_path_factory.mktemp("reference-checkpoints"))
