"""Entropy coding of quantized coefficients with constriction's range coder.

Each plane's coefficients are coded in two passes, built so that every batch
of symbols has its contexts known before the batch is decoded (constriction
codes whole arrays per call; one call per symbol would be far too slow):

Pass A, one wavefront of blocks at a time (t = 2r + c):
  * EOB: 1 + zigzag index of the block's last nonzero coefficient, 0 for an
    all-zero block (the explicit zero-block symbol).  Context: the average EOB
    of the left and top neighbours.
  * DC (blocks with EOB > 0): magnitude of d = DC - p, where p is 0, or with
    DC prediction on, the median-edge (LOCO-I) predictor of the left, top and
    top-left DC values.  Context: the neighbours' |d| and whether EOB == 1.
    Escape and sign follow at once: later wavefronts need the signed value.

Pass B, one zigzag position k = 1..63 at a time, over all blocks with EOB > k:
  * magnitude |q| (|q| - 1 at the last position, which is known nonzero).
    Context: frequency band of k; |q| of the block's two lower-frequency
    neighbours (u-1, v) and (u, v-1); how many positions remain before EOB;
    whether the top and left blocks are still nonzero at k.

Then all escapes (magnitudes >= 17, Exp-Golomb: length context-coded, mantissa
uniform) and all signs (uniform).

Every magnitude symbol is drawn from a categorical table picked by its context
id.  The tables are integer frequencies fitted on the training set
(blockcodec/train/entropy_tables.py) and committed: no libm is involved, so a
CDF cannot differ by one ulp between machines.  A table set is identified by
a hash written to the bitstream.

The same pass code drives encoding, decoding and statistics collection: a
"sink" either codes the symbols it is given or decodes and returns them, so
encoder and decoder cannot drift apart.

Hook for learned scales: ``code_blocks`` codes whole blocks whose
per-coefficient table ids come from outside (e.g. a CNN's predicted scale,
bucketed), one call per batch.  No shipped predictor uses it: a learned
scale head measured no better than the context coder (docs/DESIGN.md,
``python -m kodak_eval.scale_study``).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import constriction
import numpy as np

from .engine import wavefronts
from .errors import BlockcodecError

ALPHABET = 18          # magnitude symbols 0..16, and 17 = escape
ESC = ALPHABET - 1
ESC_LENGTHS = 16       # Exp-Golomb length symbols 0..15
MAX_MAGNITUDE = 32767  # decoded magnitudes and DC values are clamped to this (corrupt streams only)
MAX_DC_DIFFERENCE = 2 * MAX_MAGNITUDE + 1   # DC minus its prediction spans twice the int16 range
# Every block codes an EOB symbol, whose probability never exceeds this bound
# (checked when tables load), so each block costs at least -log2(0.917) bits: a
# decoder can refuse a header claiming more blocks than the payload could
# describe.  The guard's ratio is the smallest n with p^n <= 2^-8 (n blocks
# cost at least a byte), in exact integers: 64 for 917 per mille.
MAX_EOB_PROBABILITY_PER_MILLE = 917
BLOCKS_PER_PAYLOAD_BYTE = next(n for n in range(1, 1 << 16)
                               if 256 * MAX_EOB_PROBABILITY_PER_MILLE ** n <= 1000 ** n)

# Zigzag scan: ZIGZAG[k] is the natural index u * 8 + v of the k-th coefficient.
ZIGZAG = np.array(
    sorted(range(64), key=lambda i: (i // 8 + i % 8, (i % 8) if (i // 8 + i % 8) % 2 == 0 else (i // 8))),
    dtype=np.int64,
)
INV_ZIGZAG = np.argsort(ZIGZAG)


def _zz_neighbour(du: int, dv: int) -> np.ndarray:
    """Zigzag index of the (u+du, v+dv) neighbour of each zigzag position; 64
    (a column of zeros) where it falls outside the block."""
    out = np.full(64, 64, dtype=np.int64)
    for k, nat in enumerate(ZIGZAG):
        u, v = divmod(int(nat), 8)
        if 0 <= u + du < 8 and 0 <= v + dv < 8:
            out[k] = INV_ZIGZAG[(u + du) * 8 + v + dv]
    return out


_ZZ_UP = _zz_neighbour(-1, 0)
_ZZ_LEFT = _zz_neighbour(0, -1)

# Context quantizers, as lookup tables.
_BAND = np.array([0] + [1] * 2 + [2] * 3 + [3] * 4 + [4] * 5 + [5] * 6 + [6] * 7 + [7] * 8 + [8] * 9 + [9] * 19)
_EOB_BUCKET = np.array([0, 1, 2, 3, 3, 4, 4, 5, 5, 5] + [6] * 4 + [7] * 6 + [8] * 8 + [9] * 10 + [10] * 12 + [11] * 15)
_DC_BUCKET = np.array([0, 1, 2, 3, 3, 4, 4, 4, 4] + [5] * 8 + [6] * 16 + [7] * 32)   # |d| 0..64
_NBM_BUCKET = np.array([0, 1, 2, 3, 3, 4, 4, 4, 5])                                 # 0..8
_REM_BUCKET = np.array([0, 1, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 5])         # 0..16

N_EOB_CTX = 13         # 12 buckets + "no neighbours"
N_DC_CTX = 9 * 2       # 8 buckets + "no neighbours", x (EOB == 1)
N_AC_CTX = 10 * 6 * 6 * 3
N_CLASSES = 2          # luma, chroma

TABLE_SHAPES = {
    "eob": (N_CLASSES * N_EOB_CTX, 65),
    "dc": (N_CLASSES * N_DC_CTX, ALPHABET),
    "ac": (N_CLASSES * N_AC_CTX, ALPHABET),
    "esc": (1, ESC_LENGTHS),
}

_CATEGORICAL = constriction.stream.model.Categorical(perfect=False)
_UNIFORM = constriction.stream.model.Uniform()
_BIT = constriction.stream.model.Uniform(2)


# ------------------------------------------------------------------- tables

@dataclass(frozen=True)
class Tables:
    """Integer frequency tables, one row per context."""

    freqs: dict  # name -> uint32 [n_ctx, n_symbols]

    def __post_init__(self):
        for name, shape in TABLE_SHAPES.items():
            f = self.freqs.get(name)
            if f is None or f.shape != shape or f.dtype != np.uint32 or (f == 0).any():
                raise BlockcodecError(f"entropy table {name!r} is missing or malformed")
        eob = self.freqs["eob"].astype(np.int64)
        if (eob.max(1) * 1000 > MAX_EOB_PROBABILITY_PER_MILLE * eob.sum(1)).any():
            raise BlockcodecError("entropy table 'eob' breaks the payload-size guard's bound")
        # constriction normalises float probabilities itself; integer-valued
        # float64 inputs are exact, so the result is the same everywhere.
        object.__setattr__(self, "_probs", {n: f.astype(np.float64) for n, f in self.freqs.items()})

    def probs(self, name: str) -> np.ndarray:
        return self._probs[name]

    @property
    def hash(self) -> bytes:
        h = hashlib.sha256()
        for name in sorted(TABLE_SHAPES):
            h.update(name.encode())
            h.update(self.freqs[name].astype("<u4").tobytes())
        return h.digest()[:4]

    def save(self, path) -> None:
        np.savez_compressed(path, **self.freqs)


@lru_cache(maxsize=1)
def default_tables() -> Tables:
    ref = resources.files("blockcodec") / "data" / "entropy_tables.npz"
    with ref.open("rb") as fh, np.load(fh) as z:
        return Tables({k: z[k].astype(np.uint32) for k in z.files})


# -------------------------------------------------------------------- sinks

class _Sink:
    """Codes (or decodes) batches of symbols; `stage` labels the bits."""

    stage = ""

    def categorical(self, table: str, ctx: np.ndarray, symbols: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError

    def uniform(self, sizes: np.ndarray, symbols: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError

    def bits(self, symbols: np.ndarray | None, n: int) -> np.ndarray:
        raise NotImplementedError


class Encoder(_Sink):
    def __init__(self, tables: Tables):
        self.tables = tables
        self.coder = constriction.stream.queue.RangeEncoder()
        self.stage_bits: dict[str, int] = {}

    def _account(self, before: int) -> None:
        self.stage_bits[self.stage] = self.stage_bits.get(self.stage, 0) + self.coder.num_bits() - before

    def categorical(self, table, ctx, symbols):
        if len(symbols):
            before = self.coder.num_bits()
            self.coder.encode(symbols.astype(np.int32), _CATEGORICAL, self.tables.probs(table)[ctx])
            self._account(before)
        return symbols

    def uniform(self, sizes, symbols):
        if len(symbols):
            before = self.coder.num_bits()
            self.coder.encode(symbols.astype(np.int32), _UNIFORM, sizes.astype(np.int32))
            self._account(before)
        return symbols

    def bits(self, symbols, n):
        if n:
            before = self.coder.num_bits()
            self.coder.encode(symbols.astype(np.int32), _BIT)
            self._account(before)
        return symbols

    def finish(self) -> bytes:
        return self.coder.get_compressed().astype("<u4").tobytes()


class Decoder(_Sink):
    def __init__(self, tables: Tables, payload: bytes):
        if len(payload) % 4:
            raise BlockcodecError("corrupt stream: payload is not a whole number of 32-bit words")
        self.tables = tables
        words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
        self.coder = constriction.stream.queue.RangeDecoder(words)

    def exhausted(self) -> bool:
        """constriction's end-of-stream test (docs/FORMAT.md 4.1): false when
        data is definitely left over.  It cannot see every mismatch (one extra
        trailing word, or missing zero words, can pass); the CRC and the
        payload-size guard cover the rest."""
        return bool(self.coder.maybe_exhausted())

    def categorical(self, table, ctx, symbols):
        if not len(ctx):
            return np.zeros(0, np.int64)
        return self.coder.decode(_CATEGORICAL, self.tables.probs(table)[ctx]).astype(np.int64)

    def uniform(self, sizes, symbols):
        if not len(sizes):
            return np.zeros(0, np.int64)
        return self.coder.decode(_UNIFORM, sizes.astype(np.int32)).astype(np.int64)

    def bits(self, symbols, n):
        if not n:
            return np.zeros(0, np.int64)
        return self.coder.decode(_BIT, n).astype(np.int64)


class Collector(_Sink):
    """Counts (context, symbol) pairs instead of coding: used to fit tables."""

    def __init__(self):
        self.counts = {n: np.zeros(s, np.int64) for n, s in TABLE_SHAPES.items()}

    def categorical(self, table, ctx, symbols):
        np.add.at(self.counts[table], (ctx, symbols), 1)
        return symbols

    def uniform(self, sizes, symbols):
        return symbols

    def bits(self, symbols, n):
        return symbols


# ------------------------------------------------------------ coding passes

def _escape(sink: _Sink, rem: np.ndarray | None, n: int) -> np.ndarray:
    """Exp-Golomb (order 0) code of n non-negative remainders: the length is
    coded with the 'esc' table, the mantissa with a uniform model."""
    enc = rem is not None
    v = rem + 1 if enc else None
    length = _bit_length(v) - 1 if enc else None
    length = sink.categorical("esc", np.zeros(n, np.int64), length)
    has = np.nonzero(length > 0)[0]
    sizes = np.left_shift(1, length[has])
    low = sink.uniform(sizes, (v[has] - sizes) if enc else None)
    out = np.ones(n, np.int64) if not enc else v.copy()
    if not enc:
        out[has] = sizes + low
    return out - 1


def _bit_length(v: np.ndarray) -> np.ndarray:
    n = np.zeros(len(v), np.int64)
    t = v.copy()
    while (t > 0).any():
        n += t > 0
        t >>= 1
    return n


def _signs(sink: _Sink, values: np.ndarray | None, n: int) -> np.ndarray:
    """1 for negative; raw bits."""
    return sink.bits(None if values is None else (values < 0).astype(np.int64), n)


def _signed_values(sink: _Sink, table: str, ctx: np.ndarray, values: np.ndarray | None,
                   cap: int) -> tuple[np.ndarray, np.ndarray]:
    """Code signed integers: magnitudes with ``table`` rows ``ctx`` (escaping
    past ESC), then the signs of the nonzero ones.  Returns (values, magnitudes);
    decoded magnitudes are clamped to ``cap``."""
    enc = values is not None
    mag = np.abs(values) if enc else None
    sink.stage = table
    sym = sink.categorical(table, ctx, np.minimum(mag, ESC) if enc else None)
    esc = np.nonzero(sym == ESC)[0]
    sink.stage = "escape"
    rem = _escape(sink, (mag[esc] - ESC) if enc else None, len(esc))
    if not enc:
        mag = sym.copy()
        mag[esc] = np.minimum(ESC + rem, cap)
    nzi = np.nonzero(mag)[0]
    sink.stage = "sign"
    neg = _signs(sink, values[nzi] if enc else None, len(nzi))
    if enc:
        return values, mag
    out = mag.copy()
    out[nzi[neg == 1]] *= -1
    return out, mag


def _med(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """LOCO-I median edge detector: left a, top b, top-left c."""
    mx, mn = np.maximum(a, b), np.minimum(a, b)
    return np.where(c >= mx, mn, np.where(c <= mn, mx, a + b - c))


def code_plane(sink: _Sink, coefs: np.ndarray | None, n_rows: int, n_cols: int,
               chroma: bool, dc_prediction: bool) -> np.ndarray:
    """Code one plane's quantized coefficients (int16 [n_blocks, 64], natural
    order, raster block order).  With ``coefs`` None the sink decodes them."""
    enc = coefs is not None
    nb = n_rows * n_cols
    cls = int(chroma)
    # Work in zigzag order; column 64 is a constant zero for out-of-block neighbours.
    # int32/int16 keep decoding memory near 9 bytes per pixel.
    qz = np.zeros((nb, 65), np.int32)
    if enc:
        qz[:, :64] = coefs[:, ZIGZAG]
    nz = qz[:, :64] != 0
    eob = np.where(nz.any(1), 64 - np.argmax(nz[:, ::-1], axis=1), 0) if enc else np.zeros(nb, np.int64)
    dmag = np.zeros(nb, np.int64)   # |DC - prediction|, context for the neighbours

    # Pass A: EOB and DC, wavefront by wavefront.
    for rows, cols in wavefronts(n_rows, n_cols):
        idx = rows.astype(np.int64) * n_cols + cols
        has_l, has_t = cols > 0, rows > 0
        il, it = np.where(has_l, idx - 1, 0), np.where(has_t, idx - n_cols, 0)
        n_nb = has_l.astype(np.int64) + has_t
        e_sum = np.where(has_l, eob[il], 0) + np.where(has_t, eob[it], 0)
        e_avg = (e_sum + (n_nb == 2)) // np.maximum(n_nb, 1)
        ctx = np.where(n_nb == 0, N_EOB_CTX - 1, _EOB_BUCKET[e_avg]) + cls * N_EOB_CTX
        sink.stage = "eob"
        eob[idx] = sink.categorical("eob", ctx, eob[idx] if enc else None)

        sel = eob[idx] > 0
        b = idx[sel]
        if not len(b):
            continue
        hl, ht = has_l[sel], has_t[sel]
        bl, bt = il[sel], it[sel]
        if dc_prediction:
            dl, dt = qz[bl, 0], qz[bt, 0]
            dtl = qz[np.where(hl & ht, b - n_cols - 1, 0), 0]
            pred = np.where(hl & ht, _med(dl, dt, dtl), np.where(hl, dl, np.where(ht, dt, 0)))
        else:
            pred = np.zeros(len(b), np.int64)
        n_dnb = hl.astype(np.int64) + ht
        d_avg = (np.where(hl, dmag[bl], 0) + np.where(ht, dmag[bt], 0)) // np.maximum(n_dnb, 1)
        ctx = np.where(n_dnb == 0, 8, _DC_BUCKET[np.minimum(d_avg, 64)])
        ctx = (ctx * 2 + (eob[b] == 1)) + cls * N_DC_CTX
        d, mag = _signed_values(sink, "dc", ctx, (qz[b, 0] - pred) if enc else None, MAX_DC_DIFFERENCE)
        if not enc:
            qz[b, 0] = np.clip(pred + d, -MAX_MAGNITUDE, MAX_MAGNITUDE)
        dmag[b] = mag

    # Pass B: AC magnitudes, one zigzag position at a time.
    absz = np.zeros((nb, 65), np.int32)          # magnitudes decoded so far
    absz[:, 0] = np.abs(qz[:, 0])
    capped = np.minimum(absz, ESC).astype(np.int16)   # what contexts see
    rr, cc = np.divmod(np.arange(nb), n_cols)
    eob_t = np.where(rr > 0, eob[np.maximum(np.arange(nb) - n_cols, 0)], 0)
    eob_l = np.where(cc > 0, eob[np.maximum(np.arange(nb) - 1, 0)], 0)
    esc_b, esc_k, esc_last = [], [], []
    sink.stage = "ac"
    for k in range(1, 64):
        act = np.nonzero(eob > k)[0]
        if not len(act):
            break
        last = (eob[act] - 1 == k).astype(np.int64)
        nbm = np.minimum(capped[act, _ZZ_UP[k]] + capped[act, _ZZ_LEFT[k]], 8)
        rem = np.minimum(eob[act] - 1 - k, 16)
        nk = (eob_t[act] > k).astype(np.int64) + (eob_l[act] > k)
        ctx = ((_BAND[k] * 6 + _NBM_BUCKET[nbm]) * 6 + _REM_BUCKET[rem]) * 3 + nk + cls * N_AC_CTX
        true = np.minimum(np.abs(qz[act, k]) - last, ESC) if enc else None
        sym = sink.categorical("ac", ctx, true)
        absz[act, k] = sym + last
        capped[act, k] = np.minimum(sym + last, ESC)
        e = np.nonzero(sym == ESC)[0]
        if len(e):
            esc_b.append(act[e])
            esc_k.append(np.full(len(e), k))
            esc_last.append(last[e])

    # Escapes and signs of AC coefficients.
    if esc_b:
        eb, ek, el = np.concatenate(esc_b), np.concatenate(esc_k), np.concatenate(esc_last)
        sink.stage = "escape"
        rem = _escape(sink, (np.abs(qz[eb, ek]) - ESC - el) if enc else None, len(eb))
        absz[eb, ek] = np.minimum(ESC + el + rem, MAX_MAGNITUDE)
    absz[:, 0] = 0
    nzb, nzk = np.nonzero(absz[:, :64])
    sink.stage = "sign"
    neg = _signs(sink, qz[nzb, nzk] if enc else None, len(nzb))
    if enc:
        return coefs
    ac = absz[nzb, nzk]
    qz[nzb, nzk] = np.where(neg == 1, -ac, ac)
    out = np.empty((nb, 64), np.int16)
    out[:, ZIGZAG] = qz[:, :64]
    return out


END_SENTINEL = (0xB10C, 0xC0DE)
_HALFWORD = constriction.stream.model.Uniform(1 << 16)


def code_end(sink: _Sink) -> None:
    """Two fixed 16-bit symbols after the last plane.  A decoder that runs out
    of payload reads zeros, so a truncated payload fails here (2^-32 chance of
    passing), where constriction's own end-of-stream test is only a 'maybe'."""
    sink.stage = "container"
    expected = np.array(END_SENTINEL, np.int64)
    if isinstance(sink, Encoder):
        sink.coder.encode(expected.astype(np.int32), _HALFWORD)
        sink.stage_bits["container"] = sink.stage_bits.get("container", 0) + 32
    elif isinstance(sink, Decoder):
        got = sink.coder.decode(_HALFWORD, 2)
        if not (got == expected).all() or not sink.exhausted():
            raise BlockcodecError("corrupt stream: the payload does not end where its content does")


def code_blocks(sink: _Sink, coefs: np.ndarray | None, rows: np.ndarray, table: str,
                n_blocks: int | None = None) -> np.ndarray:
    """Code whole blocks whose every coefficient's table row is given from outside.

    This is the hook through which a learned model replaces the context model:
    ``rows`` int [n, 64] (natural order) picks, per coefficient, a row of
    ``table`` (an ALPHABET-wide frequency table, e.g. one row per bucket of a
    CNN-predicted scale).  Magnitudes are coded in one call, then escapes,
    then signs; there are no intra-batch dependencies, so a wavefront is a
    single batch.  With ``coefs`` None the sink decodes ``n_blocks`` blocks.
    """
    enc = coefs is not None
    n = len(coefs) if enc else int(n_blocks)
    rows = np.asarray(rows, dtype=np.int64).reshape(n * 64)
    values = coefs.astype(np.int64).reshape(-1) if enc else None
    out, _ = _signed_values(sink, table, rows, values, MAX_MAGNITUDE)
    return coefs if enc else out.astype(np.int16).reshape(n, 64)
