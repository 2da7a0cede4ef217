"""Connected components: the extension, the scikit-image fallback, scikit-image itself and a
plain flood fill agree on partition and areas; post-processing follows the spec's rules."""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from skimage.measure import label as skimage_label

from sam2 import connected_components as cc
from sam2.postprocess import connected_components, fill_holes, remove_small_regions

Components = tuple[np.ndarray, np.ndarray]


def _require_extension() -> None:
    """Skip without the built extension, except under CI, which builds it and must fail."""
    if cc.extension_available():
        return
    try:
        cc.load_extension()
    except RuntimeError as error:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {error}", pytrace=False)
        pytest.skip(str(error))


def _extension(mask: np.ndarray) -> Components:
    labels, areas = cc.connected_components(torch.from_numpy(mask), use_extension=True)
    return labels.numpy(), areas.numpy()


def _fallback(mask: np.ndarray) -> Components:
    labels, areas = cc.connected_components(torch.from_numpy(mask), use_extension=False)
    return labels.numpy(), areas.numpy()


def _skimage(mask: np.ndarray) -> Components:
    labels = np.stack([skimage_label(image[0], connectivity=2) for image in mask])[:, None]
    areas = np.zeros(mask.shape, dtype=np.int64)
    for n in range(mask.shape[0]):
        sizes = np.bincount(labels[n].ravel())
        sizes[0] = 0
        areas[n] = sizes[labels[n]]
    return labels, areas


def _flood_fill(mask: np.ndarray) -> Components:
    """Breadth-first search over the eight neighbours: slow, obviously right, small masks only."""
    labels = np.zeros(mask.shape, dtype=np.int64)
    areas = np.zeros(mask.shape, dtype=np.int64)
    _, _, H, W = mask.shape
    for n in range(mask.shape[0]):
        image, out, area = mask[n, 0], labels[n, 0], areas[n, 0]
        count = 0
        for start in zip(*np.nonzero(image)):
            if out[start]:
                continue
            count += 1
            out[start] = count
            queue, members = deque([start]), [start]
            while queue:
                r, c = queue.popleft()
                for dr in (-1, 0, 1):
                    for dc in (-1, 0, 1):
                        q = (r + dr, c + dc)
                        if 0 <= q[0] < H and 0 <= q[1] < W and image[q] and not out[q]:
                            out[q] = count
                            queue.append(q)
                            members.append(q)
            for member in members:
                area[member] = len(members)
    return labels, areas


def _canonical(labels: np.ndarray) -> np.ndarray:
    """Per image, every label replaced by the rank of its first appearance in raster order, so
    two labellings of the same partition become equal whatever numbers they used."""
    out = np.empty(labels.shape, dtype=np.int64)
    for n in range(labels.shape[0]):
        _, first, inverse = np.unique(labels[n], return_index=True, return_inverse=True)
        rank = np.empty(len(first), dtype=np.int64)
        rank[np.argsort(first)] = np.arange(len(first))
        out[n] = rank[inverse].reshape(labels[n].shape)
    return out


def _assert_same(mask: np.ndarray, got: Components, expected: Components) -> None:
    labels, areas = got
    assert labels.shape == areas.shape == mask.shape
    np.testing.assert_array_equal(labels > 0, mask.astype(bool))
    np.testing.assert_array_equal(_canonical(labels), _canonical(expected[0]))
    np.testing.assert_array_equal(areas, expected[1])


# Masks: random pixels and the patterns where 4- and 8-connectivity or merge order matter.
_sizes = st.tuples(st.integers(1, 3), st.integers(1, 24), st.integers(1, 24))


@st.composite
def _masks(draw: st.DrawFn) -> np.ndarray:
    n, h, w = draw(_sizes)
    rows, cols = np.indices((h, w))
    pattern = draw(
        st.sampled_from(["random", "zeros", "ones", "checker", "diagonal", "anti", "stripes"])
    )
    if pattern == "random":
        return draw(arrays(np.bool_, (n, 1, h, w)))
    step = draw(st.integers(2, 4))
    image = {
        "zeros": np.zeros((h, w), bool),
        "ones": np.ones((h, w), bool),
        "checker": (rows + cols) % 2 == 0,
        "diagonal": (rows - cols) % step == 0,
        "anti": (rows + cols) % step == 0,
        "stripes": (rows % step == 0) | (cols == w - 1),
    }[pattern]
    return np.broadcast_to(image, (n, 1, h, w)).copy()


@settings(max_examples=300, deadline=None)
@given(mask=_masks())
def test_fallback_matches_flood_fill(mask: np.ndarray) -> None:
    """The scikit-image fallback gives the flood fill's 8-connected partition and areas."""
    _assert_same(mask, _fallback(mask), _flood_fill(mask))


