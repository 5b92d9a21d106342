"""Entropy coding of quantized coefficients with constriction's range coder.

Each plane's coefficients are coded in two passes, built so that every batch
of symbols has its contexts known before the batch is decoded (constriction
codes whole arrays per call; one call per symbol would be far too slow).
Every context row belongs to a plane class: luma or chroma, times one of
N_QUALITY quality classes (symbol statistics shift with the quantizer).

Pass A, one wavefront of blocks at a time (t = 2r + c):
  * EOB: 1 + zigzag index of the block's last nonzero coefficient, 0 for an
    all-zero block (the explicit zero-block symbol).  Context: the average EOB
    of the left and top neighbours.
  * DC (blocks with EOB > 0): magnitude of d = DC - p, where p is 0, or with
    DC prediction on, the median-edge (LOCO-I) predictor of the left, top and
    top-left DC values.  Context: the neighbours' |d| and whether EOB == 1.
    Escape and sign (a raw bit) follow at once: later wavefronts need the
    signed value.

Pass B, one zigzag position k = 1..63 at a time, over all blocks with EOB > k:
  * magnitude |q| (|q| - 1 at the last position, which is known nonzero),
    in two calls, the halves of a checkerboard ((r + c) even, then odd).
    Context: frequency band of k; |q| of the block's two lower-frequency
    neighbours (u-1, v) and (u, v-1); how many positions remain before EOB;
    whether the top and left blocks are still nonzero at k; and for the
    second half, the magnitudes at k of its four neighbours, all of which
    are in the first half (Lepton-style inter-block context at one extra
    call per position).
  * the signs of the nonzero ones at k.  Context: k and the signs of the
    block's own (u-1, v) and (u, v-1) coefficients.

Then all AC escapes (magnitudes >= 17, Exp-Golomb: length context-coded,
mantissa uniform).

Every symbol is drawn from a categorical table row picked by its context.
The tables are integer frequencies fitted on the training set
(blockcodec/train/entropy_tables.py) and committed; the rows of the DC, AC
and sign tables then adapt to the stream: after each call, every coded
symbol adds ADAPT_INCREMENT to its row (exact integers in float64, so the
model is the same on every machine; no libm is involved).  A table set is
identified by a hash written to the bitstream.

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

from . import _cext
from .errors import BlockcodecError
from .scan import wavefronts

ALPHABET = 18          # magnitude symbols 0..16, and 17 = escape
ESC = ALPHABET - 1
ESC_LENGTHS = 16       # Exp-Golomb length symbols 0..15
MAX_MAGNITUDE = 32767  # decoded magnitudes and DC values are clamped to this (corrupt streams only)
MAX_DC_DIFFERENCE = 2 * MAX_MAGNITUDE + 1   # DC minus its prediction spans twice the int16 range
# Every block codes an EOB symbol, whose probability never exceeds this bound
# (checked when tables load, and kept when rows adapt), so each block
# costs at least -log2(0.98) bits: a decoder can refuse a header claiming more
# blocks than the payload could describe.  The guard's ratio is the smallest n
# with p^n <= 2^-8 (n blocks cost at least a byte), in exact integers: 275 for
# 980 per mille.  (The bound is loose enough that capping the fitted EOB rows
# to it costs under 0.03 bit per all-zero block where zero blocks are common.)
MAX_EOB_PROBABILITY_PER_MILLE = 980
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


ZZ_UP = _zz_neighbour(-1, 0)
ZZ_LEFT = _zz_neighbour(0, -1)

# Context quantizers, as lookup tables.
_BAND = np.array([0] + [1] * 2 + [2] * 3 + [3] * 4 + [4] * 5 + [5] * 6 + [6] * 7 + [7] * 8 + [8] * 9 + [9] * 19)
_EOB_BUCKET = np.array([0, 1, 2, 3, 3, 4, 4, 5, 5, 5] + [6] * 4 + [7] * 6 + [8] * 8 + [9] * 10 + [10] * 12 + [11] * 15)
_DC_BUCKET = np.array([0, 1, 2, 3, 3, 4, 4, 4, 4] + [5] * 8 + [6] * 16 + [7] * 32)   # |d| 0..64
_NBM_BUCKET = np.array([0, 1, 2, 3, 3, 4, 4, 4, 5])                                 # 0..8
_REM_BUCKET = np.array([0, 1, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 5])         # 0..16

_NB4_BUCKET = np.array([0, 1, 2, 2, 3, 3, 3] + [4] * 6 + [5] * 56)                 # 0..68
N_QUALITY = 3          # quality classes (quality_class)
N_CLASSES = 2          # luma, chroma
N_PLANE_CLASSES = N_QUALITY * N_CLASSES
N_EOB_CTX = 13         # 12 buckets + "no neighbours"
N_DC_CTX = 9 * 2       # 8 buckets + "no neighbours", x (EOB == 1)
N_AC_BASE = 10 * 6 * 6 * 3
N_NB4 = 7              # checkerboard: 6 buckets of the 4 neighbours' magnitudes, + "first half"
N_AC_CTX = N_AC_BASE * N_NB4
N_SIGN_GROUPS = 15     # zigzag positions 1..14 each, then 15..63 together
N_SIGN_CTX = N_SIGN_GROUPS * 3 * 3
NBM_MAX, REM_MAX, NB4_MAX = 8, 16, 4 * ESC   # caps of the AC context's inputs
FIRST_HALF = N_NB4 - 1


def quality_class(quality: int) -> int:
    """Symbol statistics shift with the quantizer: every table has one set of
    rows per quality class."""
    return 0 if quality <= 30 else (1 if quality <= 60 else 2)


def plane_class(chroma: bool, quality: int) -> int:
    """The row block of a plane's contexts: quality class and luma/chroma."""
    return quality_class(quality) * N_CLASSES + int(chroma)


