"""Working memory that scales (issue 13): the large stages of encode and
decode hold a few bytes per pixel or coefficient beyond their inputs and
outputs, plus a fixed amount, measured with tracemalloc (numpy buffers).
benchmarks/memory_scaling.py measures whole processes up to 24 MP."""
from __future__ import annotations

import tracemalloc

import numpy as np

from blockcodec import entropy
from blockcodec.codec import YCBCR420, Codec, Geometry, _assemble

MIB = 1 << 20


def _peak(fn):
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _coefs(n_blocks: int) -> np.ndarray:
    rng = np.random.default_rng(3)
    c = np.zeros((n_blocks, 64), np.int16)
    c[:, 0] = rng.integers(-300, 300, n_blocks)
    c[:, 1:6] = rng.laplace(0, 2, (n_blocks, 5)).round()
    c[::97, 20] = 40          # a few late coefficients and escapes
    return c


def test_entropy_pass_holds_about_two_bytes_a_coefficient():
    n_rows, n_cols = 256, 256                      # 4 Mi coefficients, 8 MiB of int16
    coefs = _coefs(n_rows * n_cols)
    n = coefs.size
    tables = entropy.default_tables()

    def enc():
        sink = entropy.Encoder(tables)
        entropy.code_plane(sink, coefs, n_rows, n_cols, False, True, 50)
        entropy.code_end(sink)
        return sink.finish()
    payload, peak = _peak(enc)
    # Fixed: the adapted tables (about 8 MB) and chunk temporaries; then the
    # capped magnitudes and signs (2 bytes a coefficient) and per-block arrays.
    # The zigzag int32 copies once took 12 bytes a coefficient.
    assert peak < 4 * n + 16 * MIB, peak / n

    def dec():
        sink = entropy.Decoder(tables, payload)
        out = entropy.code_plane(sink, None, n_rows, n_cols, False, True, 50)
        entropy.code_end(sink)
        return out
    out, peak = _peak(dec)
    np.testing.assert_array_equal(out, coefs)
    assert peak < 6 * n + 16 * MIB, peak / n      # the int16 output itself is 2 of these


def test_colour_conversion_runs_in_strips():
    rng = np.random.default_rng(4)
    h, w = 1000, 2000
    img = rng.integers(0, 256, (h, w, 3), np.uint8)
    geom = Geometry(w, h, YCBCR420)
    planes, peak = _peak(lambda: Codec._split(img, geom))
    assert peak < 2 * h * w + 12 * MIB, peak / (h * w)    # the planes: 1.5 bytes a pixel
    rgb, peak = _peak(lambda: _assemble(planes, geom))
    assert rgb.shape == img.shape
    assert peak < 4 * h * w + 12 * MIB, peak / (h * w)    # the image: 3 bytes a pixel
