"""Client side of the oracle: starts ``runner.py`` once per test session and sends it requests.

The reference is installed by ``.ci/run`` into ``.oracle/site`` (override with
``NAPARI_SAM2_ORACLE_SITE``). It is also called ``sam2``, so it never shares a process with ours.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("runner.py")
INSTALL_HINT = (
    "the reference sam2==1.1.0 oracle is not installed; install it with\n"
    "  SAM2_BUILD_CUDA=0 pip install --target .oracle/site --no-deps --no-build-isolation "
    "sam2==1.1.0 torchvision==0.28.0 hydra-core==1.3.2 omegaconf==2.3.0 "
    "antlr4-python3-runtime==4.9.3 iopath==0.1.10 portalocker tqdm\n"
    "(or run `bash .ci/run`, which does this)"
)


class OracleError(RuntimeError):
    """The reference raised while running a probe; carries its traceback."""


def oracle_site() -> Path:
    return Path(os.environ.get("NAPARI_SAM2_ORACLE_SITE", REPO_ROOT / ".oracle" / "site"))


def oracle_available() -> bool:
    return (oracle_site() / "sam2" / "build_sam.py").is_file()


class Oracle:
    """One long-lived reference process; ``call`` is a synchronous request/response."""

    def __init__(self, site: Path | None = None, timeout: float = 1800.0) -> None:
        self.site = Path(site or oracle_site())
        self.timeout = timeout
        self._tmp = tempfile.TemporaryDirectory(prefix="sam2-oracle-")
        self._count = 0
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(self.site), env.get("PYTHONPATH", "")])
        env.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
        self._proc = subprocess.Popen(
            [sys.executable, "-u", str(RUNNER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,  # the reference's prints and warnings show in pytest's output
            text=True,
            env=env,
            cwd=str(RUNNER.parent),
        )
        hello = self._readline()
        if not hello.get("ready"):
            raise OracleError(f"oracle failed to start: {hello}")
        self.reference_path = hello["sam2"]

    def _readline(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(self._proc.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(self.timeout)
        if not result or not result[0]:
            code = self._proc.poll()
            raise OracleError(f"oracle process gave no answer (exit code {code}); see stderr above")
        return json.loads(result[0])

    def call(
        self, probe: str, inputs: Mapping[str, np.ndarray] | None = None, **params: Any
    ) -> dict[str, np.ndarray]:
        """Run ``probes/<module>.py:<function>`` in the reference process and return its arrays."""
        self._count += 1
        base = Path(self._tmp.name) / f"req{self._count}"
        in_path, out_path = f"{base}-in.npz", f"{base}-out.npz"
        np.savez(in_path, **{k: np.asarray(v) for k, v in (inputs or {}).items()})
        request = {"probe": probe, "inputs": in_path, "params": params, "output": out_path}
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        answer = self._readline()
        if not answer.get("ok"):
            raise OracleError(f"reference failed in {probe}:\n{answer.get('error')}")
        with np.load(out_path, allow_pickle=False) as data:
            outputs = {k: data[k] for k in data.files}
        os.remove(in_path)
        os.remove(out_path)
        return outputs

    def close(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._tmp.cleanup()
