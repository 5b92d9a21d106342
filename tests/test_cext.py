"""The C core against a float64 numpy reference, and its argument checking.

Specification:
  * ``fdct_quantize`` is the orthonormal 8x8 DCT-II followed by dead-zone
    quantization ``sign(X) floor(|X| / step + rounding / 256)``, accurate to
    within one quantization level of the float computation;
  * ``reconstruct`` is ``clip(pred + round(IDCT(coef * qtable)), 0, 255)``
    within 1 of the float computation, and *exactly* the integer
    ``dequant_idct`` residual added to the prediction and clamped: the
    decoder's path is exact integer arithmetic, reproducible bit for bit;
  * ``gather_blocks`` / ``scatter_blocks`` copy 8x8 blocks out of and into a
    plane; ``gather_contexts`` builds 24x24 causal contexts, masking the five
    non-causal blocks and missing neighbours with ``fill``;
  * ``planar_predict`` is the planar rule of blockcodec.predictors.classical;
  * every entry point checks every buffer (type, element count, contiguity,
    writability) and every index, raising TypeError / ValueError /
    IndexError, never crashing.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from blockcodec import _cext
from blockcodec.predictors.classical import planar_reference

N = 8
_k = np.arange(N)[:, None]
_n = np.arange(N)[None, :]
DCT = np.sqrt(2.0 / N) * np.cos((2 * _n + 1) * _k * np.pi / (2 * N))
DCT[0] /= np.sqrt(2.0)                      # orthonormal DCT-II matrix, DCT[k, n]


def ref_fdct(blocks: np.ndarray) -> np.ndarray:
    """float64 orthonormal 2-D DCT of [n, 64] pixel blocks -> [n, 64] natural order (u * 8 + v)."""
    x = blocks.reshape(-1, 8, 8).astype(np.float64)
    return (DCT @ x @ DCT.T).reshape(-1, 64)


def ref_idct(coefs: np.ndarray) -> np.ndarray:
    c = coefs.reshape(-1, 8, 8).astype(np.float64)
    return (DCT.T @ c @ DCT).reshape(-1, 64)


def fdct_quantize(residual, qtable, rounding):
    residual = np.ascontiguousarray(residual, np.int16)
    out = np.empty(residual.shape, np.int16)
    _cext.fdct_quantize(residual, np.ascontiguousarray(qtable, np.uint16),
                        np.ascontiguousarray(rounding, np.uint16), out)
    return out


def reconstruct(coef, qtable, pred):
    out = np.empty(pred.shape, np.uint8)
    _cext.reconstruct(np.ascontiguousarray(coef, np.int16), np.ascontiguousarray(qtable, np.uint16),
                      np.ascontiguousarray(pred, np.uint8), out)
    return out


def dequant_idct(coef, qtable):
    out = np.empty(np.shape(coef), np.int32)
    _cext.dequant_idct(np.ascontiguousarray(coef, np.int16), np.ascontiguousarray(qtable, np.uint16), out)
    return out


ONES = np.ones(64, np.uint16)
HALF = np.full(64, 128, np.uint16)


def random_residuals(rng, n, smooth=False):
    if smooth:
        base = rng.integers(-255, 256, (n, 1, 1))
        gy = rng.integers(-12, 13, (n, 1, 1))
        gx = rng.integers(-12, 13, (n, 1, 1))
        y, x = np.mgrid[0:8, 0:8]
        r = base + gy * y + gx * x
        return np.clip(r, -255, 255).reshape(n, 64).astype(np.int16)
    return rng.integers(-255, 256, (n, 64)).astype(np.int16)


def test_geometry_constants_match_the_python_side():
    """cext/geometry.h names the block and context sizes once for the C core;
    the predictors' CONTEXT must be the same number."""
    from blockcodec.predictors import base
    assert _cext.DCTSIZE == N == 8
    assert _cext.CONTEXT == base.CONTEXT == 3 * _cext.DCTSIZE


