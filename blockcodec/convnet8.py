"""Integer post-filter networks: the program format and its runner.

A post-filter ships as a program for the C core's 8-bit network runtime
(``cext/convnet8.h``, docs/FORMAT.md section 6): a handful of buffers and a
list of steps (convolutions and requantizations), every number an integer.
The decoder runs it straight from its ``.npz`` file, with numpy and the C
core only, and its output is a function of the decoded plane alone: the
same on every machine, kernel (``BLOCKCODEC_SIMD``), thread count and tile
size.  ``blockcodec.train.postfilter_export`` writes these files from the
float networks.

File layout (numpy ``.npz``, no pickles):

- ``buffers``: int32 [n, 3], rows (channels, type, zero), type 0 = uint8,
  1 = int16;
- ``ops``: int32 [m, 8], rows (kind, src, dst, skip, k, shift, lo, hi),
  kind 0 = convolution, 1 = requantization;
- ``w{i}`` (int8, packed), ``b{i}`` (int32) for every convolution ``i``,
  ``m{i}`` (int32) for every step;
- ``meta``: UTF-8 JSON with ``input``, ``output``, ``margin``, and what the
  program was made from.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import _cext
from .errors import BlockcodecError

CONV, REQUANT = 0, 1
U8, I16 = 0, 1
VEC = 16          # output channels are packed in groups of this many (CN8_VEC)
MAX_WEIGHT = 64   # CN8_MAX_WEIGHT
# Tiles of 256 pixels: each computed with its margin of context (10 pixels
# for the shipped WDSR, so 16 % of extra work), its largest buffer a few MB.
TILE = 256


@dataclass(frozen=True)
class Program:
    buffers: tuple[tuple[int, int, int], ...]
    ops: tuple[tuple, ...]            # the C core's op tuples, arrays included
    input: int
    output: int
    margin: int
    meta: dict = field(default_factory=dict)

    @property
    def input_channels(self) -> int:
        return self.buffers[self.input][0]

    def macs_per_pixel(self) -> int:
        """Multiply-adds per pixel of the convolutions as run (channel padding included)."""
        total = 0
        for kind, src, dst, _skip, k, *_ in self.ops:
            if kind == CONV:
                total += k * k * self.buffers[src][0] * self.buffers[dst][0]
        return total

    def run(self, plane: np.ndarray, consts: bytes, tile: int = TILE, threads: int = 1,
            simd: int = -1) -> np.ndarray:
        """The filtered plane (uint8, same shape).  consts: the values of
        input channels 1..C-1.  simd -1: ``BLOCKCODEC_SIMD`` or the best
        kernel."""
        plane = np.ascontiguousarray(plane, dtype=np.uint8)
        if plane.ndim != 2:
            raise ValueError("a post-filter runs on one 2-D plane")
        h, w = plane.shape
        out = np.empty_like(plane)
        _cext.convnet8_run(plane, h, w, np.frombuffer(bytes(consts), np.uint8), self.buffers, self.ops,
                           self.input, self.output, self.margin, tile, threads, simd, out)
        return out


def save(path, arrays: dict[str, np.ndarray]) -> None:
    """Writes a program's arrays (see the module docstring) atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    tmp.replace(path)


def load(path) -> Program:
    """A program from its ``.npz`` file; BlockcodecError if it is malformed."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise BlockcodecError(f"{path}: not a post-filter program ({e})") from None
    return from_arrays(arrays, str(path))


def from_arrays(arrays: dict[str, np.ndarray], where: str = "program") -> Program:
    try:
        meta = json.loads(bytes(arrays["meta"]).decode())
        buffers = tuple(tuple(int(v) for v in row) for row in np.asarray(arrays["buffers"], np.int64))
        ops = []
        for i, row in enumerate(np.asarray(arrays["ops"], np.int64)):
            kind, src, dst, skip, k, shift, lo, hi = (int(v) for v in row)
            mult = np.ascontiguousarray(arrays[f"m{i}"], np.int32)
            if kind == CONV:
                weights = np.ascontiguousarray(arrays[f"w{i}"], np.int8)
                bias = np.ascontiguousarray(arrays[f"b{i}"], np.int32)
            else:
                weights = bias = None
            ops.append((kind, src, dst, skip, k, shift, lo, hi, weights, bias, mult))
        program = Program(buffers, tuple(ops), int(meta["input"]), int(meta["output"]), int(meta["margin"]), meta)
        # The C core checks every rule of the format; one tiny run makes it do so now.
        program.run(np.zeros((1, 1), np.uint8), bytes(program.input_channels - 1), tile=8, threads=1)
    except (KeyError, ValueError, TypeError) as e:
        raise BlockcodecError(f"{where}: not a valid post-filter program ({e})") from None
    return program


def pack_weights(w: np.ndarray) -> np.ndarray:
    """Integer weights [cout][cin][k][k] (cin = the source buffer's
    channels) into the C core's order [k][k*cin/4][cpad][4]."""
    cout, cin, k, _ = w.shape
    if cin % 4:
        raise ValueError("a convolution reads a multiple of 4 channels")
    cpad = -(-cout // VEC) * VEC
    rows = np.zeros((k, k * cin, cpad), np.int8)
    # row ky, byte kx * cin + ci, channel c
    rows[:, :, :cout] = np.asarray(w).transpose(2, 3, 1, 0).reshape(k, k * cin, cout)
    return np.ascontiguousarray(rows.reshape(k, k * cin // 4, 4, cpad).transpose(0, 1, 3, 2))


def quality_byte(qtable) -> int:
    """The quality feature of a quantization table as the byte the
    post-filter reads: 255 * log2(mean step) / 8, rounded, clamped to
    0..255 (the float ``restoration.quality_feature`` times 255).  Computed
    in integers, so it is the same on every machine: log2 of the sum S of
    the 64 steps in 16.16 fixed point (exact to the last bit, by repeated
    squaring), minus log2(64)."""
    s = int(np.sum(np.asarray(qtable, dtype=np.int64)))
    s = max(s, 64)
    frac_bits = 16
    e = s.bit_length() - 1
    # mantissa in [1, 2) as a fixed-point number with 2 * frac_bits bits
    one = 1 << (2 * frac_bits)
    m = (s << (2 * frac_bits)) >> e
    log2 = e << frac_bits
    for bit in range(frac_bits - 1, -1, -1):
        m = (m * m) >> (2 * frac_bits)
        if m >= 2 * one:
            m >>= 1
            log2 |= 1 << bit
    value = (log2 - (6 << frac_bits)) * 255
    b = (value + (4 << frac_bits)) // (8 << frac_bits)
    return max(0, min(255, b))
