"""Bjøntegaard delta rate and delta quality (VCEG-M33, 2001), classic variant.

BD-rate: for each curve fit log(rate) as a cubic polynomial of the quality metric
(PSNR in dB, or MS-SSIM in dB), integrate both fits over the metric interval where
the curves overlap, and turn the mean log-rate difference into a percentage.
Negative means the test codec needs fewer bits than the anchor for equal quality.

BD-PSNR (BD-metric): the mirror image, metric fitted as a cubic of log(rate) and
averaged over the overlapping log-rate interval; positive means the test codec
gives higher quality at equal rate.

The classic cubic fit (not the piecewise-cubic-interpolation variant used by newer
JVET tools) was requested; with 8-10 points per curve the two differ by well under
a percent on smooth curves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class BDResult:
    value: float          # percent for BD-rate, metric units (dB) for BD-metric
    note: str = ""        # why the value is NaN, or a caution about the overlap
    overlap: tuple[float, float] | None = None  # integration interval used


def _clean(rate, metric) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rate, dtype=np.float64).ravel()
    m = np.asarray(metric, dtype=np.float64).ravel()
    if r.shape != m.shape:
        raise ValueError("rate and metric must have the same length")
    # A lossless point (infinite PSNR) or a failed point cannot enter a fit.
    keep = np.isfinite(r) & np.isfinite(m) & (r > 0)
    return r[keep], m[keep]


def _fit_integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Integral over [lo, hi] of the least-squares polynomial y(x), degree <= 3.

    x is centred before fitting: with dB-valued x around 30-40 the raw Vandermonde
    matrix of a cubic is badly conditioned.
    """
    deg = min(3, x.size - 1)
    c = x.mean()
    p = np.polynomial.Polynomial.fit(x - c, y, deg, domain=[-1, 1], window=[-1, 1])
    ip = p.integ()
    return float(ip(hi - c) - ip(lo - c))


def _overlap(a: np.ndarray, b: np.ndarray) -> tuple[float, float, str]:
    lo, hi = max(a.min(), b.min()), min(a.max(), b.max())
    note = ""
    if hi > lo:
        # Extrapolated cubics are unreliable; flag overlaps that cover little of
        # either curve so a reader does not over-trust the number.
        frac = min((hi - lo) / (a.max() - a.min()), (hi - lo) / (b.max() - b.min()))
        if frac < 0.5:
            note = f"overlap covers only {frac:.0%} of one curve's range"
    return lo, hi, note


def bd_rate_result(rate_anchor, metric_anchor, rate_test, metric_test) -> BDResult:
    ra, ma = _clean(rate_anchor, metric_anchor)
    rt, mt = _clean(rate_test, metric_test)
    if ra.size < 2 or rt.size < 2:
        return BDResult(math.nan, "fewer than 2 valid points on a curve")
    lo, hi, note = _overlap(ma, mt)
    if not hi > lo:
        return BDResult(math.nan, f"no overlap in quality (anchor {ma.min():.2f}-{ma.max():.2f}, "
                                  f"test {mt.min():.2f}-{mt.max():.2f})")
    ia = _fit_integral(ma, np.log(ra), lo, hi)
    it = _fit_integral(mt, np.log(rt), lo, hi)
    mean_diff = (it - ia) / (hi - lo)
    return BDResult(float((math.exp(mean_diff) - 1.0) * 100.0), note, (lo, hi))


def bd_metric_result(rate_anchor, metric_anchor, rate_test, metric_test) -> BDResult:
    ra, ma = _clean(rate_anchor, metric_anchor)
    rt, mt = _clean(rate_test, metric_test)
    if ra.size < 2 or rt.size < 2:
        return BDResult(math.nan, "fewer than 2 valid points on a curve")
    la, lt = np.log(ra), np.log(rt)
    lo, hi, note = _overlap(la, lt)
    if not hi > lo:
        return BDResult(math.nan, f"no overlap in rate (anchor {ra.min():.3f}-{ra.max():.3f} bpp, "
                                  f"test {rt.min():.3f}-{rt.max():.3f} bpp)")
    ia = _fit_integral(la, ma, lo, hi)
    it = _fit_integral(lt, mt, lo, hi)
    return BDResult(float((it - ia) / (hi - lo)), note, (math.exp(lo), math.exp(hi)))


def bd_rate(rate_anchor, metric_anchor, rate_test, metric_test) -> float:
    """BD-rate in percent (negative = test needs fewer bits); NaN if no overlap."""
    return bd_rate_result(rate_anchor, metric_anchor, rate_test, metric_test).value


def bd_psnr(rate_anchor, psnr_anchor, rate_test, psnr_test) -> float:
    """BD-PSNR in dB (positive = test is better at equal rate); NaN if no overlap."""
    return bd_metric_result(rate_anchor, psnr_anchor, rate_test, psnr_test).value