# ---------------------------------------------------------------- transform

@pytest.mark.parametrize("smooth", [False, True])
def test_fdct_matches_float_dct(smooth):
    rng = np.random.default_rng(1)
    res = random_residuals(rng, 300, smooth)
    res[:4] = np.array([255, -255, 0, 1])[:, None]   # flat blocks, including the extremes
    got = fdct_quantize(res, ONES, HALF)
    want = np.rint(ref_fdct(res))
    assert np.abs(got - want).max() <= 1
    # Flat blocks: DC = 8 * value exactly, no AC.
    np.testing.assert_array_equal(got[0], [2040] + [0] * 63)
    np.testing.assert_array_equal(got[1], [-2040] + [0] * 63)
    np.testing.assert_array_equal(got[2], 0)


@pytest.mark.parametrize("step", [1, 2, 7, 16, 100, 4096])
@pytest.mark.parametrize("offset", [0, 64, 84, 128, 200, 255])
def test_quantizer_is_dead_zone_rounding(step, offset):
    rng = np.random.default_rng(step * 1000 + offset)
    res = random_residuals(rng, 100)
    qt = np.full(64, step, np.uint16)
    rnd = np.full(64, offset, np.uint16)
    got = fdct_quantize(res, qt, rnd)
    x = ref_fdct(res)
    want = np.sign(x) * np.floor(np.abs(x) / step + offset / 256)
    assert np.abs(got - want).max() <= 1
    # Nearly symmetric: negating the residual negates the coefficients (the
    # integer transform rounds ties upward, so allow one level).
    assert np.abs(fdct_quantize(-res, qt, rnd) + got).max() <= 1


def test_quantizer_rounding_is_monotone_in_offset():
    rng = np.random.default_rng(3)
    res = random_residuals(rng, 100)
    qt = np.full(64, 5, np.uint16)
    prev = np.abs(fdct_quantize(res, qt, np.zeros(64, np.uint16)))
    for off in (32, 88, 128, 192, 256):
        cur = np.abs(fdct_quantize(res, qt, np.full(64, off, np.uint16)))
        assert (cur >= prev).all()
        prev = cur


def test_per_coefficient_tables_apply_per_position():
    rng = np.random.default_rng(4)
    res = random_residuals(rng, 50)
    qt = rng.integers(1, 60, 64).astype(np.uint16)
    rnd = rng.integers(0, 257, 64).astype(np.uint16)
    got = fdct_quantize(res, qt, rnd)
    x = ref_fdct(res)
    want = np.sign(x) * np.floor(np.abs(x) / qt + rnd / 256)
    assert np.abs(got - want).max() <= 1


