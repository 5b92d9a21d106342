"""The entropy coder: lossless for any int16 coefficients, and its tables.

Specification:
  * ``entropy.code_plane`` with an ``Encoder`` then a ``Decoder`` returns the
    coefficients exactly, for any plane geometry (1x1, 1xN, Nx1, MxN block
    grids), luma or chroma, with or without DC prediction, for magnitudes up
    to 32767 (escapes);
  * several planes coded into one payload decode back in order;
  * the default tables have the shapes and dtypes of ``TABLE_SHAPES`` and
    no zero frequency; ``Tables.hash`` is a stable 4-byte digest of the
    frequencies; malformed tables are refused;
  * a ``Collector`` sees exactly the (table, context, symbol) triples the
    encoder codes.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockcodec import BlockcodecError, _cext, entropy

TABLES = entropy.default_tables()


def roundtrip(coefs, n_rows, n_cols, chroma=False, dc_prediction=True, tables=TABLES):
    enc = entropy.Encoder(tables)
    ret = entropy.code_plane(enc, coefs, n_rows, n_cols, chroma, dc_prediction)
    assert ret is coefs or np.array_equal(ret, coefs)
    payload = enc.finish()
    assert isinstance(payload, bytes) and len(payload) % 4 == 0
    dec = entropy.Decoder(tables, payload)
    out = entropy.code_plane(dec, None, n_rows, n_cols, chroma, dc_prediction)
    assert out.dtype == np.int16 and out.shape == (n_rows * n_cols, 64)
    return out, payload


def laplacian_coefs(rng, n_blocks, scale=3.0, sparsity=0.6):
    """Coefficients shaped like real ones: big DC, decaying AC, many zeros."""
    decay = np.exp(-np.arange(64) / 12.0)
    c = rng.laplace(0, 1, (n_blocks, 64)) * scale * decay * 4
    c[rng.random((n_blocks, 64)) < sparsity] = 0
    c[:, 0] = rng.integers(-250, 250, n_blocks)
    return np.rint(c).astype(np.int16)


GRIDS = [(1, 1), (1, 7), (7, 1), (3, 4), (5, 9), (2, 2)]


@pytest.mark.parametrize("dc_prediction", [False, True])
@pytest.mark.parametrize("chroma", [False, True])
@pytest.mark.parametrize("grid", GRIDS, ids=lambda g: f"{g[0]}x{g[1]}")
def test_roundtrip_typical_coefficients(grid, chroma, dc_prediction):
    rng = np.random.default_rng(hash((grid, chroma, dc_prediction)) % 2**32)
    coefs = laplacian_coefs(rng, grid[0] * grid[1])
    out, _ = roundtrip(coefs, *grid, chroma, dc_prediction)
    np.testing.assert_array_equal(out, coefs)


@pytest.mark.parametrize("dc_prediction", [False, True])
@pytest.mark.parametrize("grid", GRIDS, ids=lambda g: f"{g[0]}x{g[1]}")
def test_roundtrip_all_zero(grid, dc_prediction):
    coefs = np.zeros((grid[0] * grid[1], 64), np.int16)
    out, payload = roundtrip(coefs, *grid, False, dc_prediction)
    np.testing.assert_array_equal(out, coefs)
    assert len(payload) <= 16 + grid[0] * grid[1]      # zero blocks are nearly free


@pytest.mark.parametrize("dc_prediction", [False, True])
@pytest.mark.parametrize("chroma", [False, True])
def test_roundtrip_large_magnitudes(chroma, dc_prediction):
    """Escapes up to the int16 limit: AC anywhere in -32767..32767; DC too
    without DC prediction, and within +-16383 with it (the full-range DC
    difference has its own test below)."""
    rng = np.random.default_rng(11)
    n_rows, n_cols = 4, 5
    coefs = rng.integers(-32767, 32768, (n_rows * n_cols, 64)).astype(np.int16)
    coefs[rng.random(coefs.shape) < 0.3] = 0
    coefs[0, :] = 32767
    coefs[1, :] = -32767
    coefs[2, 1:] = [17, -17, 18, -18, 16, -16, 1, -1] * 7 + [0, 33, -33, 1000, -1000, 4095, -4096]
    if dc_prediction:
        coefs[:, 0] = np.clip(coefs[:, 0], -16383, 16383)
    out, _ = roundtrip(coefs, n_rows, n_cols, chroma, dc_prediction)
    np.testing.assert_array_equal(out, coefs)


@pytest.mark.parametrize("position", [0, 1, 5, 62, 63])
@pytest.mark.parametrize("value", [1, -1, 16, 17, -17, 18, 100, -32767, 32767])
def test_roundtrip_single_coefficient(position, value):
    coefs = np.zeros((3, 64), np.int16)
    coefs[1, entropy.ZIGZAG[position]] = value
    out, _ = roundtrip(coefs, 1, 3)
    np.testing.assert_array_equal(out, coefs)


def test_roundtrip_full_range_dc_with_dc_prediction():
    coefs = np.zeros((2, 64), np.int16)
    coefs[:, 0] = [-20000, 20000]
    out, _ = roundtrip(coefs, 1, 2, False, True)
    np.testing.assert_array_equal(out, coefs)


@settings(max_examples=25, deadline=None)
@given(n_rows=st.integers(1, 6), n_cols=st.integers(1, 6), chroma=st.booleans(),
       dc_prediction=st.booleans(), seed=st.integers(0, 2**32 - 1),
       scale=st.sampled_from([0.3, 3.0, 30.0, 3000.0]), sparsity=st.floats(0.0, 1.0))
def test_roundtrip_random(n_rows, n_cols, chroma, dc_prediction, seed, scale, sparsity):
    rng = np.random.default_rng(seed)
    coefs = np.clip(laplacian_coefs(rng, n_rows * n_cols, scale, sparsity).astype(np.int64) * (1 + int(scale > 100)),
                    -32767, 32767).astype(np.int16)
    out, _ = roundtrip(coefs, n_rows, n_cols, chroma, dc_prediction)
    np.testing.assert_array_equal(out, coefs)


def test_several_planes_share_one_payload():
    rng = np.random.default_rng(12)
    planes = [(laplacian_coefs(rng, 12), 3, 4, False), (laplacian_coefs(rng, 3), 1, 3, True),
              (laplacian_coefs(rng, 3), 3, 1, True)]
    enc = entropy.Encoder(TABLES)
    for c, r, k, chroma in planes:
        entropy.code_plane(enc, c, r, k, chroma, True)
    dec = entropy.Decoder(TABLES, enc.finish())
    for c, r, k, chroma in planes:
        np.testing.assert_array_equal(entropy.code_plane(dec, None, r, k, chroma, True), c)


def test_encoding_does_not_modify_input():
    rng = np.random.default_rng(13)
    coefs = laplacian_coefs(rng, 6)
    before = coefs.copy()
    roundtrip(coefs, 2, 3)
    np.testing.assert_array_equal(coefs, before)


def test_encoding_is_deterministic():
    rng = np.random.default_rng(14)
    coefs = laplacian_coefs(rng, 20)
    assert roundtrip(coefs, 4, 5)[1] == roundtrip(coefs.copy(), 4, 5)[1]


def test_smaller_coefficients_cost_fewer_bits():
    rng = np.random.default_rng(15)
    small = laplacian_coefs(rng, 30, scale=0.5, sparsity=0.9)
    big = laplacian_coefs(rng, 30, scale=20.0, sparsity=0.1)
    assert len(roundtrip(small, 5, 6)[1]) < len(roundtrip(big, 5, 6)[1])


def test_stage_bits_account_for_the_payload():
    rng = np.random.default_rng(16)
    coefs = laplacian_coefs(rng, 20, scale=30.0)
    enc = entropy.Encoder(TABLES)
    entropy.code_plane(enc, coefs, 4, 5, False, True)
    payload = enc.finish()
    assert {"eob", "dc", "ac", "sign"} <= set(enc.stage_bits)
    assert all(v >= 0 for v in enc.stage_bits.values())
    assert abs(sum(enc.stage_bits.values()) - 8 * len(payload)) <= 64


def test_decoder_refuses_partial_words():
    with pytest.raises(BlockcodecError):
        entropy.Decoder(TABLES, b"\0\0\0")


def test_code_blocks_roundtrip():
    """The hook for learned scales: per-coefficient table rows from outside."""
    rng = np.random.default_rng(17)
    n = 9
    coefs = laplacian_coefs(rng, n, scale=10.0)
    coefs[0, 5] = 32767
    coefs[1, 7] = -32767
    rows = rng.integers(0, entropy.TABLE_SHAPES["ac"][0], (n, 64))
    enc = entropy.Encoder(TABLES)
    entropy.code_blocks(enc, coefs, rows, "ac")
    dec = entropy.Decoder(TABLES, enc.finish())
    np.testing.assert_array_equal(entropy.code_blocks(dec, None, rows, "ac", n_blocks=n), coefs)


# ------------------------------------------------------------------- tables

def test_default_tables_shapes_and_dtypes():
    assert set(TABLES.freqs) == set(entropy.TABLE_SHAPES)
    for name, shape in entropy.TABLE_SHAPES.items():
        f = TABLES.freqs[name]
        assert f.shape == shape, name
        assert f.dtype == np.uint32, name
        assert (f > 0).all(), f"zero frequency in table {name!r}"
        assert TABLES.probs(name).shape == shape
    assert entropy.TABLE_SHAPES["eob"][1] == 65                  # EOB 0..64
    assert entropy.TABLE_SHAPES["dc"][1] == entropy.ALPHABET
    assert entropy.TABLE_SHAPES["ac"][1] == entropy.ALPHABET
    assert entropy.TABLE_SHAPES["esc"] == (1, entropy.ESC_LENGTHS)


def test_default_tables_are_cached_and_hash_is_stable():
    assert entropy.default_tables() is TABLES
    h = TABLES.hash
    assert isinstance(h, bytes) and len(h) == 4
    assert TABLES.hash == h
    copy = entropy.Tables({k: v.copy() for k, v in TABLES.freqs.items()})
    assert copy.hash == h
    # The documented digest: SHA-256 over the table names (sorted) and their
    # little-endian uint32 frequencies, first 4 bytes.
    d = hashlib.sha256()
    for name in sorted(entropy.TABLE_SHAPES):
        d.update(name.encode())
        d.update(TABLES.freqs[name].astype("<u4").tobytes())
    assert d.digest()[:4] == h


def test_hash_changes_with_any_frequency():
    for name in entropy.TABLE_SHAPES:
        freqs = {k: v.copy() for k, v in TABLES.freqs.items()}
        freqs[name].flat[-1] += 1
        assert entropy.Tables(freqs).hash != TABLES.hash, name


def test_tables_save_and_load(tmp_path):
    path = tmp_path / "tables.npz"
    TABLES.save(path)
    with np.load(path) as z:
        loaded = entropy.Tables({k: z[k] for k in z.files})
    assert loaded.hash == TABLES.hash


@pytest.mark.parametrize("damage", ["missing", "shape", "dtype", "zero"])
@pytest.mark.parametrize("name", sorted(entropy.TABLE_SHAPES))
def test_malformed_tables_refused(name, damage):
    freqs = {k: v.copy() for k, v in TABLES.freqs.items()}
    if damage == "missing":
        del freqs[name]
    elif damage == "shape":
        freqs[name] = freqs[name][:, :-1].copy()
    elif damage == "dtype":
        freqs[name] = freqs[name].astype(np.int64)
    else:
        freqs[name][0, 0] = 0
    with pytest.raises(BlockcodecError):
        entropy.Tables(freqs)


def test_zigzag_is_jpeg_order():
    zz = entropy.ZIGZAG
    assert sorted(zz.tolist()) == list(range(64))
    np.testing.assert_array_equal(zz[:16], [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5])
    assert zz[-1] == 63
    np.testing.assert_array_equal(entropy.INV_ZIGZAG[zz], np.arange(64))


# ---------------------------------------------------------------- collector

class CountingEncoder(entropy.Encoder):
    """An Encoder that also tallies what it codes, per table."""

    def __init__(self, tables):
        super().__init__(tables)
        self.counts = {n: np.zeros(s, np.int64) for n, s in entropy.TABLE_SHAPES.items()}
        self.n_calls = 0

    def categorical(self, table, ctx, symbols):
        np.add.at(self.counts[table], (np.asarray(ctx), np.asarray(symbols)), 1)
        self.n_calls += 1
        return super().categorical(table, ctx, symbols)


@pytest.mark.parametrize("dc_prediction", [False, True])
def test_collector_sees_what_the_encoder_codes(dc_prediction):
    rng = np.random.default_rng(18)
    planes = [(laplacian_coefs(rng, 20, scale=8.0), 4, 5, False),
              (laplacian_coefs(rng, 6, scale=40.0, sparsity=0.2), 2, 3, True)]
    planes[0][0][3, 10] = 5000                      # an escape
    col = entropy.Collector()
    enc = CountingEncoder(TABLES)
    for c, r, k, chroma in planes:
        entropy.code_plane(col, c, r, k, chroma, dc_prediction)
        entropy.code_plane(enc, c, r, k, chroma, dc_prediction)
    for name in entropy.TABLE_SHAPES:
        np.testing.assert_array_equal(col.counts[name], enc.counts[name], err_msg=name)
    assert col.counts["esc"].sum() >= 1
    # Every block codes exactly one EOB symbol.
    assert col.counts["eob"].sum() == sum(r * k for _, r, k, _ in planes)
    # Each plane class (quality class x luma/chroma) has its own block of rows:
    # quality 50 is class 1, so luma reads block 2 and chroma block 3.
    n_eob = entropy.N_EOB_CTX
    per_class = col.counts["eob"].reshape(entropy.N_PLANE_CLASSES, n_eob, -1).sum((1, 2))
    assert per_class.tolist() == [0, 0, 20, 6, 0, 0]


@pytest.mark.parametrize("quality,luma_class", [(1, 0), (30, 0), (31, 2), (60, 2), (61, 4), (100, 4)])
def test_quality_picks_the_plane_class(quality, luma_class):
    assert entropy.plane_class(False, quality) == luma_class
    assert entropy.plane_class(True, quality) == luma_class + 1


def test_adapted_eob_rows_keep_the_payload_guards_bound():
    """Thousands of all-zero blocks drive one EOB row toward certainty; the cap
    keeps every block's cost at -log2(0.98) bits or more."""
    coefs = np.zeros((60 * 80, 64), np.int16)
    enc = entropy.Encoder(TABLES)
    entropy.code_plane(enc, coefs, 60, 80, False, False)
    p = enc.model.live["eob"]
    share = p.max(1) / p.sum(1)
    assert share.max() <= entropy.MAX_EOB_PROBABILITY_PER_MILLE / 1000
    assert enc.stage_bits["eob"] >= 60 * 80 * -np.log2(entropy.MAX_EOB_PROBABILITY_PER_MILLE / 1000) - 32


