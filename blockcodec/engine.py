"""The block coding loop: prediction and residual coding of one plane.

Blocks are coded in raster order, but a block only depends on its top-left,
top, top-right and left neighbours, so block (r, c) can be processed as soon as
wavefront t = 2r + c is reached: all blocks of one wavefront are independent
and go to the predictor as one batch.  Encoder and decoder run the same loop;
the decoder's arithmetic (prediction, dequantize + IDCT + add + clamp) is
integer throughout, so both produce the same reconstruction bit for bit.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import _cext
from .predictors import FILL, PlaneInfo, Predictor
from .scan import all_blocks, wavefronts  # noqa: F401  (engine.wavefronts: the coding order)


# --------------------------------------------------------------------------
# Threads

_threads: int | None = None   # set_threads(); None: the default below


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has
    one, else every CPU of the machine)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def set_threads(n: int | None) -> int | None:
    """How many threads the coding loop's C kernels (the BlockCNN network)
    may share a batch among; None restores the default (``threads()``).
    Returns the previous setting, for restoring it.  The thread count never
    changes a bit of the output."""
    global _threads
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"threads must be a positive integer or None, not {n!r}")
        n = int(n)
    previous, _threads = _threads, n
    return previous


def threads() -> int:
    """The thread count the C kernels use: ``set_threads``'s value; else
    OMP_NUM_THREADS where it is a positive integer (the kernel once took
    torch's count, which follows it); else ``available_cpus()``."""
    if _threads is not None:
        return _threads
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return available_cpus()


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
    # int16 [n_blocks, 64], quantized, natural order; None in the planes of a
    # Codec.encode or decode_result made with keep_trace=False, which free
    # them once they are coded
    coefs: np.ndarray | None
    prediction: np.ndarray | None = None   # uint8 [n_blocks, 64]
    residual: np.ndarray | None = None     # int16 [n_blocks, 64] (encoder only)
    timings: Timings = field(default_factory=Timings)


def _batches(predictor: Predictor, n_rows: int, n_cols: int):
    if predictor.causal:
        return wavefronts(n_rows, n_cols)
    return (all_blocks(n_rows, n_cols),)


# A plane that reads the previous plane of its group as a guide runs this many
# wavefronts behind it: block (r, c) of wavefront t = 2r + c reads the guide's
# 3x3 blocks around (r, c), the last of which, (r + 1, c + 1), is on wavefront
# t + 3 and must be complete one step before.
GUIDE_LAG = 4


@dataclass
class PlaneJob:
    """One plane for ``code_planes``: the source (encoding) or the quantized
    coefficients (decoding), and the decoded planes its predictor reads."""

    shape: tuple[int, int]
    info: PlaneInfo
    source: np.ndarray | None = None      # uint8 [H, W], encoder only
    coefs: np.ndarray | None = None       # int16 [n_blocks, 64], decoder only
    guides: list[np.ndarray] = field(default_factory=list)   # complete planes, padded (pad_guide)
    reads_previous: bool = False          # also reads the group's previous plane as it is decoded
    # Encoder only: quantize(residual, rows, cols, out) for a batch of blocks in
    # coding order (rdoq.PlaneQuantizer); None for dead-zone rounding.
    quantize: Callable | None = None


class _PlaneState:
    """The loop's working arrays for one plane."""

    def __init__(self, job: PlaneJob, batches, keep_trace: bool, keeps_live_guide: bool):
        self.job = job
        height, width = job.shape
        n = (height // 8) * (width // 8)
        self.n_cols = width // 8
        self.batches = batches
        self.encoding = job.source is not None
        self.recon = np.zeros((height, width), np.uint8)
        self.coefs = np.empty((n, 64), np.int16) if self.encoding else job.coefs
        self.pred_all = np.empty((n, 64), np.uint8) if keep_trace else None
        self.res_all = np.empty((n, 64), np.int16) if (keep_trace and self.encoding) else None
        # A plane that a later plane of the group reads is mirrored, block by
        # block as it is decoded, into a padded copy that serves as that guide.
        self.live = pad_guide(self.recon) if keeps_live_guide else None


def code_planes(jobs: list[PlaneJob], predictor: Predictor, rounding: np.ndarray | None = None,
                keep_trace: bool = False, progress=None) -> list[PlaneTrace]:
    """Run the coding loop over a group of same-sized planes (Cb and Cr).

    All planes of the group advance together, one wavefront per step, and each
    step makes a single ``predict_many`` call for all of them: the network's
    cost is mostly per call, not per block.  A plane that reads its
    predecessor (``reads_previous``: Cr reads the decoded Cb) runs GUIDE_LAG
    wavefronts behind it.  The blocks' inputs, and so the results, are exactly
    those of coding the planes one after another.

    Encoding: give each job its ``source`` and pass ``rounding``; the
    quantized coefficients are computed.  Decoding: give each job its
    ``coefs``.  Either way the reconstruction is returned, identical in both
    directions.  The group's time is recorded on its first trace.
    ``progress(n)``, if given, is called after each step with the number of
    blocks it completed (a large image takes many seconds).
    """
    if len({job.shape for job in jobs}) > 1:
        raise ValueError("a plane group must have planes of one size")
    height, width = jobs[0].shape
    n_rows, n_cols = height // 8, width // 8
    batches = _batches(predictor, n_rows, n_cols)
    lag = (GUIDE_LAG if predictor.causal else 1) if any(j.reads_previous for j in jobs[1:]) else 0
    states = [_PlaneState(job, batches, keep_trace, k + 1 < len(jobs) and jobs[k + 1].reads_previous)
              for k, job in enumerate(jobs)]
    t = Timings()
    for step in range(len(batches) + lag * (len(jobs) - 1)):
        t0 = time.perf_counter()
        active, parts = [], []
        for k, st in enumerate(states):
            front = step - k * lag
            if not 0 <= front < len(batches):
                continue
            rows, cols = batches[front]
            active.append((st, rows, cols))
            parts.append(_predictor_inputs(st, rows, cols, predictor, states[k - 1] if k else None))
        t1 = time.perf_counter()
        preds = predictor.predict_many(parts)
        t2 = time.perf_counter()
        recs = [_code_blocks(st, rows, cols, pred, rounding) for (st, rows, cols), pred in zip(active, preds)]
        t3 = time.perf_counter()
        for (st, rows, cols), (pred, rec) in zip(active, recs):
            _cext.scatter_blocks(st.recon, width, height, rows, cols, rec)
            if st.live is not None:
                _cext.scatter_blocks(st.live, width + 16, height + 16, rows + 1, cols + 1, rec)
            if st.pred_all is not None:
                st.pred_all[rows * n_cols + cols] = pred
        t4 = time.perf_counter()
        t.glue += (t1 - t0) + (t4 - t3)
        t.prediction += t2 - t1
        t.transform += t3 - t2
        if progress is not None:
            progress(sum(len(rows) for _, rows, _ in active))
    traces = [PlaneTrace(recon=st.recon, coefs=st.coefs, prediction=st.pred_all, residual=st.res_all)
              for st in states]
    traces[0].timings = t
    return traces


def _predictor_inputs(st: _PlaneState, rows, cols, predictor: Predictor, previous: "_PlaneState | None"):
    """(contexts, avail, info, guide windows) of a batch of blocks."""
    height, width = st.job.shape
    n = len(rows)
    if predictor.causal:
        ctx = np.empty((n, 24, 24), np.uint8)
        avail = np.empty((n, 4), np.uint8)
        _cext.gather_contexts(st.recon, width, height, rows, cols, FILL, ctx, avail)
    else:  # the predictor ignores contexts; hand it defined values anyway, as read-only
        # views: its one batch is the whole plane, 9 bytes a pixel if materialized
        ctx = np.broadcast_to(np.uint8(FILL), (n, 24, 24))
        avail = np.broadcast_to(np.uint8(0), (n, 4))
    win = None
    if predictor.guides:
        guides = list(st.job.guides) + ([previous.live] if st.job.reads_previous else [])
        if guides:
            win = np.stack([guide_windows(g, rows, cols) for g in guides], 1)
    return ctx, avail, st.job.info, win


def _code_blocks(st: _PlaneState, rows, cols, pred, rounding):
    """Quantize the residual (encoder) and reconstruct a batch of blocks."""
    n = len(rows)
    qt = st.job.info.qtable
    idx = rows * st.n_cols + cols
    pred = np.ascontiguousarray(pred, dtype=np.uint8).reshape(n, 64)
    height, width = st.job.shape
    if st.encoding:
        src = np.empty((n, 64), np.uint8)
        _cext.gather_blocks(st.job.source, width, height, rows, cols, src)
        residual = src.astype(np.int16) - pred
        q = np.empty((n, 64), np.int16)
        if st.job.quantize is not None:
            st.job.quantize(residual, rows, cols, q)
        else:
            _cext.fdct_quantize(residual, qt, rounding, q)
        st.coefs[idx] = q
        if st.res_all is not None:
            st.res_all[idx] = residual
    else:
        q = np.ascontiguousarray(st.coefs[idx])
    rec = np.empty((n, 64), np.uint8)
    _cext.reconstruct(q, qt, pred, rec)
    return pred, rec


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
    """Run the coding loop over one padded plane (``code_planes`` with a
    group of one).  ``guides`` are complete decoded planes at this plane's
    resolution, padded with ``pad_guide``, for predictors that read them."""
    job = PlaneJob(shape, info, plane, coefs, list(guides or []))
    return code_planes([job], predictor, rounding, keep_trace)[0]
