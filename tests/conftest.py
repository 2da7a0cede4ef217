"""Shared fixtures: the reference oracle, scratch checkpoints, deterministic seeds."""

from __future__ import annotations

import os
from collections.abc import Iterator

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