# The context rows, as functions of the context's inputs, so that the coding
# passes and the encoder's rate model (rdoq.py) share one definition.  pc is
# plane_class().
def eob_context(e_avg: np.ndarray, has_neighbour: np.ndarray, pc: int) -> np.ndarray:
    """EOB row from the neighbours' mean EOB (0..64)."""
    return np.where(has_neighbour, _EOB_BUCKET[e_avg], N_EOB_CTX - 1) + pc * N_EOB_CTX


def dc_context(d_avg: np.ndarray, has_neighbour: np.ndarray, eob_is_one: np.ndarray, pc: int) -> np.ndarray:
    """DC row from the neighbours' mean |DC - prediction| and whether EOB == 1."""
    bucket = np.where(has_neighbour, _DC_BUCKET[np.minimum(d_avg, 64)], 8)
    return bucket * 2 + eob_is_one + pc * N_DC_CTX


def ac_base_context(k, nbm: np.ndarray, rem: np.ndarray, nk: np.ndarray, pc: int) -> np.ndarray:
    """The AC row group from zigzag position k, the capped sum nbm of the
    (u-1, v) and (u, v-1) magnitudes, the distance rem to EOB and how many of
    the top and left blocks reach past k (nk)."""
    return ((_BAND[k] * 6 + _NBM_BUCKET[np.minimum(nbm, NBM_MAX)]) * 6
            + _REM_BUCKET[np.minimum(rem, REM_MAX)]) * 3 + nk + pc * N_AC_BASE


def ac_context(base: np.ndarray, nb4: np.ndarray | None) -> np.ndarray:
    """AC row: the base group, refined for second-half blocks of the
    checkerboard by their four neighbours' capped magnitudes at k (nb4, sum
    0..68); first-half blocks (nb4 None) have their own row."""
    if nb4 is None:
        return base * N_NB4 + FIRST_HALF
    return base * N_NB4 + _NB4_BUCKET[np.minimum(nb4, NB4_MAX)]


def sign_context(k, sign_up: np.ndarray, sign_left: np.ndarray, pc: int) -> np.ndarray:
    """Sign row from zigzag position k and the signs (-1, 0, 1) of the block's
    own (u-1, v) and (u, v-1) coefficients."""
    group = min(k, N_SIGN_GROUPS) - 1
    up, left = np.asarray(sign_up, np.int64), np.asarray(sign_left, np.int64)
    return ((group * 3 + up + 1) * 3 + left + 1) + pc * N_SIGN_CTX


