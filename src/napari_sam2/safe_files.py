"""File handling for the command line that never loses what the user made.

Three promises, each kept here so that ``napari-sam2 track`` and ``segment`` keep them the same
way: an input is opened read-only (:func:`read_stack`, :func:`read_array`), and a damaged
multi-page TIFF is refused rather than read as its first pages; no output may be, or link to,
an input (:func:`refuse_outputs_over_inputs`, :func:`check_new_file`); and an output only gets
its final name once it is complete (:func:`publish`, :func:`move_into_place`), so a file under
a result's name is always a whole result and a stopped run's frames sit under ``*.partial.*``
names that say so (:func:`partial_name`, :func:`keep_partial_file`).
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "RunFailedError",
    "check_new_file",
    "keep_partial_file",
    "move_into_place",
    "partial_name",
    "publish",
    "read_array",
    "read_stack",
    "read_tiff",
    "refuse_outputs_over_inputs",
    "remove_path",
    "running_name",
    "same_path",
    "saying_kept",
    "write_csv",
]


# ---------------------------------------------------------------------------------- reading
def read_stack(path: str | os.PathLike[str], channel: int | None = None) -> Any:
    """A (T, Y, X) array from a .tif/.tiff, .npy or .zarr, opened read-only (memory-mapped
    where possible); a damaged multi-page TIFF is refused, never read as its first pages.

    A 2D image is a one-frame stack; of a (T, C, Y, X) stack, ``channel`` picks one (a single
    channel needs no choice).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    suffix = path.suffix.lower()
    array: Any
    if suffix in (".tif", ".tiff", ".npy"):
        array = read_array(path)
    elif suffix == ".zarr" or (path / ".zarray").exists() or (path / "zarr.json").exists():
        import zarr

        array = zarr.open(str(path), mode="r")
        if not hasattr(array, "shape"):
            raise ValueError(
                f"{path} is a zarr group, not an array; name the array inside it, e.g. {path}/0"
            )
    else:
        raise ValueError(
            f"unsupported file type {suffix or '(none)'!r} for {path.name}: expected a "
            ".tif/.tiff stack, a .npy array or a .zarr array"
        )
    if array.ndim == 2:
        return np.asarray(array)[None]
    if array.ndim == 4:
        if channel is None and array.shape[1] != 1:
            raise ValueError(
                f"{path.name} has shape {tuple(array.shape)}: {array.shape[1]} channels on axis "
                "1; choose the one to track with --channel (0-based)"
            )
        index = 0 if channel is None else int(channel)
        if not 0 <= index < array.shape[1]:
            raise ValueError(f"channel {index} is out of range: {path.name} has {array.shape[1]}")
        return array[:, index]
    if channel is not None:
        raise ValueError(f"--channel given, but {path.name} of shape {tuple(array.shape)} has none")
    return array


def read_array(path: Path) -> Any:
    """A .tif/.tiff or .npy file as an array, opened read-only (memory-mapped where the
    layout allows): the command line only ever reads its inputs."""
    if path.suffix.lower() in (".tif", ".tiff"):
        return read_tiff(path)
    if path.suffix.lower() == ".npy":
        try:
            return np.load(path, mmap_mode="r")
        except ValueError as exc:  # e.g. a cut file: "mmap length is greater than file size"
            raise ValueError(f"{path} is damaged or not a plain .npy array: {exc}") from None
    raise ValueError(
        f"unsupported file type {path.suffix or '(none)'!r} for {path.name}: expected a "
        ".tif/.tiff stack or a .npy array"
    )


def read_tiff(path: Path) -> Any:
    """The first series of a TIFF, whole or not at all.

    tifffile reads what it can of a damaged file: a multi-page stack cut after frame 0 comes
    back as a one-frame image, with only a log line to say so. Here the pages must fit the
    series' shape (and the shape or image count the writer declared), every page's data and
    the page chain must end inside the file, and a page that fails to decode is named, so a
    damaged stack is refused, naming the first damaged frame, instead of read as a shorter one.
    """
    import tifffile

    try:
        tif = tifffile.TiffFile(path)
    except Exception as exc:  # tifffile raises struct and index errors on broken headers too
        raise ValueError(f"{path} is not a readable TIFF ({type(exc).__name__}: {exc})") from None
    with tif:
        try:
            series = tif.series[0] if tif.series else None
            problem = "it holds no image" if series is None else _damage(path, tif, series)
            if problem is None and _dangling_next_page(tif):
                problem = "its last page points to a page that is not there"
        except Exception as exc:  # as above: a broken page header raises anything
            series, problem = None, f"a page header cannot be read ({type(exc).__name__}: {exc})"
        if series is None or problem is not None:
            raise ValueError(
                f"{path} is damaged or truncated from {_first_damaged(path, tif)} on: "
                f"{problem}; it is refused rather than read as a shorter stack"
            )
        try:
            return tifffile.memmap(path, mode="r")
        except ValueError:  # compressed, tiled or scattered pages: decode page by page
            pass
        return _decode(path, series)


