"""Choosing the quality that meets a size target (``encode --target-bpp``).

The rule: the highest integer quality whose file is at most the target bits
per pixel.  Searching by full encodes takes 5 to 8 of them, which on a 24-MP
photo is minutes.  So on large images the curve bpp(quality) is first
estimated on a *mosaic*: 64x64 tiles sampled on a regular grid over the
image, 1/32 of its pixels (at least 16 tiles), joined into one small image
and coded with the same settings.  The mosaic's bpp has the right shape in
quality but is too high (tile seams), by a share measured once
(``seam_correction``) and again at each full encode: each rescales the
estimate by the ratio it found, and the next full encode tries the quality the
rescaled estimate predicts.
The search ends when the quality one higher is known to be over the
target, measured or clearly (3 %) by the rescaled estimate.  On two 24-MP
composites of training images that took 2 full encodes and 6-9 of the mosaic
(1/32 of the cost each); MAX_FULL_ENCODES caps it at 3.
"""
from __future__ import annotations

import functools
import math
from typing import Callable

import numpy as np

TILE = 64                  # a multiple of 16, so tiles keep the 4:2:0 macroblock grid
MOSAIC_FRACTION = 32       # the mosaic has 1/32 of the image's pixels ...
MIN_TILES = 16             # ... but at least this many tiles,
MAX_SHARE = 16             # and at most 1/16 of them: smaller images are bisected directly
# With a quality at or below the target in hand, stop after this many full
# encodes even if the one above it was not tried (the estimate was far off).
MAX_FULL_ENCODES = 3
CONFIRM_MARGIN = 0.03


def mosaic(image: np.ndarray) -> np.ndarray | None:
    """Tiles sampled evenly over ``image``, joined in a grid; None when the
    image is too small for a mosaic to save anything."""
    height, width = image.shape[:2]
    n = max(MIN_TILES, height * width // (TILE * TILE * MOSAIC_FRACTION))
    if n * TILE * TILE * MAX_SHARE > height * width or height < TILE or width < TILE:
        return None
    rows = max(1, min(height // TILE, round((n * height / width) ** 0.5)))
    cols = max(1, min(width // TILE, -(-n // rows)))

    def starts(count: int, size: int) -> list[int]:
        # centres of `count` equal strips, snapped to the block grid
        return [min(size - TILE, max(0, int((i + 0.5) * size / count) - TILE // 2)) // 16 * 16
                for i in range(count)]

    ys, xs = starts(rows, height), starts(cols, width)
    return np.ascontiguousarray(np.concatenate(
        [np.concatenate([image[y:y + TILE, x:x + TILE] for x in xs], axis=1) for y in ys], axis=0))


def seam_correction(quality: int) -> float:
    """Full bpp / mosaic bpp, as measured on two 24-MP composites of training
    images (sunhays80 and bsds500, upscaled 2x and tiled): 0.77-0.79 at quality
    30, 0.81-0.84 at 60, 0.84-0.89 at 85.  The tiles' seams cost the mosaic
    bits, a smaller share at high quality."""
    return 0.74 + 0.0015 * quality


def estimator(image: np.ndarray, bpp_at: Callable[[np.ndarray, int], float]) -> Callable[[int], float] | None:
    """A cheap estimate of bpp(quality) for ``image``, from ``bpp_at(mosaic, q)``;
    None for images too small to have a mosaic."""
    sample = mosaic(image)
    if sample is None:
        return None
    return lambda q: seam_correction(q) * bpp_at(sample, q)


def _highest_within(lo: int, hi: int, value: Callable[[int], float], limit: float) -> int:
    """The highest q in lo..hi with value(q) <= limit, for a value that grows
    about exponentially with q (as bpp does); lo when none is.  Once both sides
    of the answer have been seen, probes are placed by interpolating log(value)
    between them, which takes about 4 probes where bisection takes 7."""
    a, b = lo - 1, hi + 1        # value(a) <= limit < value(b), where known
    va = vb = None
    while b - a > 1:
        q = (a + b) // 2
        if va and vb:
            t = (math.log(limit) - math.log(va)) / (math.log(vb) - math.log(va))
            q = min(b - 1, max(a + 1, a + round(t * (b - a))))
        v = value(q)
        if v <= limit:
            a, va = q, v
        else:
            b, vb = q, v
    return max(a, lo)


def _search(encode_at: Callable[[int], object], target_bpp: float):
    """Search by full encodes only: (encoding, reached), see find_quality."""
    encode = functools.cache(encode_at)
    enc = encode(_highest_within(1, 100, lambda q: encode(q).result.bpp, target_bpp))
    return enc, enc.result.bpp <= target_bpp


def find_quality(encode_at: Callable[[int], object], target_bpp: float,
                 estimate_at: Callable[[int], float] | None = None):
    """The highest quality whose full encode is at most ``target_bpp``.

    ``encode_at(q)`` is a full encode (an object with ``.quality`` and
    ``.result.bpp``); ``estimate_at(q)``, a cheap estimate of its bpp (the
    mosaic's).  Returns (encoding, reached); reached is False when even
    quality 1 is over the target (quality 1 is returned then)."""
    if estimate_at is None:
        return _search(encode_at, target_bpp)
    estimate = functools.cache(estimate_at)
    under = None            # the best full encode at or below the target so far
    over = 101              # the lowest quality known to be over it
    scale = 1.0             # full bpp / mosaic bpp, as last measured
    spent = 0

    def settled() -> bool:
        if over == under.quality + 1 or under.quality == 100 or spent == MAX_FULL_ENCODES:
            return True
        # Rescaled at the quality just measured, the estimate is good to about
        # 1 %: one quality up, clearly over the target, needs no full encode.
        return scale * estimate(under.quality + 1) > target_bpp * (1 + CONFIRM_MARGIN)

    while under is None or not settled():
        spent += 1
        lo = under.quality + 1 if under else 1
        q = _highest_within(lo, over - 1, lambda q: scale * estimate(q), target_bpp)
        enc = encode_at(q)
        scale = enc.result.bpp / estimate(q)
        if enc.result.bpp <= target_bpp:
            under = enc
        else:
            over = q
            if q == 1:
                return enc, False
    return under, True
