"""The post-filter program's arithmetic written out in numpy, for the tests:
the whole plane at once (edge pixels replicated by the margin, every
convolution padded with its source buffer's zero), int64 throughout.  The C
core, which works tile by tile, must match it exactly."""
from __future__ import annotations

import numpy as np

from blockcodec import convnet8


def unpack_weights(packed: np.ndarray, cin: int, cout: int) -> np.ndarray:
    """[k][k*cin/4][cpad][4] back to [ky][kx][cin][cout]."""
    k = packed.shape[0]
    rows = packed.astype(np.int64).transpose(0, 1, 3, 2).reshape(k, k * cin, -1)   # [ky][kx*cin+ci][cpad]
    return rows.reshape(k, k, cin, -1)[..., :cout]


def round_shift(v: np.ndarray, s: int) -> np.ndarray:
    return (v + (1 << (s - 1))) >> s


def run(program: convnet8.Program, plane: np.ndarray, consts: bytes) -> np.ndarray:
    m = program.margin
    x = np.pad(plane.astype(np.int64), m, mode="edge")
    h, w = x.shape
    bufs = {}
    cin = program.input_channels
    inp = np.zeros((h, w, cin), np.int64)
    inp[:, :, 0] = x
    for c in range(1, cin):
        inp[:, :, c] = consts[c - 1]
    bufs[program.input] = inp
    for kind, src, dst, skip, k, shift, lo, hi, weights, bias, mult in program.ops:
        channels, _type, zero = program.buffers[dst]
        if kind == convnet8.CONV:
            s = bufs[src]
            r = k // 2
            sp = np.pad(s, ((r, r), (r, r), (0, 0)), constant_values=program.buffers[src][2])
            wt = unpack_weights(weights, s.shape[2], channels)
            acc = np.zeros((h, w, channels), np.int64)
            for ky in range(k):
                for kx in range(k):
                    acc += sp[ky:ky + h, kx:kx + w] @ wt[ky, kx]
            t = round_shift((acc + bias.astype(np.int64)) * mult.astype(np.int64), shift)
        else:
            t = round_shift(bufs[src] * int(mult[0]), shift)
        if skip >= 0:
            t = t + bufs[skip]
        bufs[dst] = np.clip(t, lo, hi) + zero
    return bufs[program.output][m:h - m, m:w - m, 0].astype(np.uint8)
