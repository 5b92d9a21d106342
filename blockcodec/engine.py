"""The block coding loop: prediction and residual coding of one plane.

Blocks are coded in raster order, but a block only depends on its top-left,
top, top-right and left neighbours, so block (r, c) can be processed as soon as
wavefront t = 2r + c is reached: all blocks of one wavefront are independent
and go to the predictor as one batch.  Encoder and decoder run the same loop;
the decoder's arithmetic (prediction, dequantize + IDCT + add + clamp) is
integer throughout, so both produce the same reconstruction bit for bit.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from . import _cext
from .predictors import FILL, PlaneInfo, Predictor


@lru_cache(maxsize=64)
def wavefronts(n_rows: int, n_cols: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """(rows, cols) int32 arrays of the blocks of each wavefront t = 2r + c."""
    fronts = []
    for t in range(2 * (n_rows - 1) + n_cols):
        r = np.arange(max(0, (t - n_cols + 2) // 2), min(n_rows - 1, t // 2) + 1, dtype=np.int32)
        if len(r):  # a one-column plane has no blocks on odd wavefronts
            fronts.append((r, (t - 2 * r).astype(np.int32)))
    return tuple(fronts)


@lru_cache(maxsize=64)
def _all_blocks(n_rows: int, n_cols: int) -> tuple[np.ndarray, np.ndarray]:
    r, c = np.divmod(np.arange(n_rows * n_cols, dtype=np.int32), np.int32(n_cols))
    return r.astype(np.int32), c.astype(np.int32)


def pad_guide(plane: np.ndarray) -> np.ndarray:
    """A fully decoded plane padded by one block of FILL on every side, ready
    for ``guide_windows``."""
    return np.pad(plane, 8, constant_values=FILL)


def guide_windows(padded: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """uint8 [n, 24, 24]: the 3x3-block windows of a padded guide plane centred
    on blocks (rows, cols).  Unlike contexts nothing is masked: a guide plane
    is decoded completely before the plane it guides."""
    view = np.lib.stride_tricks.sliding_window_view(padded, (24, 24))
    return view[rows * 8, cols * 8]


@dataclass
class Timings:
    """Seconds spent per stage, accumulated over planes."""

    prediction: float = 0.0
    transform: float = 0.0
    glue: float = 0.0

    def add(self, other: "Timings") -> None:
        self.prediction += other.prediction
        self.transform += other.transform
        self.glue += other.glue


@dataclass
class PlaneTrace:
    """Everything the loop produced for one plane, in raster block order."""

    recon: np.ndarray                  # uint8 [H, W], the decoded plane
    coefs: np.ndarray                  # int16 [n_blocks, 64], quantized, natural order
    prediction: np.ndarray | None = None   # uint8 [n_blocks, 64]
    residual: np.ndarray | None = None     # int16 [n_blocks, 64] (encoder only)
    timings: Timings = field(default_factory=Timings)


def _batches(predictor: Predictor, n_rows: int, n_cols: int):
    if predictor.causal:
        return wavefronts(n_rows, n_cols)
    return (_all_blocks(n_rows, n_cols),)


def code_plane(
    plane: np.ndarray | None,
    coefs: np.ndarray | None,
    shape: tuple[int, int],
    predictor: Predictor,
    info: PlaneInfo,
    rounding: np.ndarray | None = None,
    keep_trace: bool = False,
    guides: list[np.ndarray] | None = None,
) -> PlaneTrace:
    """Run the coding loop over one padded plane.

    Encoding: pass the source ``plane`` (uint8, dimensions multiples of 8) and
    ``rounding``; the quantized coefficients are computed.  Decoding: pass
    ``coefs`` (int16 [n_blocks, 64]).  Either way the reconstruction is
    returned, identical in both directions.  ``guides`` are already decoded
    planes at this plane's resolution, padded with ``pad_guide``, for
    predictors that read them.
    """
    height, width = shape
    n_rows, n_cols = height // 8, width // 8
    encoding = plane is not None
    recon = np.zeros((height, width), np.uint8)
    if encoding:
        coefs = np.empty((n_rows * n_cols, 64), np.int16)
    pred_all = np.empty((n_rows * n_cols, 64), np.uint8) if keep_trace else None
    res_all = np.empty((n_rows * n_cols, 64), np.int16) if (keep_trace and encoding) else None
    qt = info.qtable
    t = Timings()
    for rows, cols in _batches(predictor, n_rows, n_cols):
        n = len(rows)
        idx = rows * n_cols + cols
        t0 = time.perf_counter()
        if predictor.causal:
            ctx = np.empty((n, 24, 24), np.uint8)
            avail = np.empty((n, 4), np.uint8)
            _cext.gather_contexts(recon, width, height, rows, cols, FILL, ctx, avail)
        else:  # the predictor ignores contexts; hand it defined values anyway
            ctx = np.full((n, 24, 24), FILL, np.uint8)
            avail = np.zeros((n, 4), np.uint8)
        win = None
        if guides and predictor.guides:
            win = np.stack([guide_windows(g, rows, cols) for g in guides], 1)
        t1 = time.perf_counter()
        pred = np.ascontiguousarray(predictor.predict(ctx, avail, info, win), dtype=np.uint8).reshape(n, 64)
        t2 = time.perf_counter()
        if encoding:
            src = np.empty((n, 64), np.uint8)
            _cext.gather_blocks(plane, width, height, rows, cols, src)
            residual = src.astype(np.int16) - pred
            q = np.empty((n, 64), np.int16)
            _cext.fdct_quantize(residual, qt, rounding, q)
            coefs[idx] = q
            if res_all is not None:
                res_all[idx] = residual
        else:
            q = np.ascontiguousarray(coefs[idx])
        rec = np.empty((n, 64), np.uint8)
        _cext.reconstruct(q, qt, pred, rec)
        t3 = time.perf_counter()
        _cext.scatter_blocks(recon, width, height, rows, cols, rec)
        if pred_all is not None:
            pred_all[idx] = pred
        t4 = time.perf_counter()
        t.glue += (t1 - t0) + (t4 - t3)
        t.prediction += t2 - t1
        t.transform += t3 - t2
    return PlaneTrace(recon=recon, coefs=coefs, prediction=pred_all, residual=res_all, timings=t)
