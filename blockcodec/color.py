"""Colour conversion and chroma resampling.

RGB <-> YCbCr is JPEG's full-range transform (ITU-T T.871).  The inverse
transform and the chroma upsampler run in the decoder, so they are integer
fixed-point: the decoded pixels are a function of the bitstream alone, with no
float rounding that could differ between machines.
"""
from __future__ import annotations

import numpy as np

_FRAC = 16
_HALF = 1 << (_FRAC - 1)

# Forward coefficients (x 2^16, rounded).  Encoder-only, but integer anyway so
# that encoding is reproducible everywhere too.
_FWD = np.array(
    [
        [19595, 38470, 7471],     # Y  =  0.299    R + 0.587    G + 0.114    B
        [-11059, -21709, 32768],  # Cb = -0.168736 R - 0.331264 G + 0.5      B + 128
        [32768, -27439, -5329],   # Cr =  0.5      R - 0.418688 G - 0.081312 B + 128
    ],
    dtype=np.int64,
)
# Inverse coefficients (x 2^16, rounded): normative, see docs/FORMAT.md.
_CR_R = 91881    # 1.402
_CB_G = -22554   # -0.344136
_CR_G = -46802   # -0.714136
_CB_B = 116130   # 1.772


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 RGB -> uint8 3xHxW planes (Y, Cb, Cr).

    In int32, one output plane at a time (every sum is below 2^25 in
    magnitude, so nothing overflows and the result is the int64 matrix
    product's): about 20 bytes of temporaries a pixel, so callers convert
    large images in strips (``codec.Codec._split``)."""
    h, w = rgb.shape[:2]
    out = np.empty((3, h, w), np.uint8)
    channels = [rgb[..., i].astype(np.int32) for i in range(3)]
    acc = np.empty((h, w), np.int32)
    term = np.empty((h, w), np.int32)
    for i, coefs in enumerate(_FWD):
        np.multiply(channels[0], np.int32(coefs[0]), out=acc)
        for c, k in zip(channels[1:], coefs[1:]):
            np.multiply(c, np.int32(k), out=term)
            acc += term
        acc += np.int32(((128 << _FRAC) if i else 0) + _HALF)
        acc >>= _FRAC
        np.clip(acc, 0, 255, out=acc)
        out[i] = acc
    return out


def rgb_to_studio_luma(rgb: np.ndarray) -> np.ndarray:
    """Studio-range ITU-R BT.601 luma of a uint8 RGB image, rounded to uint8.

    Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 (range 16..235), MATLAB
    ``rgb2ycbcr``'s Y: how the grayscale artifact-removal benchmarks (LIVE1)
    were made, and so also one of the luma kinds the restoration networks
    train on.  Not the codec's luma, which is full range (``rgb_to_ycbcr``).
    Exact in integers (coefficients in thousandths), rounded half up.
    Checked against the shipped LIVE1 files: every live1_color pixel that is
    not an exact .5 tie converts to the live1_gray value; the 32 exact ties
    were rounded by floating-point noise there (27 down, 5 up), so 27 of 10.4
    million pixels differ by 1 and LIVE1 q10 PSNR moves by < 1e-5 dB.
    """
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[-1] != 3 or a.dtype != np.uint8:
        raise ValueError(f"expected a uint8 HxWx3 image, got {a.dtype} {a.shape}")
    c = a.astype(np.int64)
    num = 65481 * c[..., 0] + 128553 * c[..., 1] + 24966 * c[..., 2] + 16 * 255000
    return ((num + 127500) // 255000).astype(np.uint8)


def ycbcr_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
    """uint8 planes of equal shape -> uint8 HxWx3 RGB (normative)."""
    y = y.astype(np.int32)
    cb = cb.astype(np.int32) - 128
    cr = cr.astype(np.int32) - 128
    r = y + ((_CR_R * cr + _HALF) >> _FRAC)
    g = y + ((_CB_G * cb + _CR_G * cr + _HALF) >> _FRAC)
    b = y + ((_CB_B * cb + _HALF) >> _FRAC)
    out = np.empty(y.shape + (3,), np.uint8)
    for i, c in enumerate((r, g, b)):
        np.clip(c, 0, 255, out=c)
        out[..., i] = c
    return out


def downsample_420(plane: np.ndarray) -> np.ndarray:
    """Average 2x2 neighbourhoods (the plane has even dimensions)."""
    p = plane.astype(np.uint16)
    s = p[0::2, 0::2] + p[0::2, 1::2] + p[1::2, 0::2] + p[1::2, 1::2]
    return ((s + 2) >> 2).astype(np.uint8)


def _upsample_axis(p: np.ndarray, axis: int) -> np.ndarray:
    """Double one axis with the 3/4, 1/4 triangle filter, values scaled by 4.

    A 2x2-averaged chroma sample sits between two luma samples, so each output
    sample is 3/4 its nearest chroma sample plus 1/4 the next one over
    (edges replicate)."""
    n = p.shape[axis]
    prev = np.take(p, np.r_[0, np.arange(n - 1)], axis=axis)
    nxt = np.take(p, np.r_[np.arange(1, n), n - 1], axis=axis)
    even = 3 * p + prev
    odd = 3 * p + nxt
    out_shape = list(p.shape)
    out_shape[axis] = 2 * n
    out = np.empty(out_shape, np.int32)
    sl_even = [slice(None)] * p.ndim
    sl_odd = [slice(None)] * p.ndim
    sl_even[axis] = slice(0, None, 2)
    sl_odd[axis] = slice(1, None, 2)
    out[tuple(sl_even)] = even
    out[tuple(sl_odd)] = odd
    return out


def upsample_420(plane: np.ndarray) -> np.ndarray:
    """Double both dimensions of a chroma plane (normative integer filter):
    out = (9 a + 3 b + 3 c + d + 8) >> 4 over the four nearest chroma samples."""
    p = plane.astype(np.int32)
    t = _upsample_axis(_upsample_axis(p, 0), 1)
    return ((t + 8) >> 4).astype(np.uint8)


def upsample_420_rows(plane: np.ndarray, top: int, bottom: int) -> np.ndarray:
    """Rows ``top`` (even) .. ``bottom - 1`` of ``upsample_420(plane)``, from
    only the chroma rows they read: a strip with one row of margin each side,
    whose replicated edges fall outside the rows kept unless they are the
    plane's own."""
    lo, hi = max(top // 2 - 1, 0), min((bottom + 1) // 2 + 1, plane.shape[0])
    return upsample_420(plane[lo:hi])[top - 2 * lo: bottom - 2 * lo]