@settings(max_examples=300, deadline=None)
@given(mask=_masks())
def test_extension_matches_flood_fill_and_skimage(mask: np.ndarray) -> None:
    """The extension gives the flood fill's and scikit-image's partition and areas."""
    _require_extension()
    got = _extension(mask)
    _assert_same(mask, got, _flood_fill(mask))
    _assert_same(mask, got, _skimage(mask))


@settings(max_examples=300, deadline=None)
@given(mask=_masks())
def test_extension_labels_are_first_pixel_plus_one(mask: np.ndarray) -> None:
    """Extension labels are 1 + the raster index (within the image) of the component's start."""
    _require_extension()
    labels, _ = _extension(mask)
    for n in range(mask.shape[0]):
        flat = labels[n].ravel()
        values, first = np.unique(flat, return_index=True)
        np.testing.assert_array_equal(values[values > 0], first[values > 0] + 1)


@pytest.mark.parametrize(
    ("rows", "expected_areas"),
    [
        (["#.", ".#"], [2]),  # diagonal neighbours are one component
        (["#.#", ".#.", "#.#"], [5]),
        (["#.#", "#.#", "###"], [7]),  # a U: two starts that meet later
        (["#...#", ".#.#.", "..#.."], [5]),  # a V closing on its last row
        (["#.#.#", "#.#.#", "#####"], [11]),  # a comb: three starts merged by one row
        (["##..", "##..", "..##", "..##"], [8]),  # squares touching at a corner
        (["#..", "..#", "#.."], [1, 1, 1]),  # a gap of one pixel separates
    ],
)
@pytest.mark.parametrize("path", ["extension", "fallback"])
def test_hand_checked_shapes(rows: list[str], expected_areas: list[int], path: str) -> None:
    """Small shapes whose components and areas can be checked by eye."""
    if path == "extension":
        _require_extension()
    mask = np.array([[c == "#" for c in row] for row in rows])[None, None]
    labels, areas = (_extension if path == "extension" else _fallback)(mask)
    components = np.unique(labels[labels > 0])
    assert sorted(int(areas[labels == c][0]) for c in components) == sorted(expected_areas)
    for c in components:  # every pixel of a component carries the component's area
        assert len(np.unique(areas[labels == c])) == 1