@lru_cache(maxsize=N_PLANE_CLASSES)
def pass_a_lookup(pc: int) -> tuple[np.ndarray, np.ndarray]:
    """eob_context and dc_context as lookup tables, for the C core (Pass A's
    rows, cext/contexts.h): int32 EOB rows by the neighbours' mean EOB 0..64,
    then "no neighbour"; int32 DC rows by (mean |d| 0..64, then "no
    neighbour") * 2 + (EOB == 1)."""
    mean = np.arange(66)
    eob_row = eob_context(np.minimum(mean, 64), mean <= 64, pc).astype(np.int32)
    mean, eob_is_one = np.repeat(mean, 2), np.tile([0, 1], 66)
    dc_row = dc_context(np.minimum(mean, 64), mean <= 64, eob_is_one, pc).astype(np.int32)
    return eob_row, dc_row


@lru_cache(maxsize=N_PLANE_CLASSES)
def ac_lookup(pc: int) -> tuple[np.ndarray, np.ndarray]:
    """ac_base_context and ac_context as lookup tables, for the C core (Pass
    B's contexts, cext/contexts.h, and the encoder's rate model, cext/rdoq.h):
    int32 row groups by (k, nbm, rem, nk), flattened, and the second half's
    refinement by the four neighbours' sum 0..NB4_MAX."""
    k, nbm, rem, nk = np.meshgrid(np.arange(64), np.arange(NBM_MAX + 1), np.arange(REM_MAX + 1),
                                  np.arange(3), indexing="ij")
    groups = ac_base_context(k, nbm, rem, nk, pc).astype(np.int32).reshape(-1)
    refine = ac_context(np.zeros(NB4_MAX + 1, np.int64), np.arange(NB4_MAX + 1)).astype(np.int32)
    return groups, refine


TABLE_SHAPES = {
    "eob": (N_PLANE_CLASSES * N_EOB_CTX, 65),
    "dc": (N_PLANE_CLASSES * N_DC_CTX, ALPHABET),
    "ac": (N_PLANE_CLASSES * N_AC_CTX, ALPHABET),
    "sign": (N_PLANE_CLASSES * N_SIGN_CTX, 2),
    "esc": (1, ESC_LENGTHS),
}
# Tables whose rows adapt to the stream as it is coded: after each batch,
# every coded symbol adds ADAPT_INCREMENT to its row's frequency (the static
# rows sum to about 2^16, so a row has seen as much evidence as 128 symbols
# before it adapts).  An adapted EOB row's largest entry is then capped so the
# payload-size guard's bound (below) still holds.
ADAPTIVE_TABLES = ("eob", "dc", "ac", "sign")
ADAPT_INCREMENT = 512.0

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

    @classmethod
    def load(cls, fh) -> "Tables":
        with np.load(fh) as z:
            return cls({k: z[k].astype(np.uint32) for k in z.files})


@lru_cache(maxsize=1)
def default_tables() -> Tables:
    ref = resources.files("blockcodec") / "data" / "entropy_tables.npz"
    with ref.open("rb") as fh:
        return Tables.load(fh)


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


class _Probabilities:
    """One stream's probability rows: the static tables, with the rows of the
    adaptive tables accumulating the symbols coded so far.  The encoder and
    the decoder update after the same batches, so they stay in step."""

    def __init__(self, tables: Tables):
        self.tables = tables
        self.live: dict[str, np.ndarray] = {}

    def rows(self, table: str, ctx: np.ndarray) -> np.ndarray:
        p = self.live.get(table)
        return (self.tables.probs(table) if p is None else p)[ctx]

    def update(self, table: str, ctx: np.ndarray, symbols: np.ndarray) -> None:
        if table not in ADAPTIVE_TABLES:
            return
        p = self.live.get(table)
        if p is None:
            p = self.live[table] = self.tables.probs(table).copy()
        # Integer-valued float64 sums stay exact far beyond any image's counts,
        # so the order of the additions cannot matter (cext/adapt.h).
        try:
            _cext.adapt_rows(p.reshape(-1), p.shape[1], np.ascontiguousarray(ctx, np.int64),
                             np.ascontiguousarray(symbols, np.int64), ADAPT_INCREMENT,
                             MAX_EOB_PROBABILITY_PER_MILLE if table == "eob" else 0)
        except OverflowError:
            raise BlockcodecError("corrupt stream: more symbols than any image holds") from None