def test_reconstruct_matches_float_reference():
    rng = np.random.default_rng(5)
    n = 400
    qt = rng.integers(1, 40, 64).astype(np.uint16)
    coef = np.rint(rng.laplace(0, 3, (n, 64))).astype(np.int16)
    coef[:, 0] = rng.integers(-2040 // 40, 2040 // 40, n)
    pred = rng.integers(0, 256, (n, 64)).astype(np.uint8)
    got = reconstruct(coef, qt, pred)
    deq = np.clip(coef.astype(np.int64) * qt, -_cext.DEQUANT_LIMIT, _cext.DEQUANT_LIMIT)
    want = np.clip(pred + np.rint(ref_idct(deq)), 0, 255)
    assert np.abs(got.astype(int) - want).max() <= 1
    # Exactly reproducible, and independent of batching.
    np.testing.assert_array_equal(reconstruct(coef, qt, pred), got)
    for i in (0, 17, n - 1):
        np.testing.assert_array_equal(reconstruct(coef[i:i + 1], qt, pred[i:i + 1]), got[i:i + 1])


def test_reconstruct_is_exactly_prediction_plus_dequant_idct():
    rng = np.random.default_rng(6)
    n = 300
    qt = rng.integers(1, 300, 64).astype(np.uint16)
    coef = rng.integers(-200, 201, (n, 64)).astype(np.int16)
    coef[rng.random((n, 64)) < 0.7] = 0
    coef[:5] = 0                                      # all-zero blocks: pure prediction
    pred = rng.integers(0, 256, (n, 64)).astype(np.uint8)
    res = dequant_idct(coef, qt)
    np.testing.assert_array_equal(reconstruct(coef, qt, pred), np.clip(pred.astype(np.int64) + res, 0, 255))
    np.testing.assert_array_equal(reconstruct(coef[:5], qt, pred[:5]), pred[:5])


def test_dequant_idct_is_exact_integer():
    rng = np.random.default_rng(7)
    qt = rng.integers(1, 50, 64).astype(np.uint16)
    coef = rng.integers(-100, 101, (200, 64)).astype(np.int16)
    a = dequant_idct(coef, qt)
    b = dequant_idct(coef.copy(), qt.copy())
    assert a.dtype == np.int32
    np.testing.assert_array_equal(a, b)
    for i in (0, 99, 199):
        np.testing.assert_array_equal(dequant_idct(coef[i:i + 1], qt), a[i:i + 1])
    assert np.abs(a - np.rint(ref_idct(coef.astype(np.int64) * qt))).max() <= 1


def test_dequant_idct_known_values():
    # A DC-only block with coefficient 8k is a flat residual of exactly k,
    # over the whole residual range.
    k = np.arange(-255, 256)
    coef = np.zeros((len(k), 64), np.int16)
    coef[:, 0] = 8 * k
    out = dequant_idct(coef, ONES)
    np.testing.assert_array_equal(out, np.repeat(k[:, None], 64, axis=1))
    # The same through the quantizer step: coefficient k with step 8.
    coef[:, 0] = k
    out = dequant_idct(coef, np.full(64, 8, np.uint16))
    np.testing.assert_array_equal(out, np.repeat(k[:, None], 64, axis=1))
    # All-zero coefficients: zero residual.
    np.testing.assert_array_equal(dequant_idct(np.zeros(64, np.int16), ONES), 0)


def test_dequantization_is_clamped_not_overflowed():
    coef = np.zeros((2, 64), np.int16)
    coef[0, 0] = 32767
    coef[1, 0] = -32767
    big = dequant_idct(coef, np.full(64, 4096, np.uint16))        # 32767 * 4096 overflows int16/int32 products
    at_limit = dequant_idct(np.array([[_cext.DEQUANT_LIMIT] + [0] * 63, [-_cext.DEQUANT_LIMIT] + [0] * 63],
                                     np.int16), ONES)
    np.testing.assert_array_equal(big, at_limit)
    assert (big[0] > 0).all() and (big[1] < 0).all()
    pred = np.full((2, 64), 128, np.uint8)
    np.testing.assert_array_equal(reconstruct(coef, np.full(64, 4096, np.uint16), pred), [[255] * 64, [0] * 64])


def test_forward_then_inverse_recovers_residual():
    rng = np.random.default_rng(8)
    res = random_residuals(rng, 200)
    q = fdct_quantize(res, ONES, HALF)
    back = dequant_idct(q, ONES)
    assert np.abs(back - res).max() <= 2
    assert np.abs(back - res).mean() < 0.5


# --------------------------------------------------------------- block glue

def all_positions(n_rows, n_cols):
    r, c = np.divmod(np.arange(n_rows * n_cols, dtype=np.int32), np.int32(n_cols))
    return r.astype(np.int32), c.astype(np.int32)


def test_gather_blocks_matches_slicing_and_scatter_inverts_it():
    rng = np.random.default_rng(9)
    h, w = 40, 56
    plane = rng.integers(0, 256, (h, w), dtype=np.uint8)
    rows, cols = all_positions(h // 8, w // 8)
    perm = rng.permutation(len(rows))
    rows, cols = np.ascontiguousarray(rows[perm]), np.ascontiguousarray(cols[perm])
    out = np.empty((len(rows), 64), np.uint8)
    _cext.gather_blocks(plane, w, h, rows, cols, out)
    for i, (r, c) in enumerate(zip(rows, cols)):
        np.testing.assert_array_equal(out[i].reshape(8, 8), plane[8 * r:8 * r + 8, 8 * c:8 * c + 8])
    back = np.zeros_like(plane)
    _cext.scatter_blocks(back, w, h, rows, cols, out)
    np.testing.assert_array_equal(back, plane)


def test_scatter_only_touches_its_blocks():
    plane = np.full((24, 32), 7, np.uint8)
    src = np.arange(128, dtype=np.uint8).reshape(2, 64)
    _cext.scatter_blocks(plane, 32, 24, np.array([0, 2], np.int32), np.array([3, 1], np.int32), src)
    np.testing.assert_array_equal(plane[0:8, 24:32], src[0].reshape(8, 8))
    np.testing.assert_array_equal(plane[16:24, 8:16], src[1].reshape(8, 8))
    mask = np.ones_like(plane, bool)
    mask[0:8, 24:32] = mask[16:24, 8:16] = False
    assert (plane[mask] == 7).all()


def test_empty_block_lists_are_fine():
    plane = np.zeros((16, 16), np.uint8)
    e = np.zeros(0, np.int32)
    _cext.gather_blocks(plane, 16, 16, e, e, np.zeros(0, np.uint8))
    _cext.scatter_blocks(plane, 16, 16, e, e, np.zeros(0, np.uint8))
    _cext.gather_contexts(plane, 16, 16, e, e, 128, np.zeros(0, np.uint8), np.zeros(0, np.uint8))
    _cext.fdct_quantize(np.zeros(0, np.int16), ONES, HALF, np.zeros(0, np.int16))
    _cext.reconstruct(np.zeros(0, np.int16), ONES, np.zeros(0, np.uint8), np.zeros(0, np.uint8))


def ref_context(plane, r, c, fill):
    """The causal 24x24 context of block (r, c): top-left, top, top-right and
    left blocks where they exist, `fill` everywhere else."""
    n_cols = plane.shape[1] // 8
    ctx = np.full((24, 24), fill, np.uint8)
    avail = np.zeros(4, np.uint8)
    for j, (dr, dc) in enumerate(((-1, -1), (-1, 0), (-1, 1), (0, -1))):
        rr, cc = r + dr, c + dc
        if rr >= 0 and 0 <= cc < n_cols:
            avail[j] = 1
            ctx[(dr + 1) * 8:(dr + 2) * 8, (dc + 1) * 8:(dc + 2) * 8] = plane[rr * 8:rr * 8 + 8, cc * 8:cc * 8 + 8]
    return ctx, avail


@pytest.mark.parametrize("fill", [128, 0, 7, 255])
@pytest.mark.parametrize("shape", [(8, 8), (8, 40), (40, 8), (32, 48)])
def test_gather_contexts(shape, fill):
    rng = np.random.default_rng(10)
    h, w = shape
    plane = rng.integers(0, 256, shape, dtype=np.uint8)
    plane[plane == fill] = (fill + 1) % 256     # so that masking is visible
    rows, cols = all_positions(h // 8, w // 8)
    n = len(rows)
    ctx = np.empty((n, 24, 24), np.uint8)
    avail = np.empty((n, 4), np.uint8)
    _cext.gather_contexts(plane, w, h, rows, cols, fill, ctx, avail)
    n_cols = w // 8
    for i, (r, c) in enumerate(zip(rows.tolist(), cols.tolist())):
        want_ctx, want_avail = ref_context(plane, r, c, fill)
        np.testing.assert_array_equal(ctx[i], want_ctx, err_msg=f"block {(r, c)}")
        np.testing.assert_array_equal(avail[i], want_avail)
        # The five non-causal blocks (centre, right, bottom row) are always masked.
        assert (ctx[i, 8:16, 8:24] == fill).all()
        assert (ctx[i, 16:24, :] == fill).all()
        # Borders: top row has no top-left/top/top-right; left column no
        # top-left/left; right column no top-right.
        if r == 0:
            assert avail[i, 0] == avail[i, 1] == avail[i, 2] == 0
        if c == 0:
            assert avail[i, 0] == avail[i, 3] == 0
        if c == n_cols - 1:
            assert avail[i, 2] == 0
        if r > 0 and 0 < c < n_cols - 1:
            assert avail[i].tolist() == [1, 1, 1, 1]


def test_planar_predict_matches_the_numpy_rule():
    """Every availability pattern, random references, extreme values."""
    rng = np.random.default_rng(3)
    avail = np.array([[(m >> j) & 1 for j in range(4)] for m in range(16)] * 40, np.uint8)
    ctx = rng.integers(0, 256, (len(avail), 24, 24)).astype(np.uint8)
    ctx[:16] = 255
    ctx[16:32] = 0
    out = np.empty((len(avail), 64), np.uint8)
    _cext.planar_predict(ctx, avail, 128, out)
    np.testing.assert_array_equal(out.reshape(-1, 8, 8), planar_reference(ctx, avail))


# ------------------------------------------------------- argument checking

ERRORS = (TypeError, ValueError, IndexError)


def valid_calls():
    """name -> (function, dict of valid arguments in order, names of outputs)."""
    n = 3
    return {
        "fdct_quantize": (_cext.fdct_quantize, dict(
            residual=np.zeros(n * 64, np.int16), qtable=np.ones(64, np.uint16),
            rounding=np.full(64, 128, np.uint16), out=np.zeros(n * 64, np.int16)), ("out",)),
        "reconstruct": (_cext.reconstruct, dict(
            coef=np.zeros(n * 64, np.int16), qtable=np.ones(64, np.uint16),
            pred=np.zeros(n * 64, np.uint8), out=np.zeros(n * 64, np.uint8)), ("out",)),
        "dequant_idct": (_cext.dequant_idct, dict(
            coef=np.zeros(n * 64, np.int16), qtable=np.ones(64, np.uint16),
            out=np.zeros(n * 64, np.int32)), ("out",)),
        "gather_blocks": (_cext.gather_blocks, dict(
            plane=np.zeros(16 * 24, np.uint8), width=24, height=16, rows=np.array([0, 1, 1], np.int32),
            cols=np.array([0, 2, 1], np.int32), out=np.zeros(n * 64, np.uint8)), ("out",)),
        "scatter_blocks": (_cext.scatter_blocks, dict(
            plane=np.zeros(16 * 24, np.uint8), width=24, height=16, rows=np.array([0, 1, 1], np.int32),
            cols=np.array([0, 2, 1], np.int32), src=np.zeros(n * 64, np.uint8)), ("plane",)),
        "gather_contexts": (_cext.gather_contexts, dict(
            plane=np.zeros(16 * 24, np.uint8), width=24, height=16, rows=np.array([0, 1, 1], np.int32),
            cols=np.array([0, 2, 1], np.int32), fill=128, out=np.zeros(n * 576, np.uint8),
            avail=np.zeros(n * 4, np.uint8)), ("out", "avail")),
        "planar_predict": (_cext.planar_predict, dict(
            contexts=np.zeros(n * 576, np.uint8), avail=np.zeros(n * 4, np.uint8), fill=128,
            out=np.zeros(n * 64, np.uint8)), ("out",)),
    }


def call(name, **changes):
    fn, args, _ = valid_calls()[name]
    args.update(changes)
    return fn(*args.values())


def array_args(name):
    _, args, _ = valid_calls()[name]
    return [k for k, v in args.items() if isinstance(v, np.ndarray)]


CASES = [(name, arg) for name in valid_calls() for arg in array_args(name)]
SIBLING = {np.dtype(np.int16): np.uint16, np.dtype(np.uint16): np.int16, np.dtype(np.uint8): np.int8,
           np.dtype(np.int32): np.uint32}


@pytest.mark.parametrize("name", list(valid_calls()))
def test_valid_calls_succeed(name):
    call(name)


@pytest.mark.parametrize("name, arg", CASES)
def test_wrong_dtype_refused(name, arg):
    good = valid_calls()[name][1][arg]
    for dtype in (np.float64, np.int64, SIBLING[good.dtype], np.float32):
        bad = np.zeros(good.size, dtype)
        with pytest.raises(TypeError):
            call(name, **{arg: bad})
    if good.dtype.itemsize > 1:
        with pytest.raises(TypeError):
            call(name, **{arg: good.astype(good.dtype.newbyteorder(">"))})


@pytest.mark.parametrize("name, arg", CASES)
def test_non_buffers_refused(name, arg):
    good = valid_calls()[name][1][arg]
    for bad in (good.tolist(), None, 3):
        with pytest.raises(TypeError):
            call(name, **{arg: bad})


@pytest.mark.parametrize("name, arg", CASES)
def test_wrong_length_refused(name, arg):
    good = valid_calls()[name][1][arg]
    for size in (good.size - 1, good.size + 1, good.size + 64):
        bad = np.zeros(size, good.dtype)
        if arg in ("rows", "cols") and size > good.size:
            bad[:] = 0   # valid positions, but rows/cols lengths disagree with each other / out
        with pytest.raises(ERRORS):
            call(name, **{arg: bad})


@pytest.mark.parametrize("name, arg", CASES)
def test_non_contiguous_refused(name, arg):
    good = valid_calls()[name][1][arg]
    strided = np.zeros(2 * good.size, good.dtype)[::2]
    assert strided.size == good.size and not strided.flags.c_contiguous
    with pytest.raises(TypeError):
        call(name, **{arg: strided})


@pytest.mark.parametrize("name", list(valid_calls()))
def test_read_only_outputs_refused_and_inputs_accepted(name):
    _, args, outputs = valid_calls()[name]
    for arg in array_args(name):
        a = valid_calls()[name][1][arg].copy()
        a.setflags(write=False)
        if arg in outputs:
            with pytest.raises(TypeError):
                call(name, **{arg: a})
        else:
            call(name, **{arg: a})          # read-only inputs are fine (e.g. np.frombuffer tables)
    for arg in outputs:
        with pytest.raises(TypeError):
            call(name, **{arg: bytes(valid_calls()[name][1][arg].nbytes)})


@pytest.mark.parametrize("name", ["gather_blocks", "scatter_blocks", "gather_contexts"])
@pytest.mark.parametrize("rows, cols", [([2], [0]), ([0], [3]), ([-1], [0]), ([0], [-1]),
                                        ([2**31 - 1], [0]), ([0], [-2**31]), ([0, 5], [0, 0])])
def test_out_of_range_block_positions_refused(name, rows, cols):
    n = len(rows)
    changes = dict(rows=np.array(rows, np.int32), cols=np.array(cols, np.int32))
    if name == "gather_contexts":
        changes.update(out=np.zeros(n * 576, np.uint8), avail=np.zeros(n * 4, np.uint8))
    elif name == "gather_blocks":
        changes.update(out=np.zeros(n * 64, np.uint8))
    else:
        changes.update(src=np.zeros(n * 64, np.uint8))
    with pytest.raises(IndexError):
        call(name, **changes)


@pytest.mark.parametrize("name", ["gather_blocks", "scatter_blocks", "gather_contexts"])
@pytest.mark.parametrize("width, height", [(20, 16), (24, 12), (12, 32), (0, 0), (-24, -16), (384, 1),
                                           (48, 16), (16, 48), (8, 8)])
def test_bad_plane_geometry_refused(name, width, height):
    # The plane has 384 = 24 * 16 elements: every pair here either is not
    # multiples of 8 or does not match the buffer.
    with pytest.raises(ValueError):
        call(name, width=width, height=height, rows=np.zeros(3, np.int32), cols=np.zeros(3, np.int32))


@pytest.mark.parametrize("name", ["gather_blocks", "scatter_blocks", "gather_contexts"])
def test_rows_cols_length_mismatch_refused(name):
    with pytest.raises(ValueError):
        call(name, cols=np.zeros(2, np.int32))


@pytest.mark.parametrize("value", [256, -256, 300, 32767, -32768])
def test_residual_out_of_range_refused(value):
    res = np.zeros(3 * 64, np.int16)
    res[100] = value
    out = np.full(3 * 64, 99, np.int16)
    with pytest.raises(ValueError, match="-255..255"):
        call("fdct_quantize", residual=res, out=out)
    assert (out == 99).all()                 # nothing written on refusal
    res[100] = np.sign(value) * 255
    call("fdct_quantize", residual=res, out=out)


def test_qtable_zero_refused_by_quantizer():
    qt = np.ones(64, np.uint16)
    qt[37] = 0
    with pytest.raises(ValueError):
        call("fdct_quantize", qtable=qt)


def test_rounding_over_256_refused():
    rnd = np.full(64, 128, np.uint16)
    rnd[5] = 257
    with pytest.raises(ValueError):
        call("fdct_quantize", rounding=rnd)


@pytest.mark.parametrize("name", ["reconstruct", "dequant_idct"])
def test_qtable_zero_refused_by_dequantizer(name):
    qt = np.ones(64, np.uint16)
    qt[0] = 0
    with pytest.raises(ValueError):
        call(name, qtable=qt)


@pytest.mark.parametrize("fill", [-1, 256, 1000])
@pytest.mark.parametrize("name", ["gather_contexts", "planar_predict"])
def test_fill_out_of_range_refused(fill, name):
    with pytest.raises(ValueError):
        call(name, fill=fill)


def test_length_not_multiple_of_64_refused():
    for name, arg in (("fdct_quantize", "residual"), ("reconstruct", "coef"), ("dequant_idct", "coef")):
        with pytest.raises(ValueError):
            call(name, **{arg: np.zeros(100, np.int16)})


def test_multidimensional_contiguous_arrays_accepted():
    res = np.zeros((3, 8, 8), np.int16)
    out = np.zeros((3, 64), np.int16)
    _cext.fdct_quantize(res, ONES.reshape(8, 8), HALF, out)


@pytest.mark.parametrize("name", ["gather_blocks", "scatter_blocks", "gather_contexts"])
def test_overflowing_plane_geometry_refused_without_crash(name):
    script = textwrap.dedent(f"""
        import numpy as np
        from blockcodec import _cext
        plane = np.zeros(64, np.uint8)
        w, h = (1 << 61) + 8, 8          # w * h wraps around to 64 in 64-bit arithmetic
        rows = np.zeros(1, np.int32)
        cols = np.array([1], np.int32)   # a valid-looking block position (8 < w)
        try:
            if "{name}" == "gather_contexts":
                _cext.gather_contexts(plane, w, h, rows, cols, 128, np.zeros(576, np.uint8),
                                      np.zeros(4, np.uint8))
            else:
                getattr(_cext, "{name}")(plane, w, h, rows, cols, np.zeros(64, np.uint8))
        except (ValueError, IndexError, OverflowError) as exc:
            print("REFUSED", type(exc).__name__)
        else:
            print("ACCEPTED")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"crashed with return code {proc.returncode}: {proc.stderr[-500:]}"
    assert "REFUSED" in proc.stdout
