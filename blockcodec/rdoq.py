"""Rate-distortion optimized quantization: the encoder's choice of levels.

The decoder reads levels, not how they were chosen, so this is an encoder
option with no format change.  Per block the C core (cext/rdoq.c) minimises
D + lambda * R, where R is the block's rate under the entropy coder's own
tables and contexts (entropy.py) given the decisions already made for its
left and top neighbours, which makes the rate model exact for every symbol
but the context effects on later blocks (tests/test_rdoq.py measures it
against the coder).  lambda follows the quantizer: lambda = LAMBDA_SCALE *
mean luma step^2, below the high-rate slope of a uniform quantizer (2 ln 2 *
step^2 / 12 = 0.116 step^2) because reconstruction errors feed later
predictions and the post-filter; the chroma planes' lambdas follow from
their weight in RGB error (plane_lambdas).  Both factors were tuned on the
held-out training split (docs/DESIGN.md).

Effort (``--effort``, like ``cwebp -m`` or ``cjxl -e``):
  0  dead-zone rounding (the fixed offsets of quantization.Rounding), fastest;
  1  round to nearest, then the best end of block (fast, and worse than 0:
     a reference point more than a setting);
  2  plus one greedy pass over the levels (lower by one, or zero), the default;
  3  plus greedy passes until nothing changes (at most EFFORT_PASSES[3]).
"""
from __future__ import annotations

import numpy as np

from . import _cext, entropy

EFFORTS = (0, 1, 2, 3)
DEFAULT_EFFORT = 2
EFFORT_PASSES = {1: 0, 2: 1, 3: 4}
LAMBDA_SCALE = 0.05    # times the mean luma step squared; tuned, see docs/DESIGN.md
CHROMA_LAMBDA = 0.5    # the chroma planes' lambda beyond their RGB weight; tuned likewise
_Q16 = 1 << 16
_NO_NEIGHBOUR = 65     # cext/rdoq.h: RDOQ_NO_NEIGHBOUR


def _costs(freqs: np.ndarray) -> np.ndarray:
    """Q16 bits of every symbol of every row, -log2(f / row sum), in the C
    core's integer arithmetic: no libm, so every machine encodes alike."""
    f = np.ascontiguousarray(freqs, dtype=np.uint32)
    out = np.empty(f.shape, np.int32)
    _cext.rate_costs(f.reshape(-1), f.shape[1], out.reshape(-1))
    return out


_MODELS: dict[tuple[bytes, int], tuple[np.ndarray, ...]] = {}
_COSTS: dict[bytes, tuple[np.ndarray, ...]] = {}


def _model(tables: entropy.Tables, pc: int) -> tuple[np.ndarray, ...]:
    """The int32 arrays of cext/rdoq.h's RdoqModel for one plane class
    (entropy.plane_class), built once per table set."""
    key = (tables.hash, pc)
    if key not in _MODELS:
        _MODELS[key] = _build_model(tables, pc)
    return _MODELS[key]


def _build_model(tables: entropy.Tables, pc: int) -> tuple[np.ndarray, ...]:
    # The coder's own tables: rows by the neighbours' mean 0..64, then "no
    # neighbour" (index _NO_NEIGHBOUR); the DC rows of blocks with EOB > 1.
    eob_row, dc_row = entropy.pass_a_lookup(pc)
    assert len(eob_row) == _NO_NEIGHBOUR + 1
    dc_row = dc_row[0::2]
    ac_row, nb4 = entropy.ac_lookup(pc)
    up, left = np.divmod(np.arange(9), 3)   # (k, sign up + 1, sign left + 1), k = 0 unused
    sign_row = np.stack([entropy.sign_context(max(kk, 1), up - 1, left - 1, pc) for kk in range(64)])
    if tables.hash not in _COSTS:    # one set of cost tables serves every plane class
        _COSTS[tables.hash] = tuple(_costs(tables.freqs[name]).reshape(-1) for name in ("eob", "dc", "ac", "sign"))
        _COSTS[tables.hash] += (_costs(tables.freqs["esc"])[0],)
    arrays = (entropy.ZIGZAG, entropy.ZZ_UP, entropy.ZZ_LEFT, eob_row, dc_row, ac_row, nb4,
              sign_row.reshape(-1))
    return tuple(np.ascontiguousarray(a, dtype=np.int32).reshape(-1) for a in arrays) + _COSTS[tables.hash]


# What a squared error in each plane costs in RGB squared error (BT.601
# full-range YCbCr: R = Y + 1.402 Cr, G = Y - 0.344 Cb - 0.714 Cr,
# B = Y + 1.772 Cb, errors taken independent), per pixel of the image.
RGB_WEIGHTS = (1.0, (0.344136 ** 2 + 1.772 ** 2) / 3, (1.402 ** 2 + 0.714136 ** 2) / 3)


def plane_lambdas(luma_qtable: np.ndarray, n_planes: int, chroma_samples_per_pixel: float,
                  scale: float = LAMBDA_SCALE, chroma_scale: float = CHROMA_LAMBDA) -> list[int]:
    """One lambda per plane for J = D * 2^16 + lambda * R (D in the C core's
    DCT units, 2^3 per unit, so squared errors carry a factor 64; R in Q16
    bits).  All planes share one slope on the RGB error: a chroma sample's
    error weighs RGB_WEIGHTS / chroma_samples_per_pixel (1/4 in 4:2:0) of a
    luma sample's, so its lambda is that much smaller, times chroma_scale."""
    mean_step = float(np.mean(luma_qtable.astype(np.float64)))
    lam = scale * mean_step * mean_step * 64
    out = [lam]
    for w in RGB_WEIGHTS[1:n_planes]:
        out.append(lam * chroma_samples_per_pixel / (w / RGB_WEIGHTS[0]) * chroma_scale)
    return [int(round(v)) for v in out]


class PlaneQuantizer:
    """The quantizer of one plane, called by the coding loop on each batch of
    blocks in coding order; it keeps the record of decisions that later
    blocks' contexts read."""

    def __init__(self, tables: entropy.Tables, chroma: bool, quality: int, n_rows: int, n_cols: int,
                 qtable: np.ndarray, dc_prediction: bool, lam: int, effort: int = DEFAULT_EFFORT):
        if effort not in EFFORT_PASSES:
            raise ValueError(f"effort {effort!r} has no rate-distortion quantizer")
        self.model = _model(tables, entropy.plane_class(chroma, quality))
        self.qtable = np.ascontiguousarray(qtable, dtype=np.uint16)
        self.n_cols = n_cols
        n = n_rows * n_cols
        self.eob, self.dmag, self.dc = (np.zeros(n, np.int32) for _ in range(3))
        self.mags = np.zeros(n * 64, np.uint8)
        self.dc_prediction = dc_prediction
        self.passes = EFFORT_PASSES[effort]
        self.lam = lam
        self.rate_q16 = 0      # the model's rate of everything quantized so far

    def __call__(self, residual: np.ndarray, rows: np.ndarray, cols: np.ndarray, out: np.ndarray) -> None:
        self.rate_q16 += _cext.rdo_quantize(
            residual, self.qtable, np.ascontiguousarray(rows, dtype=np.int32),
            np.ascontiguousarray(cols, dtype=np.int32), self.n_cols, self.eob, self.dmag, self.dc, self.mags,
            self.dc_prediction, self.model, self.lam, self.passes, out)

    @property
    def bits(self) -> float:
        return self.rate_q16 / _Q16