class Encoder(_Sink):
    def __init__(self, tables: Tables):
        self.tables = tables
        self.model = _Probabilities(tables)
        self.coder = constriction.stream.queue.RangeEncoder()
        self.stage_bits: dict[str, int] = {}

    def _account(self, before: int) -> None:
        self.stage_bits[self.stage] = self.stage_bits.get(self.stage, 0) + self.coder.num_bits() - before

    def categorical(self, table, ctx, symbols):
        if len(symbols):
            before = self.coder.num_bits()
            self.coder.encode(symbols.astype(np.int32), _CATEGORICAL, self.model.rows(table, ctx))
            self._account(before)
            self.model.update(table, ctx, symbols)
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
        self.model = _Probabilities(tables)
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
        symbols = self.coder.decode(_CATEGORICAL, self.model.rows(table, ctx)).astype(np.int64)
        self.model.update(table, ctx, symbols)
        return symbols

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
    if n == 0:
        return np.zeros(0, np.int64)
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


# Blocks per chunk where a pass runs over whole planes (the encoder's EOB
# search, the decoder's final assembly): their temporaries stay near a MB.
CHUNK_BLOCKS = 1 << 14


def _eobs(coefs: np.ndarray) -> np.ndarray:
    """1 + zigzag index of each block's last nonzero coefficient (0: none)."""
    eob = np.empty(len(coefs), np.int32)
    for s in range(0, len(coefs), CHUNK_BLOCKS):
        nz = coefs[s: s + CHUNK_BLOCKS][:, ZIGZAG] != 0
        eob[s: s + CHUNK_BLOCKS] = np.where(nz.any(1), 64 - np.argmax(nz[:, ::-1], axis=1), 0)
    return eob


@lru_cache(maxsize=4)
def _pass_a_fronts(n_rows: int, n_cols: int) -> tuple[np.ndarray, ...]:
    """Each wavefront's blocks (int32 raster indices): the same for every
    plane of this shape, so computed once."""
    return tuple(rows * np.int32(n_cols) + cols for rows, cols in wavefronts(n_rows, n_cols))


