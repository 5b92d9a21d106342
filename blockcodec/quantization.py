"""Quality-scaled quantization tables and the encoder's rounding offsets.

The quality scale is IJG's (libjpeg's ``jpeg_quality_scaling``): quality q in
1..100 maps to a percentage applied to a base table, so users' intuitions from
JPEG carry over.  The base tables are not JPEG's Annex K tables: those are
tuned for the eye and spend bits badly under MSE.  Ours are nearly flat (equal
steps are MSE-optimal for an orthonormal transform at high rate) with a mild
tilt toward high frequencies, and chroma steps close to luma's because PSNR-RGB
feels chroma errors amplified (R = Y + 1.402 Cr).  Steps are integers computed
with integer arithmetic from committed integers: they are normative.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

QUALITY_MIN, QUALITY_MAX = 1, 100
MAX_STEP = 4096


def _tilted(base: int, tilt_per_mille: int) -> tuple[int, ...]:
    """Base step growing by tilt_per_mille per unit of u + v (integer arithmetic)."""
    return tuple(
        (base * (1000 + tilt_per_mille * (u + v)) + 500) // 1000 for u in range(8) for v in range(8)
    )


# Base tables at quality 50 (values in units of the orthonormal DCT's output).
# Tilts and the chroma step were chosen by BD-rate (PSNR-RGB) on the held-out
# split of the training images: first against JPEG (planar predictor, no
# post-filter), then, for format version 2, the chroma base again with the
# default codec as users get it (13 instead of 16: -0.87 % with its chroma
# lambda); see docs/DESIGN.md.
LUMA_TILT, CHROMA_TILT = 100, 60
LUMA_BASE = _tilted(base=20, tilt_per_mille=LUMA_TILT)
CHROMA_BASE = _tilted(base=13, tilt_per_mille=CHROMA_TILT)


def quality_scale(quality: int) -> int:
    """IJG's quality -> percentage mapping."""
    if not QUALITY_MIN <= quality <= QUALITY_MAX:
        raise ValueError(f"quality must be in {QUALITY_MIN}..{QUALITY_MAX}, got {quality}")
    return 5000 // quality if quality < 50 else 200 - 2 * quality


@lru_cache(maxsize=256)
def _table(quality: int, chroma: bool) -> bytes:
    scale = quality_scale(quality)
    base = CHROMA_BASE if chroma else LUMA_BASE
    steps = [min(MAX_STEP, max(1, (b * scale + 50) // 100)) for b in base]
    return np.array(steps, dtype=np.uint16).tobytes()


def qtable(quality: int, chroma: bool) -> np.ndarray:
    """The 64 quantizer steps (uint16, natural order) for a plane at this quality."""
    return np.frombuffer(_table(quality, chroma), dtype=np.uint16)


@dataclass(frozen=True)
class Rounding:
    """Encoder-side dead-zone rounding offsets, in 1/256 of a step.

    Rounding AC coefficients toward zero (offset < 128) trades a little
    distortion for many fewer nonzero symbols; it is an encoder choice that the
    decoder never sees."""

    dc: int = 128
    ac: int = 84

    def table(self) -> np.ndarray:
        t = np.full(64, self.ac, dtype=np.uint16)
        t[0] = self.dc
        return t