def _blobs(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Smooth random blobs (thresholded blurred noise), like predicted masks."""
    noise = torch.randn(n, 1, size, size, generator=torch.Generator().manual_seed(seed))
    blurred = torch.nn.functional.avg_pool2d(noise, 9, stride=1, padding=4)
    return (blurred > 0).numpy()


def test_extension_matches_fallback_on_batched_blobs() -> None:
    """A batch of 256×256 blob masks (N=4): same partition and areas on both paths."""
    _require_extension()
    mask = _blobs(4, 256)
    _assert_same(mask, _extension(mask), _fallback(mask))
    _assert_same(mask, _extension(mask), _skimage(mask))


def test_extension_accepts_uint8_and_strided_masks() -> None:
    """uint8 (any non-zero is foreground) and non-contiguous views give the bool result."""
    _require_extension()
    mask = _blobs(2, 64, seed=1)
    expected = _extension(mask)
    as_uint8 = torch.from_numpy(mask).to(torch.uint8) * 255
    labels, areas = cc.connected_components(as_uint8, use_extension=True)
    np.testing.assert_array_equal(labels.numpy(), expected[0])
    np.testing.assert_array_equal(areas.numpy(), expected[1])
    transposed = torch.from_numpy(np.ascontiguousarray(mask.transpose(0, 1, 3, 2))).mT
    assert not transposed.is_contiguous()
    labels, areas = cc.connected_components(transposed, use_extension=True)
    np.testing.assert_array_equal(labels.numpy(), expected[0])
    np.testing.assert_array_equal(areas.numpy(), expected[1])


@pytest.mark.parametrize("shape", [(0, 1, 4, 4), (2, 1, 0, 5), (1, 1, 3, 0)])
@pytest.mark.parametrize("use_extension", [True, False])
def test_empty_masks(shape: tuple[int, ...], use_extension: bool) -> None:
    """Empty batches and empty images give empty int32 outputs of the same shape."""
    if use_extension:
        _require_extension()
    labels, areas = cc.connected_components(
        torch.zeros(shape, dtype=torch.bool), use_extension=use_extension
    )
    assert labels.shape == areas.shape == shape
    assert labels.dtype == areas.dtype == torch.int32


@pytest.mark.parametrize("use_extension", [None, True, False])
def test_rejects_masks_without_a_channel_axis(use_extension: bool | None) -> None:
    """A (N, H, W) or (N, 2, H, W) mask is a ValueError that names the expected shape."""
    if use_extension:
        _require_extension()
    for shape in [(2, 8, 8), (2, 2, 8, 8)]:
        with pytest.raises(ValueError, match=r"\(N, 1, H, W\) mask, got shape"):
            cc.connected_components(
                torch.zeros(shape, dtype=torch.bool), use_extension=use_extension
            )


def test_op_checks_its_input() -> None:
    """Called directly, the op raises ValueError for a bad shape and TypeError for a bad dtype."""
    _require_extension()
    op = torch.ops.sam2_ext.connected_components
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        op(torch.zeros(1, 2, 4, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool or uint8"):
        op(torch.zeros(1, 1, 4, 4))


def test_op_registration_passes_opcheck() -> None:
    """Schema, fake-tensor shapes and dispatch are consistent (what torch.compile relies on)."""
    _require_extension()
    mask = torch.from_numpy(_blobs(2, 16))
    torch.library.opcheck(torch.ops.sam2_ext.connected_components.default, (mask,))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_kernel_matches_cpu_kernel() -> None:
    """The CUDA kernel returns the CPU kernel's labels and areas, bit for bit."""
    _require_extension()
    if not cc.load_extension().with_cuda:
        pytest.skip("the extension was built without its CUDA kernel")
    op = torch.ops.sam2_ext.connected_components
    rng = np.random.default_rng(0)
    masks = [_blobs(4, 1024), _blobs(3, 257, seed=2), rng.random((5, 1, 31, 17)) < 0.5]
    for mask in masks:
        cpu = op(torch.from_numpy(mask))
        gpu = op(torch.from_numpy(mask).cuda())
        assert gpu[0].is_cuda and gpu[1].is_cuda
        torch.testing.assert_close(gpu[0].cpu(), cpu[0], rtol=0, atol=0)
        torch.testing.assert_close(gpu[1].cpu(), cpu[1], rtol=0, atol=0)


# Which path runs: logged once, switchable.


@pytest.fixture
def fresh_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget which messages were logged, so this test sees its own."""
    monkeypatch.setattr(cc, "_logged", set())


def _fail(*args: object) -> None:
    raise AssertionError("this path must not run")


@pytest.mark.usefixtures("fresh_log")
def test_environment_variable_forces_the_fallback_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """SAM2_DISABLE_EXTENSION=1 runs scikit-image and logs why, once."""
    monkeypatch.setenv(cc.DISABLE_ENV, "1")
    monkeypatch.setattr(cc, "_extension_components", _fail)
    mask = torch.from_numpy(_blobs(1, 32))
    with caplog.at_level(logging.INFO, logger="sam2"):
        connected_components(mask)
        connected_components(mask)
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("sam2")]
    assert messages == [
        f"connected components: scikit-image fallback (extension not used: {cc.DISABLE_ENV} is set)"
    ]


@pytest.mark.usefixtures("fresh_log")
def test_missing_extension_falls_back_and_logs_the_reason(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Without the extension the fallback runs and the log carries the import error."""
    monkeypatch.delenv(cc.DISABLE_ENV, raising=False)
    monkeypatch.setattr(cc, "_import_extension", lambda: (None, "ImportError: not built here"))
    with caplog.at_level(logging.INFO, logger="sam2"):
        labels, _ = connected_components(torch.ones(1, 1, 3, 3, dtype=torch.bool))
    assert labels.unique().tolist() == [1]
    assert "scikit-image fallback (extension not used: ImportError: not built here)" in caplog.text
    with pytest.raises(RuntimeError, match=r"not built here.*no-build-isolation"):
        cc.connected_components(torch.ones(1, 1, 3, 3, dtype=torch.bool), use_extension=True)


@pytest.mark.usefixtures("fresh_log")
def test_built_extension_is_the_default_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """With the extension built and not disabled, it runs (never scikit-image) and logs it."""
    _require_extension()
    monkeypatch.delenv(cc.DISABLE_ENV, raising=False)
    monkeypatch.setattr(cc, "_fallback_components", _fail)
    with caplog.at_level(logging.INFO, logger="sam2"):
        connected_components(torch.from_numpy(_blobs(1, 32)))
    assert "connected components: C++ extension (cpu kernel)" in caplog.text


# Post-processing on hand-made logits, on both paths.


@pytest.fixture(params=["extension", "fallback"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Runs a test with the extension (the fallback disabled) and with the fallback alone."""
    if request.param == "extension":
        _require_extension()
        monkeypatch.delenv(cc.DISABLE_ENV, raising=False)
        monkeypatch.setattr(cc, "_fallback_components", _fail)
    else:
        monkeypatch.setenv(cc.DISABLE_ENV, "1")
        monkeypatch.setattr(cc, "_extension_components", _fail)
    yield request.param


def _logits(rows: list[str], inside: float = 5.0, outside: float = -3.0) -> torch.Tensor:
    """'#' is foreground (``inside``), '.' background (``outside``); shape (H, W)."""
    return torch.tensor([[inside if c == "#" else outside for c in row] for row in rows])


def _where(rows: list[str], char: str) -> torch.Tensor:
    return torch.tensor([[c == char for c in row] for row in rows])


def _plain(rows: list[str], marks: str, to: str = ".") -> list[str]:
    """The rows with every character of ``marks`` replaced by ``to``."""
    return [row.translate(str.maketrans(marks, to * len(marks))) for row in rows]


# a: 3-pixel hole, b: 9-pixel hole, c: 3 pixels of background at the image corner,
# d: two 2-pixel pieces of background touching diagonally (one 4-pixel hole under 8-connectivity)
_HOLES = [
    "cc########",
    "c#########",
    "##a#######",
    "##aa##bbb#",
    "######bbb#",
    "######bbb#",
    "#dd#######",
    "###dd#####",
    "##########",
]


def test_fill_holes_fills_small_background_components(path: str) -> None:
    """Background components of at most max_area pixels (border ones too) become 0.1."""
    logits = _logits(_plain(_HOLES, "abcd"))[None, None]
    expected = logits.clone()
    filled = _where(_HOLES, "a") | _where(_HOLES, "c")  # 3 pixels each; b has 9, d has 4
    expected[0, 0][filled] = 0.1
    torch.testing.assert_close(fill_holes(logits, max_area=3), expected, rtol=0, atol=0)
    # max_area=8 adds d (4 pixels), b (9) stays; 0 switches filling off
    expected[0, 0][_where(_HOLES, "d")] = 0.1
    torch.testing.assert_close(fill_holes(logits, max_area=8), expected, rtol=0, atol=0)
    torch.testing.assert_close(fill_holes(logits, max_area=0), logits, rtol=0, atol=0)


def test_remove_small_regions_fills_holes_and_removes_sprinkles(path: str) -> None:
    """Holes up to max_hole_area become threshold + 10, sprinkles up to max_sprinkle_area
    threshold - 10, both found on the input logits; masks of a batch are independent."""
    # mask 0: an object with a 2-pixel hole (h), a 1-pixel sprinkle (s), and two diagonal
    # pixels (p) that form one 2-pixel sprinkle. mask 1: the same shapes as background.
    rows = [
        "........",
        ".#####..",
        ".#hh##.s",
        ".#####..",
        "........",
        "p.......",
        ".p......",
    ]
    first = _logits(_plain(_plain(rows, "h"), "sp", "#"), inside=4.0, outside=-2.0)
    second = -first  # foreground and background swapped
    logits = torch.stack([first, second])[None]  # (B=1, M=2, H, W)
    threshold = 0.5
    out = remove_small_regions(logits, max_hole_area=2, max_sprinkle_area=2, threshold=threshold)

    expected = logits.clone()
    expected[0, 0][_where(rows, "h")] = threshold + 10
    expected[0, 0][_where(rows, "s") | _where(rows, "p")] = threshold - 10
    # in mask 1 the object is a 13-pixel hole (kept), its own hole h a 2-pixel sprinkle, s and
    # p holes of 1 and 2 pixels, and the rest one large foreground component
    expected[0, 1][_where(rows, "h")] = threshold - 10
    expected[0, 1][_where(rows, "s") | _where(rows, "p")] = threshold + 10
    torch.testing.assert_close(out, expected, rtol=0, atol=0)

    # with areas of 1, only s qualifies (p is one 2-pixel piece under 8-connectivity)
    out = remove_small_regions(logits, max_hole_area=1, max_sprinkle_area=1, threshold=threshold)
    expected = logits.clone()
    expected[0, 0][_where(rows, "s")] = threshold - 10
    expected[0, 1][_where(rows, "s")] = threshold + 10
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_sprinkles_come_from_the_input_logits(path: str) -> None:
    """A pixel enclosed by a hole stays a sprinkle even though the hole around it is filled."""
    rows = ["#####", "#rrr#", "#rsr#", "#rrr#", "#####"]
    logits = _logits(_plain(rows, "r", "."), inside=3.0, outside=-1.0)
    logits[_where(rows, "s")] = 3.0
    out = remove_small_regions(logits[None, None], max_hole_area=8, max_sprinkle_area=1)
    expected = logits.clone()
    expected[_where(rows, "r")] = 10.0
    expected[_where(rows, "s")] = -10.0
    torch.testing.assert_close(out[0, 0], expected, rtol=0, atol=0)


def test_postprocessing_needs_no_components_when_switched_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Zero areas return the logits untouched without labelling anything."""
    monkeypatch.setattr(cc, "_extension_components", _fail)
    monkeypatch.setattr(cc, "_fallback_components", _fail)
    logits = torch.randn(1, 2, 8, 8)
    assert remove_small_regions(logits, 0, 0) is logits
    assert fill_holes(logits, 0) is logits