def _damage(path: Path, tif: Any, series: Any) -> str | None:
    """What shows that pages of ``series`` are missing, or None if nothing does."""
    pages = list(series.pages)
    shape = tuple(series.shape)
    declared = _declared_shape(tif)
    if declared is not None and shape != declared:
        return f"its header says shape {declared}, but only {shape} can be read"
    if any(page is None for page in pages):
        found = sum(page is not None for page in pages)
        return f"{found} of the {len(pages)} pages of its stack are there"
    planes = math.prod(shape) // max(math.prod(pages[0].shape), 1)
    images = (tif.imagej_metadata or {}).get("images")
    if images is not None and int(images) != planes:
        return f"its ImageJ header says {images} images, but {planes} are there"
    size = path.stat().st_size
    if series.dataoffset is not None:  # one contiguous block: it must fit in the file
        end = series.dataoffset + series.nbytes
        return f"its {shape} stack needs {end} bytes, the file has {size}" if end > size else None
    if planes != len(pages):
        return f"{len(pages)} pages cannot fill its shape {shape}"
    if any(not _page_in_file(page, size) for page in pages):
        return "the data of a page runs past the end of the file"
    in_series = sum(len(s.pages) for s in tif.series)
    if len(tif.series) == 1 and len(tif.pages) != in_series:
        return f"it has {len(tif.pages)} pages, but its stack of shape {shape} uses {in_series}"
    return None


def _page_in_file(page: Any, size: int) -> bool:
    """Whether every byte the page's header points to lies inside a file of ``size`` bytes."""
    offsets, counts = page.dataoffsets, page.databytecounts
    return len(offsets) == len(counts) and all(o + c <= size for o, c in zip(offsets, counts))


