"""Lazy frame sources: JPEG parity with the reference, stack-wide normalisation, cache, prefetch."""

from __future__ import annotations

import gc
import sys
import threading
import weakref
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from sam2.frames import (
    ArrayFrameSource,
    FrameSource,
    JpegFolderSource,
    TiffStackSource,
    open_frames,
)
from sam2.intensity import robust_limits
from sam2.synthetic import make_timelapse
from sam2.transforms import preprocess
from tests.oracle.harness import Oracle

S = 64  # model input size for the non-oracle tests (keeps them quick on 2 cores)


@pytest.fixture(scope="module")
def stack() -> np.ndarray:
    """(6, 96, 128) uint16 cells drifting."""
    return make_timelapse(n_frames=6, shape=(96, 128), n_cells=3, division_frames=(3,)).image


def _expected(frame: np.ndarray, limits: tuple[float, float] | None = None) -> torch.Tensor:
    """What the image predictor's preprocessing makes of one (H, W[, C]) frame."""
    return preprocess(frame if frame.ndim == 3 else frame[..., None], S, limits)


def _to_rgb8(stack: np.ndarray) -> np.ndarray:
    """(T, H, W) uint16 -> (T, H, W, 3) uint8 with distinct channels."""
    low, high = robust_limits(stack)
    gray = np.clip((stack - low) / (high - low), 0, 1)
    rgb = np.stack([gray, gray**0.5, 1 - gray], axis=-1)
    return (rgb * 255).round().astype(np.uint8)


