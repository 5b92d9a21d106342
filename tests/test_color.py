"""Colour conversion and chroma resampling.

Specification:
  * RGB -> YCbCr is JPEG's full-range transform (ITU-T T.871), rounded to
    the nearest integer and clipped to 0..255;
  * YCbCr -> RGB is the normative integer inverse; a round trip changes each
    channel of each pixel by at most 1;
  * gray (R = G = B) maps to Y = R, Cb = Cr = 128, and back exactly;
  * ``upsample_420`` doubles both sides with the normative integer filter
    out = (9 a + 3 b + 3 c + d + 8) >> 4 over the four nearest chroma
    samples (edges replicated): constant planes stay constant; strips of
    rows (how the decoder converts, in bounded memory) give the same rows;
  * ``downsample_420`` is the rounded 2x2 mean; downsampling an upsampled
    smooth plane gives it back closely.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockcodec import bitstream, color
from conftest import smooth_image


def rgb_cube_slices():
    """All 2^24 RGB colours, one red value at a time (256 x 256 x 3 each)."""
    g, b = np.meshgrid(np.arange(256, dtype=np.uint8), np.arange(256, dtype=np.uint8), indexing="ij")
    for r in range(256):
        yield np.stack([np.full_like(g, r), g, b], axis=-1)


def ref_rgb_to_ycbcr(rgb):
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
    return np.stack([y, cb, cr])


def ref_ycbcr_to_rgb(y, cb, cr):
    y, cb, cr = (p.astype(np.float64) for p in (y, cb, cr))
    r = y + 1.402 * (cr - 128)
    g = y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128)
    b = y + 1.772 * (cb - 128)
    return np.stack([r, g, b], axis=-1)


def test_roundtrip_error_at_most_one_exhaustive():
    """Every one of the 2^24 colours survives RGB -> YCbCr -> RGB within 1."""
    worst = 0
    for rgb in rgb_cube_slices():
        back = color.ycbcr_to_rgb(*color.rgb_to_ycbcr(rgb))
        worst = max(worst, int(np.abs(back.astype(np.int16) - rgb).max()))
    assert worst <= 1


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), h=st.integers(1, 40), w=st.integers(1, 40))
def test_roundtrip_error_at_most_one_random(seed, h, w):
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    ycc = color.rgb_to_ycbcr(rgb)
    assert ycc.dtype == np.uint8 and ycc.shape == (3, h, w)
    back = color.ycbcr_to_rgb(*ycc)
    assert back.dtype == np.uint8 and back.shape == (h, w, 3)
    assert np.abs(back.astype(np.int16) - rgb).max() <= 1


def test_forward_matches_t871():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    want = np.clip(np.rint(ref_rgb_to_ycbcr(rgb)), 0, 255)
    assert np.abs(color.rgb_to_ycbcr(rgb).astype(int) - want).max() <= 1


def test_inverse_matches_t871():
    rng = np.random.default_rng(2)
    y, cb, cr = rng.integers(0, 256, (3, 64, 64), dtype=np.uint8)
    want = np.clip(np.rint(ref_ycbcr_to_rgb(y, cb, cr)), 0, 255)
    assert np.abs(color.ycbcr_to_rgb(y, cb, cr).astype(int) - want).max() <= 1


def test_inverse_clips_to_uint8_range():
    y = np.array([[0, 255]], np.uint8)
    cb = np.array([[0, 255]], np.uint8)
    cr = np.array([[0, 255]], np.uint8)
    out = color.ycbcr_to_rgb(y, cb, cr)
    assert out.dtype == np.uint8
    # Y=0 with minimal chroma: R and B far below 0, G = 0.344*128 + 0.714*128.
    assert out[0, 0].tolist() == [0, 135, 0]
    # Y=255 with maximal chroma: R and B far above 255, G = 255 - 1.058*127.
    assert out[0, 1, 0] == 255 and out[0, 1, 2] == 255 and out[0, 1, 1] == 121


def test_gray_maps_to_neutral_chroma():
    v = np.arange(256, dtype=np.uint8)
    gray = np.stack([v, v, v], axis=-1)[None]       # 1 x 256 x 3
    y, cb, cr = color.rgb_to_ycbcr(gray)
    np.testing.assert_array_equal(y[0], v)
    assert (cb == 128).all() and (cr == 128).all()
    np.testing.assert_array_equal(color.ycbcr_to_rgb(y, cb, cr), gray)


def test_primaries():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [0, 0, 0], [255, 255, 255]]], np.uint8)
    y, cb, cr = color.rgb_to_ycbcr(rgb)
    np.testing.assert_array_equal(y[0], [76, 150, 29, 0, 255])
    assert cr[0, 0] == 255 and cb[0, 2] == 255       # 255.5 clipped
    assert cb[0, 0] < 128 and cr[0, 1] < 128 and cr[0, 2] < 128


# ---------------------------------------------------------------- resampling

def ref_upsample(p):
    """out[y, x] = (9 a + 3 b + 3 c + d + 8) >> 4: a the chroma sample under
    (y, x), b / c its vertical / horizontal neighbour on the side of (y, x),
    d the diagonal one; indices clamped at the edges."""
    h, w = p.shape
    p = p.astype(np.int64)
    out = np.empty((2 * h, 2 * w), np.int64)
    for yy in range(2 * h):
        i = yy // 2
        i2 = min(max(i + (1 if yy % 2 else -1), 0), h - 1)
        for xx in range(2 * w):
            j = xx // 2
            j2 = min(max(j + (1 if xx % 2 else -1), 0), w - 1)
            out[yy, xx] = (9 * p[i, j] + 3 * p[i2, j] + 3 * p[i, j2] + p[i2, j2] + 8) >> 4
    return out


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (5, 1), (4, 4), (7, 9)])
def test_upsample_matches_normative_filter(shape):
    rng = np.random.default_rng(shape[0] * 10 + shape[1])
    p = rng.integers(0, 256, shape, dtype=np.uint8)
    out = color.upsample_420(p)
    assert out.dtype == np.uint8 and out.shape == (2 * shape[0], 2 * shape[1])
    np.testing.assert_array_equal(out, ref_upsample(p))


def test_upsample_by_strips_is_the_whole_upsample():
    """The decoder converts colour strip by strip (bounded memory): any strip
    of rows, with its margin, gives exactly those rows of the whole plane."""
    p = np.random.default_rng(9).integers(0, 256, (9, 5), dtype=np.uint8)
    whole = color.upsample_420(p)
    for top in range(0, 18, 2):
        for bottom in range(top + 1, 19):
            np.testing.assert_array_equal(color.upsample_420_rows(p, top, bottom), whole[top:bottom])


@pytest.mark.parametrize("mode", [bitstream.YCBCR420, bitstream.YCBCR444])
def test_assembly_by_strips_is_the_whole_conversion(mode, monkeypatch):
    from blockcodec.codec import Geometry, _assemble
    geom = Geometry(width=13, height=37, mode=mode)
    rng = np.random.default_rng(mode)
    planes = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in geom.plane_shapes]
    y, cb, cr = planes
    if mode == bitstream.YCBCR420:
        cb, cr = color.upsample_420(cb), color.upsample_420(cr)
    whole = color.ycbcr_to_rgb(y, cb, cr)[:37, :13]
    for pixels in (13, 26, 13 * 9, 1 << 20):        # strips of 2, 2, 8 rows and one strip
        monkeypatch.setattr("blockcodec.codec.ASSEMBLE_PIXELS", pixels)
        np.testing.assert_array_equal(_assemble(planes, geom), whole)


@pytest.mark.parametrize("value", [0, 1, 127, 128, 200, 255])
@pytest.mark.parametrize("shape", [(1, 1), (1, 8), (8, 1), (8, 8), (5, 13)])
def test_upsample_of_constant_is_constant(shape, value):
    out = color.upsample_420(np.full(shape, value, np.uint8))
    assert out.shape == (2 * shape[0], 2 * shape[1])
    assert (out == value).all()


@pytest.mark.parametrize("value", [0, 77, 255])
def test_downsample_of_constant_is_constant(value):
    out = color.downsample_420(np.full((6, 10), value, np.uint8))
    assert out.shape == (3, 5) and out.dtype == np.uint8
    assert (out == value).all()


def test_downsample_is_rounded_mean():
    rng = np.random.default_rng(3)
    p = rng.integers(0, 256, (8, 12), dtype=np.uint8)
    s = p.astype(int).reshape(4, 2, 6, 2).sum(axis=(1, 3))
    np.testing.assert_array_equal(color.downsample_420(p), (s + 2) >> 2)
    # No uint8 overflow at the top of the range.
    np.testing.assert_array_equal(color.downsample_420(np.full((2, 2), 255, np.uint8)), [[255]])


@pytest.mark.parametrize("seed", range(5))
def test_downsample_of_upsample_of_smooth_data_is_close(seed):
    p = smooth_image(32, 48, 1, seed)
    back = color.downsample_420(color.upsample_420(p))
    assert back.shape == p.shape
    assert np.abs(back.astype(int) - p).max() <= 2
    assert np.abs(back.astype(int) - p).mean() < 0.3


def test_upsample_preserves_linear_ramps_in_the_interior():
    ramp = (np.arange(16, dtype=np.uint8) * 8)[None, :].repeat(4, axis=0)   # 0, 8, ..., 120
    up = color.upsample_420(ramp)[:, 1:-1].astype(int)
    # A monotone ramp stays monotone and never overshoots.
    d = np.diff(up[0])
    assert (d >= 0).all()
    assert up.min() >= 0 and up.max() <= 120


def test_studio_luma_known_values():
    rgb = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255],
                     [120, 132, 124], [105, 141, 117]]], dtype=np.uint8)
    # 16 + 65.481 = 81.48, 16 + 128.553 = 144.55, 16 + 24.966 = 40.97; the last two
    # are exact ties at 125.5 and round up.
    assert color.rgb_to_studio_luma(rgb).tolist() == [[16, 235, 81, 145, 41, 126, 126]]