def test_adaptation_is_the_same_on_both_sides_and_pays_on_a_skewed_plane():
    rng = np.random.default_rng(5)
    coefs = laplacian_coefs(rng, 24 * 32, scale=3.0, sparsity=0.5)
    coefs[:, 1] = 7          # a statistic the static tables do not expect
    enc = entropy.Encoder(TABLES)
    entropy.code_plane(enc, coefs, 24, 32, False, False)
    entropy.code_end(enc)
    payload = enc.finish()
    dec = entropy.Decoder(TABLES, payload)
    np.testing.assert_array_equal(entropy.code_plane(dec, None, 24, 32, False, False), coefs)
    entropy.code_end(dec)
    static = entropy.Encoder(TABLES)
    original = entropy.ADAPTIVE_TABLES
    try:
        entropy.ADAPTIVE_TABLES = ()
        entropy.code_plane(static, coefs, 24, 32, False, False)
        entropy.code_end(static)
    finally:
        entropy.ADAPTIVE_TABLES = original
    assert len(payload) < len(static.finish())


def _reference_pass_a_rows(idx, n_cols, eob, dc, dmag, pc, dc_prediction):
    """Pass A's rows written out from entropy's own rules, block by block."""
    eob_rows, sel, pred, dc_rows = [], [], [], []
    for b in idx:
        has_l, has_t = bool(b % n_cols > 0), bool(b >= n_cols)
        e = [eob[b - 1]] * has_l + [eob[b - n_cols]] * has_t
        mean = (sum(e) + (len(e) == 2)) // max(len(e), 1)
        eob_rows.append(int(entropy.eob_context(np.array([mean]), np.array([len(e) > 0]), pc)[0]))
        if eob[b] == 0:
            continue
        l, t = (int(dc[b - 1]) if has_l else 0), (int(dc[b - n_cols]) if has_t else 0)
        if not dc_prediction:
            p = 0
        elif has_l and has_t:
            tl = int(dc[b - n_cols - 1])
            p = min(l, t) if tl >= max(l, t) else (max(l, t) if tl <= min(l, t) else l + t - tl)
        else:
            p = l + t
        d = [dmag[b - 1]] * has_l + [dmag[b - n_cols]] * has_t
        mean = sum(d) // max(len(d), 1)
        sel.append(b)
        pred.append(p)
        dc_rows.append(int(entropy.dc_context(np.array([mean]), np.array([len(d) > 0]),
                                              np.array([eob[b] == 1]), pc)[0]))
    return eob_rows, sel, pred, dc_rows