def code_plane(sink: _Sink, coefs: np.ndarray | None, n_rows: int, n_cols: int,
               chroma: bool, dc_prediction: bool, quality: int = 50) -> np.ndarray:
    """Code one plane's quantized coefficients (int16 [n_blocks, 64], natural
    order, raster block order) at this quality.  With ``coefs`` None the sink
    decodes them.

    Working memory, beyond the coefficients themselves: two bytes a
    coefficient (what the contexts read: magnitudes capped at ESC, and
    signs) and about 40 bytes a block; the decoder writes its output in place
    from the start (int16 is wide enough: decoded values are clamped to
    MAX_MAGNITUDE)."""
    enc = coefs is not None
    nb = n_rows * n_cols
    cls = plane_class(chroma, quality)
    # q: the coefficients in natural order, the encoder's own or the
    # decoder's output; q[b, ZIGZAG[k]] is block b's k-th in zigzag order.
    q = coefs if enc else np.zeros((nb, 64), np.int16)
    eob = _eobs(coefs) if enc else np.zeros(nb, np.int32)
    dmag = np.zeros(nb, np.int32)   # |DC - prediction|, context for the neighbours

    # Pass A: EOB and DC, wavefront by wavefront (rows from cext/contexts.c).
    eob_row, dc_row = pass_a_lookup(cls)
    longest = min(n_rows, n_cols)   # a wavefront holds at most one block of each row and column
    ctx_buf, pred_buf, sel_buf = np.empty(longest, np.int64), np.empty(longest, np.int64), np.empty(longest, np.int32)
    for idx in _pass_a_fronts(n_rows, n_cols):
        n = len(idx)
        ctx = ctx_buf[:n]
        _cext.eob_contexts(eob_row, idx, n_cols, eob, ctx)
        sink.stage = "eob"
        eob[idx] = sink.categorical("eob", ctx, eob[idx] if enc else None)
        m = _cext.dc_contexts(dc_row, dc_prediction, idx, n_cols, eob, q.reshape(-1), dmag,
                              sel_buf[:n], pred_buf[:n], ctx)
        if not m:
            continue
        b, pred, ctx = sel_buf[:m], pred_buf[:m], ctx_buf[:m]
        d, mag = _signed_values(sink, "dc", ctx, (q[b, 0] - pred) if enc else None, MAX_DC_DIFFERENCE)
        if not enc:
            q[b, 0] = np.clip(pred + d, -MAX_MAGNITUDE, MAX_MAGNITUDE)
        dmag[b] = mag

    # Pass B: AC magnitudes and signs, one zigzag position at a time, each
    # position in two halves of a checkerboard: the second half's contexts
    # see their four neighbours' magnitudes at that position.  Contexts read
    # magnitudes capped at ESC; an escaped magnitude's rest comes after pass B.
    capped = np.zeros((nb + 1, 65), np.uint8)    # zigzag order; column 64 and row nb ("no block"): zeros
    capped[:nb, 0] = np.minimum(np.abs(q[:, 0].astype(np.int32)), ESC)
    sgn = np.zeros((nb, 65), np.int8)            # signs decoded so far, -1, 0, 1
    sgn[:, 0] = np.sign(q[:, 0])
    blocks = np.arange(nb, dtype=np.int32)
    rr, cc = np.divmod(blocks, np.int32(n_cols))
    eob_t = np.where(rr > 0, eob[np.maximum(blocks - n_cols, 0)], 0).astype(np.int8)
    eob_l = np.where(cc > 0, eob[np.maximum(blocks - 1, 0)], 0).astype(np.int8)
    second = ((rr + cc) & 1).astype(bool)
    del blocks, rr, cc
    groups, refine = ac_lookup(cls)
    esc_b, esc_k, esc_last = [], [], []
    # The blocks still coding at k, in raster order, narrowed as k grows (the
    # work per position follows the blocks left, not the plane's size).
    act = np.nonzero(eob > 1)[0].astype(np.int32)
    halves = [act[~second[act]], act[second[act]]]
    for k in range(1, 64):
        if k > 1:
            act = act[eob[act] > k]
            halves = [h[eob[h] > k] for h in halves]
        if not len(act):
            break
        zk = ZIGZAG[k]
        sink.stage = "ac"
        for half in halves:
            if not len(half):
                continue
            ctx, last = np.empty(len(half), np.int64), np.empty(len(half), np.int64)
            _cext.ac_contexts(groups, refine, N_NB4, k, int(ZZ_UP[k]), int(ZZ_LEFT[k]), half, n_cols,
                              capped, eob, eob_t, eob_l, bool(second[half[0]]), ctx, last)
            true = np.minimum(np.abs(q[half, zk].astype(np.int64)) - last, ESC) if enc else None
            sym = sink.categorical("ac", ctx, true)
            capped[half, k] = np.minimum(sym + last, ESC)
            e = np.nonzero(sym == ESC)[0]
            if len(e):
                esc_b.append(half[e])
                esc_k.append(np.full(len(e), k))
                esc_last.append(last[e])
        nzb = act[capped[act, k] > 0]
        sink.stage = "sign"
        ctx = sign_context(k, sgn[nzb, ZZ_UP[k]], sgn[nzb, ZZ_LEFT[k]], cls)
        neg = sink.categorical("sign", ctx, (q[nzb, zk] < 0).astype(np.int64) if enc else None)
        sgn[nzb, k] = 1 - 2 * neg

    # Escapes of AC magnitudes.
    esc_mag = None
    if esc_b:
        eb, ek, el = np.concatenate(esc_b), np.concatenate(esc_k), np.concatenate(esc_last)
        sink.stage = "escape"
        rem = _escape(sink, (np.abs(q[eb, ZIGZAG[ek]].astype(np.int64)) - ESC - el) if enc else None, len(eb))
        esc_mag = np.minimum(ESC + el + rem, MAX_MAGNITUDE)
    if enc:
        return coefs
    # The AC values: sign times magnitude, where the capped magnitude is the
    # magnitude except at the escapes.
    for s in range(0, nb, CHUNK_BLOCKS):
        e = min(s + CHUNK_BLOCKS, nb)
        q[s:e, ZIGZAG[1:]] = sgn[s:e, 1:64] * capped[s:e, 1:64]
    if esc_mag is not None:
        q[eb, ZIGZAG[ek]] = sgn[eb, ek] * esc_mag
    return q


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