def _write_jpegs(folder: Path, frames: np.ndarray, names: list[str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / (names[i] if names else f"{i:05d}.jpg"))
    return folder


class CountingSource(ArrayFrameSource):
    """Records which thread loaded each frame."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.loads: list[tuple[int, str]] = []
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def _load(self, index: int) -> np.ndarray:
        self.loads.append((index, threading.current_thread().name))
        return super()._load(index)


# --- JPEG folders -------------------------------------------------------------------------------


@pytest.mark.oracle
def test_jpeg_folder_matches_reference(oracle: Oracle, stack: np.ndarray, tmp_path: Path) -> None:
    folder = _write_jpegs(tmp_path / "video", _to_rgb8(stack))
    ref = oracle.call("frames:load_jpeg_folder", {}, folder=str(folder), image_size=256)
    with JpegFolderSource(folder, 256) as source:
        assert len(source) == len(stack) == len(ref["images"])
        assert source.orig_hw == tuple(ref["hw"]) == (96, 128)
        for i in range(len(source)):
            frame = source.get(i)
            assert frame.shape == (3, 256, 256) and frame.dtype == torch.float32
            np.testing.assert_array_equal(frame.numpy(), ref["images"][i])


def test_jpeg_folder_order_and_names(stack: np.ndarray, tmp_path: Path) -> None:
    frames = _to_rgb8(stack[:4])
    names = ["10.jpeg", "2.JPG", "0.JPEG", "1.jpg"]
    folder = _write_jpegs(tmp_path / "v", frames, names)
    (folder / "notes.txt").write_text("ignored")
    Image.fromarray(frames[0]).save(folder / "3.png")  # not a JPEG: ignored like the reference
    with JpegFolderSource(folder, S) as source:
        assert [p.name for p in source.paths] == ["0.JPEG", "1.jpg", "2.JPG", "10.jpeg"]
        with Image.open(folder / "2.JPG") as img:
            pixels = np.array(img.convert("RGB").resize((S, S))) / 255.0
        unit = torch.from_numpy(pixels).permute(2, 0, 1).float()
        mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
        torch.testing.assert_close(source.get(2), (unit - mean) / std, rtol=0, atol=0)


def test_jpeg_folder_errors(stack: np.ndarray, tmp_path: Path) -> None:
    frames = _to_rgb8(stack[:2])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no JPEG frames"):
        JpegFolderSource(tmp_path / "empty", S)
    _write_jpegs(tmp_path / "named", frames, ["00000.jpg", "frame_1.jpg"])
    with pytest.raises(ValueError, match=r"'frame_1.jpg'.*not named by an integer"):
        JpegFolderSource(tmp_path / "named", S)
    _write_jpegs(tmp_path / "dup", frames, ["1.jpg", "001.jpg"])
    with pytest.raises(ValueError, match="both frame 1"):
        JpegFolderSource(tmp_path / "dup", S)
    with pytest.raises(FileNotFoundError):
        JpegFolderSource(tmp_path / "missing", S)
    folder = _write_jpegs(tmp_path / "sizes", frames)
    Image.fromarray(frames[1][:50]).save(folder / "00001.jpg")
    with JpegFolderSource(folder, S, prefetch=0) as source:
        source.get(0)
        with pytest.raises(ValueError, match=r"00001.jpg is 50x128.*first frame is 96x128"):
            source.get(1)


# --- arrays: normalisation ----------------------------------------------------------------------


def test_uint16_stack_uses_one_set_of_limits(stack: np.ndarray) -> None:
    data = stack.copy()
    data[2] = data[2] // 10  # a dark frame must stay dark, not be stretched on its own
    with ArrayFrameSource(data, S) as source:
        limits = source.contrast_limits
        assert limits == robust_limits(data)  # all 6 frames sampled, every pixel
        dark, bright = source.get(2), source.get(1)
        torch.testing.assert_close(dark, _expected(data[2], limits), rtol=0, atol=0)
        torch.testing.assert_close(bright, _expected(data[1], limits), rtol=0, atol=0)
        assert dark.mean() < bright.mean() - 0.5
        own = _expected(data[2])  # per-frame limits would brighten it
        assert (own - dark).abs().max() > 0.5
        assert source.contrast_limits == limits  # reading frames never changes the limits


def test_limits_sample_few_frames(stack: np.ndarray) -> None:
    long = np.concatenate([stack] * 5)  # 30 frames: limits come from 8 evenly spaced ones
    source = CountingSource(long, S)
    assert source.loads == []  # sampling reads raw frames, caches nothing
    assert source.cached_indices() == []
    picks = np.unique(np.linspace(0, 29, 8).round().astype(int))
    assert source.contrast_limits == robust_limits(long[picks])
    source.close()


def test_given_contrast_limits_are_used(stack: np.ndarray) -> None:
    with ArrayFrameSource(stack, S, contrast_limits=(100, 3000)) as source:
        assert source.contrast_limits == (100.0, 3000.0)
        torch.testing.assert_close(source.get(3), _expected(stack[3], (100, 3000)), rtol=0, atol=0)
    with pytest.raises(ValueError, match="low < high"):
        ArrayFrameSource(stack, S, contrast_limits=(5, 5))


def test_uint8_float_and_bool_stacks(stack: np.ndarray) -> None:
    rgb = _to_rgb8(stack)
    with ArrayFrameSource(rgb, S) as source:
        assert source.contrast_limits == (0.0, 255.0)
        torch.testing.assert_close(source.get(1), _expected(rgb[1]), rtol=0, atol=0)
    unit = rgb.astype(np.float32) / 255  # floats within [0, 1] are used as they are
    with ArrayFrameSource(unit, S) as source:
        torch.testing.assert_close(source.get(4), _expected(unit[4]), rtol=0, atol=0)
    floats = stack.astype(np.float64) * 0.5  # other floats: robust limits, like integers
    with ArrayFrameSource(floats, S) as source:
        assert source.contrast_limits == robust_limits(floats)
    masks = stack > 2000
    with ArrayFrameSource(masks, S) as source:
        expected = _expected(masks[0].astype(np.uint8) * 255)
        torch.testing.assert_close(source.get(0), expected, rtol=0, atol=0)


def test_rgb_and_channel_selection(stack: np.ndarray) -> None:
    rgb = _to_rgb8(stack)
    rgba = np.concatenate([rgb, np.full_like(rgb[..., :1], 7)], axis=-1)
    with ArrayFrameSource(rgba, S) as source:  # alpha dropped
        torch.testing.assert_close(source.get(0), _expected(rgb[0]), rtol=0, atol=0)
    channels_first = np.moveaxis(rgb, -1, 1)  # (T, 3, H, W)
    with ArrayFrameSource(channels_first, S, channel_axis=1) as source:
        assert source.orig_hw == (96, 128)
        torch.testing.assert_close(source.get(5), _expected(rgb[5]), rtol=0, atol=0)
    two = np.stack([stack, stack // 3 + 50], axis=1)  # (T, 2, H, W) multichannel
    with ArrayFrameSource(two, S, channel_axis=1, channel=1) as source:
        limits = robust_limits(two[:, 1])
        assert source.contrast_limits == limits
        torch.testing.assert_close(source.get(2), _expected(two[2, 1], limits), rtol=0, atol=0)
    with ArrayFrameSource(np.moveaxis(two, 1, -1), S, channel=0) as source:  # channels last
        torch.testing.assert_close(source.get(2), _expected(stack[2], source.contrast_limits))
    with ArrayFrameSource(channels_first, S, channel_axis=1, channel=2) as source:  # one of RGB
        torch.testing.assert_close(source.get(0), _expected(rgb[0, :, :, 2]), rtol=0, atol=0)


def test_bad_channels(stack: np.ndarray) -> None:
    two = np.stack([stack, stack], axis=1)
    with pytest.raises(ValueError, match="channel 2 is out of range: axis 1 has 2 channels"):
        ArrayFrameSource(two, S, channel_axis=1, channel=2)
    with pytest.raises(ValueError, match="128 channels on axis 3; pick one"):
        ArrayFrameSource(two, S)  # no channel_axis: the last axis is not RGB
    with pytest.raises(ValueError, match="2 channels on axis 1"):
        ArrayFrameSource(two, S, channel_axis=1)
    with pytest.raises(ValueError, match="axis 0 holds the frames"):
        ArrayFrameSource(two, S, channel_axis=0, channel=0)
    with pytest.raises(ValueError, match="channel_axis 4 is out of range"):
        ArrayFrameSource(two, S, channel_axis=4, channel=0)
    with pytest.raises(ValueError, match=r"frames of shape .* are 2D"):
        ArrayFrameSource(stack, S, channel=0)


# --- arrays: storage types ----------------------------------------------------------------------


def _assert_same_frames(source: FrameSource, stack: np.ndarray) -> None:
    reference = ArrayFrameSource(stack, S, prefetch=0)
    assert len(source) == len(stack) and source.orig_hw == stack.shape[1:3]
    for i in (0, len(stack) - 1, 2):
        torch.testing.assert_close(source.get(i), reference.get(i), rtol=0, atol=0)
    reference.close()


def test_dask_and_memmap(stack: np.ndarray, tmp_path: Path) -> None:
    da = pytest.importorskip("dask.array")
    lazy = da.from_array(stack, chunks=(1, 96, 128))
    with ArrayFrameSource(lazy, S) as source:
        _assert_same_frames(source, stack)
    mapped = np.memmap(tmp_path / "stack.raw", dtype=stack.dtype, mode="w+", shape=stack.shape)
    mapped[:] = stack
    mapped.flush()
    readonly = np.memmap(tmp_path / "stack.raw", dtype=stack.dtype, mode="r", shape=stack.shape)
    with ArrayFrameSource(readonly, S) as source:
        _assert_same_frames(source, stack)
    with ArrayFrameSource(torch.from_numpy(stack.astype(np.int32)), S) as source:
        _assert_same_frames(source, stack.astype(np.int32))


def test_zarr(stack: np.ndarray, tmp_path: Path) -> None:
    zarr = pytest.importorskip("zarr", reason="zarr is optional (pip install zarr)")
    z = zarr.open_array(
        str(tmp_path / "s.zarr"), mode="w", shape=stack.shape, chunks=(1, 96, 128), dtype="u2"
    )
    z[:] = stack
    with ArrayFrameSource(zarr.open_array(str(tmp_path / "s.zarr"), mode="r"), S) as source:
        _assert_same_frames(source, stack)


def test_tiff_stack(stack: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain, packed = tmp_path / "plain.tif", tmp_path / "packed.TIFF"
    tifffile.imwrite(plain, stack)
    tifffile.imwrite(packed, stack, compression="zlib")  # not memory-mappable
    with TiffStackSource(plain, S) as source:
        assert isinstance(source._array, np.memmap)  # read lazily from disk
        _assert_same_frames(source, stack)
    source = open_frames(packed, S)
    assert isinstance(source, TiffStackSource)
    try:  # decoded page by page through zarr, else into a temporary file: never into RAM
        import zarr

        assert isinstance(source._array, zarr.Array)
    except ImportError:
        assert isinstance(source._array, np.memmap)
    _assert_same_frames(source, stack)
    source.close()
    with monkeypatch.context() as patch:  # without zarr: decoded once into a temporary file
        patch.setitem(sys.modules, "zarr", None)
        with TiffStackSource(packed, S) as source:
            assert isinstance(source._array, np.memmap)
            _assert_same_frames(source, stack)
    rgb = tmp_path / "rgb.tif"
    tifffile.imwrite(rgb, _to_rgb8(stack), photometric="rgb")
    with TiffStackSource(rgb, S) as source:
        _assert_same_frames(source, _to_rgb8(stack))
    tifffile.imwrite(tmp_path / "single.tif", stack[0])
    with pytest.raises(ValueError, match="expected a stack of frames"):
        TiffStackSource(tmp_path / "single.tif", S)
    (tmp_path / "bad.tif").write_bytes(b"not a tiff")
    with pytest.raises(ValueError, match="not a TIFF file"):
        TiffStackSource(tmp_path / "bad.tif", S)


# --- cache, prefetch, threads -------------------------------------------------------------------


def test_lru_cache_is_bounded(stack: np.ndarray) -> None:
    source = ArrayFrameSource(stack, S, cache_size=3, prefetch=2)
    for i in [*range(len(stack)), *reversed(range(len(stack)))]:
        source.get(i)
        assert len(source.cached_indices()) <= 3
        assert source.wait_for_prefetch(timeout=30)
        assert len(source.cached_indices()) <= 3
        assert i in source.cached_indices()  # prefetching never evicts the frame just read
    source.close()
    assert source.cached_indices() == []


def test_prefetch_reads_ahead_forward_and_reverse(stack: np.ndarray) -> None:
    source = CountingSource(stack, S, cache_size=8, prefetch=2)
    main = threading.current_thread().name
    source.get(0)
    assert source.wait_for_prefetch(timeout=30)
    assert set(source.cached_indices()) == {0, 1, 2}
    assert sorted(i for i, name in source.loads if name != main) == [1, 2]
    source.get(1)  # a cache hit, then 3 is read ahead
    assert source.wait_for_prefetch(timeout=30)
    assert set(source.cached_indices()) == {0, 1, 2, 3}
    source.close()

    source = CountingSource(stack, S, cache_size=8, prefetch=2)
    source.get(5)
    source.get(4)  # moving backwards: 3 and 2 come next
    assert source.wait_for_prefetch(timeout=30)
    assert {2, 3} <= set(source.cached_indices())
    assert all(name != main for i, name in source.loads if i in (2, 3))
    assert sum(1 for i, _ in source.loads if i == 4) == 1  # never loaded twice
    source.close()


def test_no_prefetch(stack: np.ndarray) -> None:
    with ArrayFrameSource(stack, S, prefetch=0) as source:
        source.get(0)
        assert source.cached_indices() == [0]
    with ArrayFrameSource(stack, S, cache_size=0) as source:
        torch.testing.assert_close(source.get(1), _expected(stack[1], source.contrast_limits))
        assert source.cached_indices() == []


def test_concurrent_get_is_thread_safe(stack: np.ndarray) -> None:
    source = CountingSource(stack, S, cache_size=len(stack), prefetch=2)
    expected = [_expected(frame, source.contrast_limits) for frame in stack]
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def worker(seed: int) -> None:
        order = np.random.default_rng(seed).permutation(np.tile(np.arange(len(stack)), 3))
        barrier.wait()
        try:
            for i in order:
                torch.testing.assert_close(source.get(int(i)), expected[i], rtol=0, atol=0)
        except BaseException as e:  # collected and re-raised in the main thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    counts = np.bincount([i for i, _ in source.loads], minlength=len(stack))
    assert counts.tolist() == [1] * len(stack)  # one load per frame however many threads ask
    source.close()


def test_get_returns_a_copy(stack: np.ndarray) -> None:
    with ArrayFrameSource(stack, S) as source:
        first = source.get(0)
        first.zero_()
        assert source.get(0).abs().sum() > 0


def test_index_errors_and_close(stack: np.ndarray) -> None:
    source = ArrayFrameSource(stack, S)
    assert isinstance(source, FrameSource)
    with pytest.raises(IndexError, match="frame index 6 is out of range for a stack of 6 frames"):
        source.get(6)
    with pytest.raises(IndexError, match="frame index -1"):
        source.get(-1)
    with pytest.raises(TypeError, match="must be an integer"):
        source.get(1.0)  # type: ignore[arg-type]
    torch.testing.assert_close(source[np.int64(2)], source.get(2))
    thread = source._state.thread
    assert thread is not None and thread.is_alive()
    source.close()
    assert not thread.is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        source.get(0)
    source.close()  # twice is fine


def test_unclosed_source_stops_its_thread(stack: np.ndarray) -> None:
    source = ArrayFrameSource(stack, S)
    source.get(0)
    source.wait_for_prefetch(timeout=30)
    thread = source._state.thread
    assert thread is not None
    ref = weakref.ref(source)
    del source
    gc.collect()
    assert ref() is None  # the prefetch thread does not keep the source (and its frames) alive
    thread.join(timeout=10)
    assert not thread.is_alive()


# --- bad input and dispatch ---------------------------------------------------------------------


def test_bad_arrays(stack: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"stack is empty \(shape \(0, 96, 128\)\)"):
        ArrayFrameSource(stack[:0], S)
    with pytest.raises(ValueError, match="stack is empty"):
        ArrayFrameSource(stack[:, :0], S)
    with pytest.raises(ValueError, match=r"got a 2D array.*single image"):
        ArrayFrameSource(stack[0], S)
    with pytest.raises(ValueError, match="got a 1D array"):
        ArrayFrameSource(stack[0, 0], S)
    with pytest.raises(ValueError, match="select one position"):
        ArrayFrameSource(stack[:, None, None], S)
    with pytest.raises(ValueError, match="no finite values"):
        ArrayFrameSource(np.full((3, 8, 8), np.nan, np.float32), S)
    partial = stack.astype(np.float32)
    partial[4, 0, 0] = np.nan
    with ArrayFrameSource(partial, S) as source:
        source.get(3)  # frame 4 is read ahead quietly; it is checked when asked for
        assert source.wait_for_prefetch(timeout=30)
        with pytest.raises(ValueError, match="NaN"):
            source.get(4)  # asked for: the error reaches the caller
        source.get(5)
    with pytest.raises(TypeError, match="unsupported frame dtype complex"):
        ArrayFrameSource(stack.astype(np.complex64), S)
    with pytest.raises(TypeError, match="array-like"):
        ArrayFrameSource(object(), S)
    with pytest.raises(ValueError, match="image_size must be positive"):
        ArrayFrameSource(stack, 0)
    with pytest.raises(ValueError, match="cache_size and prefetch"):
        ArrayFrameSource(stack, S, cache_size=-1)


def test_open_frames_dispatch(stack: np.ndarray, tmp_path: Path) -> None:
    folder = _write_jpegs(tmp_path / "jpegs", _to_rgb8(stack[:2]))
    tifffile.imwrite(tmp_path / "s.tif", stack)
    for video, kind in [
        (folder, JpegFolderSource),
        (str(folder), JpegFolderSource),
        (tmp_path / "s.tif", TiffStackSource),
        (stack, ArrayFrameSource),
    ]:
        source = open_frames(video, S, cache_size=2)
        assert type(source) is kind and isinstance(source, FrameSource)
        assert source.orig_hw == (96, 128)
        assert open_frames(source, S) is source
        source.close()
    source = open_frames(stack, S, channel=None, contrast_limits=(0, 4000))
    with pytest.raises(ValueError, match="makes 64² inputs but the model needs 1024²"):
        open_frames(source, 1024)
    with pytest.raises(TypeError, match="cannot be applied to an open FrameSource"):
        open_frames(source, S, cache_size=1)
    source.close()


def test_open_frames_rejects(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.mp4 videos need decoding first, to a JPEG folder"):
        open_frames(tmp_path / "movie.mp4", S)
    with pytest.raises(FileNotFoundError, match="no such file"):
        open_frames(tmp_path / "missing.tif", S)
    (tmp_path / "frame.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"unsupported file type '\.png'"):
        open_frames(tmp_path / "frame.png", S)
    with pytest.raises(TypeError, match="video bytes"):
        open_frames(b"\x00\x00", S)
    with pytest.raises(TypeError, match=r"np\.stack"):
        open_frames([np.zeros((8, 8))] * 2, S)
    with pytest.raises(TypeError, match="cannot read frames from int"):
        open_frames(3, S)
    with pytest.raises(ValueError, match="got a 2D array"):
        open_frames(np.zeros((8, 8)), S)
    with pytest.raises(TypeError, match="unexpected keyword"):
        open_frames(tmp_path, S, channel=0)
