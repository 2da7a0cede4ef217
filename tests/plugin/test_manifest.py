"""The npe2 manifest: valid, importable, shipped in the wheel, and found by napari."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from npe2 import PluginManifest

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_manifest_validates_and_imports() -> None:
    """Every python_name in the top-level napari.yaml resolves to a callable."""
    manifest = PluginManifest.from_file(REPO_ROOT / "napari.yaml")
    assert manifest.name == "napari-sam2"
    manifest.validate_imports()


def test_installed_distribution_exposes_manifest() -> None:
    """The napari.manifest entry point of the installed distribution yields our manifest."""
    manifest = PluginManifest.from_distribution("napari-sam2")
    top_level = PluginManifest.from_file(REPO_ROOT / "napari.yaml")
    assert manifest.model_dump() == top_level.model_dump()
    from importlib.metadata import distribution

    classifiers = distribution("napari-sam2").metadata.get_all("Classifier") or []
    assert "Framework :: napari" in classifiers


def test_wheel_ships_both_packages_and_manifest(tmp_path: Path) -> None:
    """A wheel holds sam2, napari_sam2 and napari_sam2/napari.yaml equal to the top-level one."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO_ROOT),
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("napari_sam2-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert "sam2/__init__.py" in names
        assert "napari_sam2/__init__.py" in names
        assert zf.read("napari_sam2/napari.yaml") == (REPO_ROOT / "napari.yaml").read_bytes()
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "napari_sam2:napari.yaml" in zf.read(entry_points).decode()
        assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)


@pytest.mark.gui
def test_napari_lists_plugin_and_opens_sample(make_napari_viewer) -> None:  # type: ignore[no-untyped-def]
    """napari lists napari-sam2, and its sample time-lapse opens as a 16-bit image."""
    from napari.plugins import _initialize_plugins
    from npe2 import PluginManager

    _initialize_plugins()
    names = {m.name for m in PluginManager.instance().iter_manifests()}
    assert "napari-sam2" in names
    viewer = make_napari_viewer()
    layers = viewer.open_sample("napari-sam2", "cells_timelapse")
    assert layers[0].data.dtype == np.uint16
    assert layers[0].data.ndim == 3