def _first_damaged(path: Path, tif: Any) -> str:
    """``frame 3`` (or ``page 7 (frame 3)``): the first page that is cut off or missing."""
    size, pages = path.stat().st_size, tif.pages
    index, per_frame = 0, 1
    try:
        while index < len(pages) and _page_in_file(pages[index], size):
            index += 1
        first = pages[0]
        if index == len(pages) == 1 and first.is_contiguous:  # one header, many frames (ImageJ)
            index = max(size - first.dataoffsets[0], 0) // max(first.nbytes, 1)
        declared = _declared_shape(tif)
        if declared is not None and len(declared) > 2:
            planes = math.prod(declared) // max(math.prod(first.shape), 1)
            per_frame = max(planes // declared[0], 1)
    except Exception:  # a page header that cannot be read is where the damage starts
        pass
    return _page_name(index, per_frame)


def _dangling_next_page(tif: Any) -> bool:
    """Whether the last page read points to a next page that tifffile could not read (the
    file ends, or the page's header is broken): the stack was cut there."""
    import struct

    where = tif.pages.next_page_offset
    if where is None:
        return False
    handle = tif.filehandle
    handle.seek(where)
    raw = handle.read(tif.tiff.offsetsize)
    if len(raw) < tif.tiff.offsetsize:
        return True
    return int(struct.unpack(tif.tiff.offsetformat, raw)[0]) != 0


def _declared_shape(tif: Any) -> tuple[int, ...] | None:
    """The shape tifffile wrote into the file's description, if it is one of its files."""
    metadata = tif.shaped_metadata
    if not metadata or "shape" not in metadata[0]:
        return None
    return tuple(int(n) for n in metadata[0]["shape"])


def _decode(path: Path, series: Any) -> np.ndarray:
    """Every page of ``series`` decoded into one array; a page that fails is named."""
    pages = list(series.pages)
    out = np.empty(tuple(series.shape), series.dtype)
    flat = out.reshape(len(pages), *pages[0].shape)
    per_frame = len(pages) // out.shape[0] if out.ndim > 2 and len(pages) > 1 else 1
    for index, page in enumerate(pages):
        try:
            flat[index] = page.asarray()
        except Exception as exc:  # any codec's error: the message says which page failed
            raise ValueError(
                f"{_page_name(index, per_frame)} of {path} cannot be decoded "
                f"({type(exc).__name__}: {exc}); the file is damaged or truncated"
            ) from exc
    out.flags.writeable = False  # read-only like the memory-mapped inputs: nothing writes here
    return out


def _page_name(index: int, per_frame: int) -> str:
    """``frame 3``, or ``page 7 (frame 3)`` where a frame spans several pages (channels)."""
    if per_frame <= 1:
        return f"frame {index}"
    return f"page {index} (frame {index // per_frame})"


# ---------------------------------------------------------------------------------- outputs
class RunFailedError(RuntimeError):
    """A run failed after it began writing; the message says what was kept, and where."""


def same_path(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are one file: the same path once links are resolved, or (both
    existing) the same file on disk, which also catches hard links."""
    try:
        if os.path.samefile(a, b):
            return True
    except OSError:  # one of them does not exist (yet)
        pass
    return a.resolve() == b.resolve()


def _holds(folder: Path, path: Path) -> bool:
    """Whether ``path`` lies inside ``folder`` (so replacing the folder would delete it)."""
    return path.resolve().is_relative_to(folder.resolve()) and not same_path(folder, path)


def refuse_outputs_over_inputs(
    outputs: Iterable[Path], inputs: Mapping[str, Path | None], option: str
) -> None:
    """ValueError if any path a run may write (a file, or a folder it replaces whole) is, links
    to, or holds one of ``inputs`` (what each is, e.g. "the stack", to its path): the run
    would replace what the user made. ``option`` names the choice to change."""
    for output in outputs:
        for role, source in inputs.items():
            if source is None:
                continue
            if same_path(output, source):
                how = "is" if os.path.abspath(output) == os.path.abspath(source) else "links to"
                raise ValueError(
                    f"the output {output} {how} {role} ({source}); writing it would destroy "
                    f"the input: choose another {option}"
                )
            if output.is_dir() and _holds(output, source):
                raise ValueError(
                    f"the output {output} holds {role} ({source}), and is replaced whole; "
                    f"choose another {option}"
                )


def partial_name(path: Path) -> Path:
    """Where a stopped run keeps what it finished instead of ``path``: ``labels.tif`` →
    ``labels.partial.tif``, ``ctc`` → ``ctc.partial``, so no partial result looks whole."""
    return path.with_name(f"{path.stem}.partial{path.suffix}")


def running_name(path: Path) -> Path:
    """The hidden name a file is written under until it is complete: ``.labels.running.tif``
    (the suffix stays, so the half-written file still opens as what it is)."""
    return path.with_name(f".{path.stem}.running{path.suffix}")


def remove_path(path: Path) -> None:
    """Delete a file, a link (not what it points to) or a folder, if there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def move_into_place(source: Path, target: Path) -> None:
    """Rename ``source`` to ``target`` (same folder, so nothing is copied), replacing what is
    there: a file atomically, a folder by moving the old one aside first and deleting it once
    the new one is in place. A link at ``target`` is replaced, never written through."""
    if target.is_dir() and not target.is_symlink():
        old = target.with_name(f".{target.name}.old")
        remove_path(old)
        os.replace(target, old)
        os.replace(source, target)
        shutil.rmtree(old)
    else:
        if source.is_dir() and (target.exists() or target.is_symlink()):
            target.unlink()  # a file or a link where a folder goes: rename cannot replace it
        os.replace(source, target)


def publish(staging: Path, out: Path, names: Iterable[str], *, complete: bool, keep: bool) -> None:
    """Rename the ``names`` that ``staging`` holds into ``out``, then delete ``staging``.

    A complete run's outputs take their names and replace earlier results, complete or
    partial; a stopped run's take their partial names, and only if ``keep`` (it finished
    something), so earlier complete results survive a failed rerun. An earlier output this
    run did not make is removed with the rest, so one folder never mixes two runs.
    """
    for name in names:
        target = out / name if complete else partial_name(out / name)
        if keep and (staging / name).exists():
            move_into_place(staging / name, target)
        elif keep:
            remove_path(target)
        if complete:
            remove_path(partial_name(out / name))
    remove_path(staging)


def check_new_file(
    target: Path, inputs: Mapping[str, Path | None], overwrite: bool, option: str = "--out"
) -> None:
    """Before any work: ``target`` (and its partial and running names) may not be an input,
    and needs ``overwrite`` if it is there already."""
    if target.is_dir():
        raise IsADirectoryError(f"{option} {target} is a folder; name the labels file to write")
    mine = [target, partial_name(target), running_name(target)]
    refuse_outputs_over_inputs(mine, inputs, option)
    existing = [p for p in mine if p.exists() or p.is_symlink()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} exists; use --overwrite to replace it")


def keep_partial_file(running: Path, target: Path, done: int, total: int) -> str:
    """A stopped run's file: kept under its partial name if it holds finished frames, else
    deleted; returns the sentence that says which."""
    if not done:
        remove_path(running)
        return "nothing was written"
    move_into_place(running, partial_name(target))
    return f"the frames done ({done} of {total} steps) are kept in {partial_name(target)}"


def saying_kept(failure: BaseException, kept: str, doing: str, *, any_kept: bool) -> BaseException:
    """The error to raise for ``failure`` once a run stopped: Ctrl-C stays a
    KeyboardInterrupt and other errors become a :class:`RunFailedError`, both carrying
    ``kept`` (what was kept, and where) for the command line's one-line message. A bad input
    found before anything was kept (``any_kept`` False) stays the ValueError or OSError it is.
    """
    if isinstance(failure, KeyboardInterrupt):
        return KeyboardInterrupt(kept)
    if not any_kept and isinstance(failure, (ValueError, TypeError, OSError)):
        return failure
    if isinstance(failure, Exception):
        return RunFailedError(f"{doing} failed ({failure}); {kept}")
    return failure


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    """One CSV file: a header row, then ``rows``."""
    import csv

    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
