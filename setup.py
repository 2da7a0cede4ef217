"""Builds the optional connected-components extension ``sam2._ext`` (csrc/); never fails.

Everything else about the package lives in pyproject.toml. The extension needs torch at build
time, so it is built only where torch is importable then, e.g. with
``pip install --no-build-isolation -e .`` or ``python setup.py build_ext --inplace``; an
ordinary (isolated) build has no torch and installs the pure-Python package. Without the
extension, ``sam2`` falls back to scikit-image and says so in its log (csrc/README.md).

Environment: ``SAM2_BUILD_EXTENSION=0`` skips the extension; ``SAM2_BUILD_CUDA=1`` adds the CUDA
kernel even where no GPU is visible (nvcc and a CUDA build of torch needed), ``0`` never adds it.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from setuptools import setup

NAME = "sam2._ext"
CPP_SOURCES = ["csrc/connected_components.cpp"]
CUDA_SOURCES = ["csrc/connected_components_cuda.cu"]
# Listed as dependencies of every build so that source distributions carry all of csrc/.
DEPENDS = ["csrc/connected_components.h", *CUDA_SOURCES]


def _say(message: str) -> None:
    print(f"napari-sam2 setup: {message}", file=sys.stderr, flush=True)


def _host_flags() -> tuple[list[str], list[str]]:
    """Optimisation and OpenMP (at::parallel_for over the batch) flags for the C++ compiler."""
    if sys.platform == "win32":
        return ["/O2", "/openmp"], []
    if sys.platform == "darwin":  # Apple clang has no OpenMP: the batch runs serially
        return ["-O3", "-g0"], []
    return ["-O3", "-g0", "-fopenmp"], ["-fopenmp"]


def _has_cuda(extension: Any) -> bool:
    return any(source.endswith(".cu") for source in extension.sources)


def _want_cuda(torch: Any, cuda_home: str | None) -> bool:
    """Whether to compile the CUDA kernel too, with a printed reason when not."""
    setting = os.environ.get("SAM2_BUILD_CUDA", "")
    if setting == "0":
        return False
    if setting != "1" and not torch.cuda.is_available():
        _say("no CUDA device visible, building the CPU kernel only (SAM2_BUILD_CUDA=1 forces CUDA)")
        return False
    if torch.version.cuda is None or cuda_home is None:
        _say("CUDA kernel skipped: needs a CUDA build of torch and nvcc (CUDA_HOME)")
        return False
    return True


def _extension_setup() -> dict[str, Any]:
    """``ext_modules`` and ``cmdclass`` for setup(), or nothing when the extension is skipped."""
    if os.environ.get("SAM2_BUILD_EXTENSION", "") == "0":
        _say("SAM2_BUILD_EXTENSION=0, installing without the C++ extension")
        return {}
    try:
        import torch
        from torch.utils import cpp_extension
    except ImportError:
        _say(
            "torch is not importable at build time (isolated build), installing without the "
            "C++ extension; to build it: pip install --no-build-isolation -e ."
        )
        return {}

    cxx, link = _host_flags()
    cpu = cpp_extension.CppExtension(
        NAME, CPP_SOURCES, depends=DEPENDS, extra_compile_args={"cxx": cxx}, extra_link_args=link
    )
    extensions = [cpu]
    if _want_cuda(torch, cpp_extension.CUDA_HOME):
        try:
            cuda = cpp_extension.CUDAExtension(
                NAME,
                CPP_SOURCES + CUDA_SOURCES,
                depends=DEPENDS,
                extra_compile_args={"cxx": cxx, "nvcc": ["-O3"]},
                extra_link_args=link,
            )
        except Exception as error:  # e.g. CUDA libraries not found
            _say(f"WARNING: CUDA kernel skipped ({error})")
        else:
            extensions = [cuda, cpu]  # the CPU-only build is the fallback if CUDA fails
    for extension in extensions:
        extension.optional = True  # setuptools then tolerates its missing output

    class OptionalBuildExtension(cpp_extension.BuildExtension):
        """Builds the first extension of each name that compiles; a failure only warns."""

        _built: set[str]

        def build_extensions(self) -> None:
            self._built = set()
            try:
                super().build_extensions()
            except Exception as error:  # torch's pre-build checks, e.g. a CUDA version clash
                cpu_only = [e for e in self.extensions if not _has_cuda(e)]
                if len(cpu_only) == len(self.extensions):
                    _say(f"WARNING: C++ extension not built ({error}); installing without it")
                    return
                _say(f"WARNING: CUDA kernel not built ({error}); trying the CPU kernel alone")
                self.extensions = cpu_only
                self.build_extensions()

        def build_extension(self, ext: Any) -> None:
            if ext.name in self._built:
                return
            try:
                super().build_extension(ext)
            except Exception as error:
                kind = "CUDA+C++" if _has_cuda(ext) else "C++"
                _say(f"WARNING: {kind} build of {ext.name} failed ({error})")
                return
            self._built.add(ext.name)
            _say(f"built {ext.name} ({', '.join(ext.sources)})")

    use_ninja = cpp_extension.is_ninja_available()
    return {
        "ext_modules": extensions,
        "cmdclass": {"build_ext": OptionalBuildExtension.with_options(use_ninja=use_ninja)},
    }


setup(**_extension_setup())