@pytest.mark.parametrize("dc_prediction", [True, False])
def test_pass_a_rows_in_c_follow_the_rules(dc_prediction):
    rng = np.random.default_rng(5)
    n_rows, n_cols = 7, 11
    nb = n_rows * n_cols
    eob = rng.choice([0, 1, 2, 30, 64], nb).astype(np.int32)
    coefs = np.zeros((nb, 64), np.int16)
    coefs[:, 0] = rng.integers(-2000, 2000, nb)
    dmag = rng.choice([0, 3, 63, 64, 65, 70000], nb).astype(np.int32)
    for pc in range(entropy.N_PLANE_CLASSES):
        eob_row, dc_row = entropy.pass_a_lookup(pc)
        for idx in entropy._pass_a_fronts(n_rows, n_cols):
            n = len(idx)
            ctx, sel = np.empty(n, np.int64), np.empty(n, np.int32)
            pred, dctx = np.empty(n, np.int64), np.empty(n, np.int64)
            _cext.eob_contexts(eob_row, idx, n_cols, eob, ctx)
            m = _cext.dc_contexts(dc_row, dc_prediction, idx, n_cols, eob, coefs.reshape(-1), dmag, sel, pred, dctx)
            want = _reference_pass_a_rows(idx, n_cols, eob, coefs[:, 0], dmag, pc, dc_prediction)
            assert (ctx.tolist(), sel[:m].tolist(), pred[:m].tolist(), dctx[:m].tolist()) == want


def test_pass_a_rows_refuse_what_would_index_past_a_table():
    eob_row, _ = entropy.pass_a_lookup(0)
    eob = np.array([0, 65, 0, 0], np.int32)     # 65: no EOB symbol decodes to that
    with pytest.raises(ValueError, match="outside its table"):
        _cext.eob_contexts(eob_row, np.array([3], np.int32), 2, eob, np.empty(1, np.int64))
    with pytest.raises(ValueError, match="out of range"):
        _cext.eob_contexts(eob_row, np.array([4], np.int32), 2, np.zeros(4, np.int32), np.empty(1, np.int64))
