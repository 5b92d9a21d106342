"""Predictor ablation on Kodak: what BlockCNN's luma and chroma networks each add.

    python -m kodak_eval.predictor_report [--images N] [--qualities 10,20,...,90]
                                          [--jobs J] [--out kodak_eval/results]

Codes every Kodak image with blockcodec (4:2:0, no post-filter) over a quality
sweep with five predictor variants:

    none                  no prediction (DCT of level-shifted samples, as JPEG)
    planar                classical HEVC-style planar prediction
    blockcnn              CNN luma + CNN chroma (chroma reads decoded luma / Cb)
    blockcnn-luma-only    CNN luma, planar chroma
    blockcnn-chroma-only  planar luma, CNN chroma

With --no-cfl-weights NPZ (a model trained by ``blockcodec train predictor
--no-chroma-guides``) a sixth variant, blockcnn-no-cfl, measures
chroma-from-luma: CNN luma + a chroma network trained with the same budget
but blind to the decoded luma and Cb.

The partial variants are not shipped predictors: this script builds them from the
shipped ones and registers them in ``blockcodec.predictors.REGISTRY`` under
ids >= 200 for the duration of the run only.  Every stream is decoded again
and checked identical to the encoder's reconstruction, so each variant is
shown to be a working codec, not just a rate estimate.

Writes to --out:

* ablation.md   the command and date, RD points and BD-rates (vs planar and vs
                none) per variant, bits per entropy-coding stage and timings at
                quality 50 for none / planar / blockcnn;
* ablation.csv  one row per (variant, quality, image);
* prediction_<image>.png  original luma, planar and BlockCNN predictions and
                their absolute residuals at quality 50 (cf. Figure 6 of the
                BlockCNN paper).
"""

from __future__ import annotations

import os

# Same pinning as python -m kodak_eval, and for the same reason: timings are per
# image on one core, and torch must not grab both cores of the machine.  Set
# before numpy/torch are imported; spawned workers inherit it; an explicit
# setting in the environment wins.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import csv  # noqa: E402
import datetime  # noqa: E402
import functools  # noqa: E402
import hashlib  # noqa: E402
import math  # noqa: E402
import multiprocessing as mp  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor, as_completed  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import NamedTuple  # noqa: E402

import numpy as np  # noqa: E402

import blockcodec  # noqa: E402
from blockcodec import predictors, zoo  # noqa: E402
from blockcodec.predictors import Predictor  # noqa: E402
from blockcodec.predictors.base import by_plane_kind  # noqa: E402

from .__main__ import (  # noqa: E402
    KODAK_REL, PKG_DIR, _int_list, _loadavg, kodak_images, library_versions, machine_info)
from .bdrate import bd_metric_result, bd_rate_result  # noqa: E402
from .evaluate import _NoBar, load_rgb  # noqa: E402
from .metrics import psnr  # noqa: E402

PROG = "python -m kodak_eval.predictor_report"
SUBSAMPLING = "420"
DEFAULT_QUALITIES = (10, 20, 30, 40, 50, 60, 70, 80, 90)
DETAIL_QUALITY = 50          # bits-per-stage table, timings and the figure
TEMP_ID_BASE = 200           # ids the shipped codec never writes


@dataclass(frozen=True)
class Variant:
    name: str
    luma: str      # registry name of the predictor for Y
    chroma: str    # registry name of the predictor for Cb and Cr
    about: str


VARIANTS = (
    Variant("none", "none", "none", "no prediction (DCT of level-shifted samples, as JPEG)"),
    Variant("planar", "planar", "planar", "classical HEVC-style planar prediction"),
    Variant("blockcnn", "blockcnn", "blockcnn",
            "full BlockCNN: CNN luma + CNN chroma reading the decoded luma (and Cb for Cr)"),
    Variant("blockcnn-luma-only", "blockcnn", "planar",
            "CNN luma, planar chroma: without the chroma network and its cross-component input"),
    Variant("blockcnn-chroma-only", "planar", "blockcnn", "planar luma, CNN chroma"),
)
# The chroma-from-luma ablation: a chroma network trained with the shipped
# run's budget but blind to the decoded luma and Cb (``blockcodec train
# predictor --no-chroma-guides``).  Not shipped; included when its weights are
# given (--no-cfl-weights), which registers its chroma network as BLIND.
BLIND = "blockcnn-blind-chroma"
NO_CFL = Variant("blockcnn-no-cfl", "blockcnn", BLIND,
                 "CNN luma, CNN chroma retrained with the same budget without cross-component input "
                 "(no decoded luma or Cb)")
_blind_weights: list[str] = []     # the NO_CFL weights path, once enabled


def variants() -> tuple[Variant, ...]:
    return VARIANTS + ((NO_CFL,) if _blind_weights else ())


def variant_names() -> tuple[str, ...]:
    return tuple(v.name for v in variants())


VARIANT_NAMES = tuple(v.name for v in VARIANTS)
STAGE_VARIANTS = ("none", "planar", "blockcnn")
BD_ANCHORS = ("planar", "none")
# Entropy-coder stages in coding order, for stable table rows and CSV columns;
# stages not listed here (a future coder) are appended in sorted order.
STAGE_ORDER = ("dc", "eob", "ac", "escape", "sign", "container")


# ------------------------------------------------------------- variants

class PerPlanePredictor(Predictor):
    """One predictor for luma, another for both chroma planes."""

    def __init__(self, name: str, luma: Predictor, chroma: Predictor):
        self.name = name
        self.luma = luma
        self.chroma = chroma

    def predict(self, contexts, avail, plane, guides=None):
        # Guides are passed through untouched: the engine only builds them
        # when ``guides`` below is true, i.e. for a chroma CNN.
        return (self.chroma if plane.chroma else self.luma).predict(contexts, avail, plane, guides)

    def predict_many(self, parts):
        # Keep the halves' own batching (Cb and Cr in one network call).
        return by_plane_kind(parts, lambda chroma, sub: (self.chroma if chroma else self.luma).predict_many(sub))

    def weights_hash(self) -> bytes:
        # A decoder must refuse the stream if either half changed.
        return hashlib.sha256(self.luma.weights_hash() + self.chroma.weights_hash()).digest()[:4]

    @property
    def guides(self) -> bool:
        # The engine never gives luma (plane 0) guides, so only the chroma
        # predictor's needs count.
        return self.chroma.guides

    @property
    def causal(self) -> bool:
        # A non-causal batch hands every block FILL contexts, which would
        # silently cripple a causal half: be causal if either half is.
        return self.luma.causal or self.chroma.causal


class GuideBlind(Predictor):
    """A BlockCNN whose chroma network was trained blind to its guides: they
    are replaced by 128, i.e. zero network input, exactly as in training."""

    def __init__(self, path: str):
        from blockcodec.predictors.blockcnn import BlockCNNPredictor
        self.name = BLIND
        self.inner = BlockCNNPredictor(path, name=BLIND)

    @staticmethod
    def _blind(part):
        contexts, avail, plane, guides = part
        return contexts, avail, plane, None if guides is None else np.full_like(guides, 128)

    def predict(self, contexts, avail, plane, guides=None):
        return self.inner.predict(*self._blind((contexts, avail, plane, guides)))

    def predict_many(self, parts):
        return self.inner.predict_many([self._blind(p) for p in parts])

    def weights_hash(self) -> bytes:
        return self.inner.weights_hash()

    @property
    def guides(self) -> bool:
        return True   # the network still has the (zeroed) guide channels


def _build_variant(v: Variant) -> Predictor:
    # Shares the registry's instances, so the BlockCNN weights load once.
    return PerPlanePredictor(v.name, predictors.get(v.luma), predictors.get(v.chroma))


def _register_variants(blind_weights: str | None = None) -> list[str]:
    """Add the variants the registry lacks under free ids >= TEMP_ID_BASE;
    returns the names added.  Deterministic, so every worker process agrees."""
    if blind_weights and not _blind_weights:
        _blind_weights.append(blind_weights)
    used = {pid for pid, _ in predictors.REGISTRY.values()}
    instances = getattr(predictors, "_instances", None)
    added, next_id = [], TEMP_ID_BASE
    entries = [(v.name, functools.partial(_build_variant, v)) for v in VARIANTS]
    if _blind_weights:
        entries = [(BLIND, functools.partial(GuideBlind, _blind_weights[0])),
                   (NO_CFL.name, functools.partial(_build_variant, NO_CFL))] + entries
    for name, build in entries:
        if name in predictors.REGISTRY:
            continue
        while next_id in used:
            next_id += 1
        if next_id > 255:  # the header stores the id in one byte
            raise RuntimeError("no free predictor id >= 200 left for a temporary variant")
        predictors.REGISTRY[name] = (next_id, build)
        used.add(next_id)
        if instances is not None:
            instances.pop(name, None)   # never reuse an instance of some older meaning
        added.append(name)
    return added


@contextlib.contextmanager
def temporary_variants(blind_weights: str | None = None):
    """Register the non-shipped variants for the duration of the block, then
    put the registry (and its instance cache) back exactly as it was."""
    saved = dict(predictors.REGISTRY)
    added = _register_variants(blind_weights)
    try:
        yield added
    finally:
        predictors.REGISTRY.clear()
        predictors.REGISTRY.update(saved)
        instances = getattr(predictors, "_instances", None)
        if instances is not None:
            for name in added:
                instances.pop(name, None)


@contextlib.contextmanager
def threads_pinned():
    """Run the codec's C kernels (and torch, where something imported it)
    with OMP_NUM_THREADS threads (1 unless the environment says otherwise),
    then restore the caller's settings.  Set explicitly because the codec's
    setting may already have been changed in this process, and torch would
    ignore the environment variable if it was imported before this module (as
    under pytest); on a loaded 2-core machine oversubscription makes either
    many times slower."""
    from blockcodec import engine
    n = max(1, int(os.environ.get("OMP_NUM_THREADS", "1")))
    torch = sys.modules.get("torch")
    saved_torch = torch.get_num_threads() if torch is not None else None
    saved = engine.set_threads(n)
    if torch is not None:
        torch.set_num_threads(n)
    try:
        yield engine.threads()
    finally:
        engine.set_threads(saved)
        if torch is not None:
            torch.set_num_threads(saved_torch)


def _worker_init(blind_weights: str | None = None) -> None:
    # A spawned worker starts with the shipped registry only.  It lives just
    # for this run, so the variants are registered for its whole life.
    _register_variants(blind_weights)


# ---------------------------------------------------------- measurement

class Job(NamedTuple):
    variant: str
    quality: int
    image: str     # stem, e.g. kodim01
    path: str


_RGB_MEMO: dict[str, np.ndarray] = {}


def _rgb(path: str) -> np.ndarray:
    # Each process decodes each PNG once (5 variants x 9 qualities reuse it).
    if path not in _RGB_MEMO:
        _RGB_MEMO[path] = load_rgb(path)
    return _RGB_MEMO[path]


def check_roundtrip(enc, dec, what: str) -> None:
    """The decoder must reproduce the encoder's reconstruction bit for bit.
    Raised explicitly (not ``assert``) so ``python -O`` keeps the check."""
    if dec.image.shape != enc.image.shape or not np.array_equal(dec.image, enc.image):
        raise AssertionError(f"{what}: decoded image differs from the encoder's reconstruction")
    for i, (a, b) in enumerate(zip(enc.planes, dec.planes)):
        if not np.array_equal(a.recon, b.recon):
            raise AssertionError(f"{what}: decoded plane {i} differs from the encoder's reconstruction")


def measure(job: Job) -> dict:
    """Encode, decode, verify and score one image with one variant."""
    rgb = _rgb(job.path)
    # A predictor ablation: no post-filter, so the decode is the exact reconstruction.
    codec = blockcodec.Codec(quality=job.quality, predictor=job.variant, subsampling=SUBSAMPLING,
                             postfilter="none")
    enc = codec.encode(rgb, keep_trace=False)
    dec = codec.decode(enc.data)
    what = f"{job.variant} q{job.quality} {job.image}"
    if dec.header.predictor_id != predictors.id_of(job.variant):
        raise AssertionError(f"{what}: stream carries predictor id {dec.header.predictor_id}")
    if dec.header.postfilter_id != 0:   # the report promises "no post-filter"
        raise AssertionError(f"{what}: stream asks for post-filter {dec.header.postfilter_id}")
    check_roundtrip(enc, dec, what)
    h, w = rgb.shape[:2]
    return {
        "variant": job.variant, "quality": job.quality, "image": job.image,
        "predictor_id": dec.header.predictor_id,
        "bytes": len(enc.data), "bpp": enc.bpp, "psnr_rgb": psnr(rgb, dec.image),
        "enc_s": enc.timings["total"], "dec_s": dec.timings["total"],
        "bits": dict(enc.bits), "pixels": h * w,
    }


def run_jobs(jobs: list[Job], n_workers: int, progress: bool) -> list[dict]:
    """Measure every job (serially, or in a spawn pool when n_workers > 1);
    any failure, a round-trip mismatch included, aborts the run."""
    try:
        from tqdm import tqdm
    except ImportError:  # optional: run without a progress bar
        tqdm = _NoBar
    bar = tqdm(total=len(jobs), unit="img", desc="ablation", disable=not progress, dynamic_ncols=True)
    records = []
    try:
        if n_workers > 1 and len(jobs) > 1:
            # spawn, not fork: torch's thread pools do not survive a fork.
            with ProcessPoolExecutor(max_workers=n_workers, mp_context=mp.get_context("spawn"),
                                     initializer=_worker_init,
                                     initargs=(_blind_weights[0] if _blind_weights else None,)) as pool:
                futures = {pool.submit(measure, j): j for j in jobs}
                for fut in as_completed(futures):
                    records.append(fut.result())
                    bar.set_postfix_str(f"{futures[fut].variant} q{futures[fut].quality}", refresh=False)
                    bar.update(1)
        else:
            for j in jobs:
                bar.set_postfix_str(f"{j.variant} q{j.quality}")
                records.append(measure(j))
                bar.update(1)
    finally:
        bar.close()
    order = {n: i for i, n in enumerate(variant_names())}
    records.sort(key=lambda r: (order[r["variant"]], r["quality"], r["image"]))
    return records


# ------------------------------------------------------------ summaries

def stage_names(records: list[dict]) -> list[str]:
    seen = {s for r in records for s in r["bits"]}
    return [s for s in STAGE_ORDER if s in seen] + sorted(seen.difference(STAGE_ORDER))


def rd_curves(records: list[dict], qualities: list[int]) -> dict[str, list[dict]]:
    """Per variant and quality: bpp and PSNR-RGB, each the mean over images
    (PSNR per image, then the mean, as python -m kodak_eval does)."""
    curves = {}
    for name in variant_names():
        pts = []
        for q in qualities:
            recs = [r for r in records if r["variant"] == name and r["quality"] == q]
            pts.append({"quality": q, "n": len(recs),
                        "bpp": float(np.mean([r["bpp"] for r in recs])),
                        "psnr": float(np.mean([r["psnr_rgb"] for r in recs]))})
        curves[name] = pts
    return curves


def bd_against(curves: dict, anchor: str, test: str, metric: bool = False):
    a, t = curves[anchor], curves[test]
    fn = bd_metric_result if metric else bd_rate_result
    return fn([p["bpp"] for p in a], [p["psnr"] for p in a], [p["bpp"] for p in t], [p["psnr"] for p in t])


def stage_table(records: list[dict], quality: int) -> dict[str, dict]:
    """Mean over images of bits per stage in bpp, and mean wall times."""
    stages = stage_names(records)
    out = {}
    for name in STAGE_VARIANTS:
        recs = [r for r in records if r["variant"] == name and r["quality"] == quality]
        if not recs:
            continue
        out[name] = {
            "stages": {s: float(np.mean([r["bits"].get(s, 0) / r["pixels"] for r in recs])) for s in stages},
            "file_bpp": float(np.mean([r["bpp"] for r in recs])),
            "enc_s": float(np.mean([r["enc_s"] for r in recs])),
            "dec_s": float(np.mean([r["dec_s"] for r in recs])),
            "n": len(recs),
        }
    return out


# -------------------------------------------------------------- outputs

def write_csv(path: Path, records: list[dict]) -> None:
    by_name = {v.name: v for v in variants()}
    stages = stage_names(records)
    fields = ["variant", "luma_predictor", "chroma_predictor", "predictor_id", "quality", "image",
              "bytes", "bpp", "psnr_rgb", "enc_s", "dec_s"] + [f"bits_{s}" for s in stages]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in records:
            v = by_name[r["variant"]]
            w.writerow({
                "variant": v.name, "luma_predictor": v.luma, "chroma_predictor": v.chroma,
                "predictor_id": r["predictor_id"], "quality": r["quality"], "image": r["image"],
                "bytes": r["bytes"], "bpp": f"{r['bpp']:.6f}", "psnr_rgb": f"{r['psnr_rgb']:.4f}",
                "enc_s": f"{r['enc_s']:.4f}", "dec_s": f"{r['dec_s']:.4f}",
                **{f"bits_{s}": r["bits"].get(s, 0) for s in stages},
            })


def _pct(res) -> str:
    if not math.isfinite(res.value):
        return "n/a"
    return f"{res.value:+.2f} %" + (" †" if res.note else "")


def write_markdown(path: Path, meta: dict, curves: dict, stages: dict, records: list[dict]) -> None:
    L = [f"Command: `{meta['command']}`", "", f"Date: {meta['date']}", "",
         "# blockcodec predictor ablation on Kodak (BlockCNN luma / chroma)", ""]
    m = meta["machine"]
    L += [
        f"- Codec: blockcodec {meta['blockcodec']}, 4:2:0, **no post-filter** (every stream has "
        "post-filter id 0; the decoded image is the plain block reconstruction).",
        f"- Images: {meta['n_images']} from `{meta['kodak_dir']}` ({', '.join(meta['images'])}); "
        f"qualities: {', '.join(map(str, meta['qualities']))}.",
        f"- BlockCNN weights: `{meta['weights_file']}`, weights hash {meta['weights_hash']}.",
        f"- Verification: all {len(records)} streams were decoded again and are bit-identical to the "
        "encoder's reconstruction, so every variant is a working codec.  The partial variants "
        f"were registered temporarily as predictor ids {meta['temp_ids']} (never written by the "
        "shipped codec) and removed afterwards.",
        "- Metrics: bpp = file bytes × 8 / pixels (header included); PSNR-RGB = PSNR over all "
        "three 8-bit RGB channels, per image, then averaged over images.  BD-rate: classic "
        "Bjøntegaard (cubic fit of log-rate vs PSNR over the overlapping PSNR interval) on the "
        "image-averaged curves; negative = fewer bits than the anchor at equal PSNR.  "
        "† = the curves overlap over less than half of one curve's PSNR range.",
        f"- Machine: {m['cpu']}, {m['cpu_count']} logical CPUs, Python {m['python']}; jobs: "
        f"{meta['jobs']}; {meta['threads']}; wall time {meta['wall_s']:.0f} s; load average "
        f"start/end: {meta['loadavg_start']} / {meta['loadavg_end']}.",
        "",
        "## Variants and BD-rates",
        "",
        "| Variant | Luma | Chroma | bpp range | PSNR-RGB range [dB] | BD-rate vs planar "
        "| BD-rate vs none | BD-PSNR vs planar [dB] |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for v in variants():
        pts = curves[v.name]
        bpp = [p["bpp"] for p in pts]
        ps = [p["psnr"] for p in pts]
        cells = []
        for anchor in BD_ANCHORS:
            cells.append("(anchor)" if v.name == anchor else _pct(bd_against(curves, anchor, v.name)))
        bdp = bd_against(curves, "planar", v.name, metric=True)
        cells.append("(anchor)" if v.name == "planar" else
                     (f"{bdp.value:+.3f}" if math.isfinite(bdp.value) else "n/a"))
        L.append(f"| {v.name} | {v.luma} | {v.chroma} | {min(bpp):.3f}–{max(bpp):.3f} "
                 f"| {min(ps):.2f}–{max(ps):.2f} | " + " | ".join(cells) + " |")

    # The ablation proper: each network's share, measured against the variant without it.
    pairs = [
        ("blockcnn", "blockcnn-luma-only",
         "what the chroma network (with its cross-component input) adds on top of the luma CNN"),
        ("blockcnn-chroma-only", "planar", "the chroma network alone, luma planar"),
        ("blockcnn-luma-only", "planar", "the luma network alone, chroma planar"),
        ("blockcnn", "blockcnn-chroma-only", "what the luma network adds on top of the chroma CNN"),
    ]
    if NO_CFL.name in curves:
        pairs.append(("blockcnn", NO_CFL.name, "chroma-from-luma: the cross-component input of the "
                                                "chroma network, both trained with the same budget"))
    L += ["", "Contributions (BD-rate of the first variant against the second):", ""]
    for test, anchor, what in pairs:
        L.append(f"- {test} vs {anchor}: {_pct(bd_against(curves, anchor, test))} — {what}")
    L += ["", "Variants: " + "; ".join(f"**{v.name}**: {v.about}" for v in variants()) + ".", ""]

    L += ["## Rate-distortion points (mean over images)", "",
          "Each cell: bpp / PSNR-RGB [dB].", "",
          "| Quality | " + " | ".join(variant_names()) + " |",
          "|---:|" + "---:|" * len(variants())]
    for i, q in enumerate(meta["qualities"]):
        L.append(f"| {q} | " + " | ".join(
            f"{curves[n][i]['bpp']:.4f} / {curves[n][i]['psnr']:.2f}" for n in variant_names()) + " |")

    L += ["", f"## Bits per stage at quality {DETAIL_QUALITY} (bpp, mean over images)", ""]
    if stages:
        names = list(stages)
        L += ["Bits of each entropy-coding stage (`Result.bits`) divided by the image's pixels.  "
              "'container' is the header, the CRC and the payload's 32-bit end marker.", "",
              "| Stage | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        for s in next(iter(stages.values()))["stages"]:
            L.append(f"| {s} | " + " | ".join(f"{stages[n]['stages'][s]:.4f}" for n in names) + " |")
        L.append("| **sum of stages** | " + " | ".join(
            f"**{sum(stages[n]['stages'].values()):.4f}**" for n in names) + " |")
        L.append("| file size | " + " | ".join(f"{stages[n]['file_bpp']:.4f}" for n in names) + " |")
        L.append("| encode s/img | " + " | ".join(f"{stages[n]['enc_s']:.3f}" for n in names) + " |")
        L.append("| decode s/img | " + " | ".join(f"{stages[n]['dec_s']:.3f}" for n in names) + " |")
        L += ["", "Times are wall-clock `Result.timings['total']` of `Codec.encode` and of "
              "`Codec.decode`, one thread per process, measured on a 2-core machine that may have "
              "been loaded by other work (see the load averages above"
              + (f" and note {meta['jobs']} jobs ran concurrently" if meta["jobs"] > 1 else "")
              + "): compare them with each other, not with other machines."]
    else:
        L.append(f"(quality {DETAIL_QUALITY} was not coded in this run)")

    if meta.get("figure"):
        L += ["", "## Prediction figure", "",
              f"![predictions]({meta['figure']}) — {meta['figure_image']}, quality {DETAIL_QUALITY}, "
              "luma: original, planar and BlockCNN predictions, absolute residuals on one colour scale."]
    if meta["warnings"]:
        L += ["", "## Warnings", ""] + [f"- {w}" for w in meta["warnings"]]
    path.write_text("\n".join(L) + "\n")


# --------------------------------------------------------------- figure

def blocks_to_plane(blocks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """[n_blocks, 64] in raster block order -> [H, W] plane."""
    h, w = shape
    return blocks.reshape(h // 8, w // 8, 8, 8).transpose(0, 2, 1, 3).reshape(h, w)


def luma_traces(rgb: np.ndarray, predictor: str, quality: int) -> tuple[np.ndarray, np.ndarray]:
    """The luma prediction and residual (int16, cropped to the image) that the
    encoder used; predictions come from decoded neighbours, as in the codec."""
    res = blockcodec.Codec(quality=quality, predictor=predictor, subsampling=SUBSAMPLING,
                           postfilter="none").encode(rgb)
    y = res.planes[0]
    h, w = rgb.shape[:2]
    # Planes are padded (to multiples of 16 in 4:2:0); the padding is edge
    # replication and does not belong to the image.
    pred = blocks_to_plane(y.prediction, y.recon.shape)[:h, :w].astype(np.int16)
    resid = blocks_to_plane(y.residual, y.recon.shape)[:h, :w]
    return pred, resid


def prediction_figure(path: Path, rgb: np.ndarray, title: str, quality: int) -> dict:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from blockcodec import color

    luma = color.rgb_to_ycbcr(rgb)[0].astype(np.int16)
    panels = {}
    for name, label in (("planar", "planar"), ("blockcnn", "BlockCNN")):
        pred, resid = luma_traces(rgb, name, quality)
        # Cross-check of the block assembly and cropping: prediction + residual
        # must give back exactly the luma the colour transform produces.
        if not np.array_equal(pred + resid, luma):
            raise AssertionError(f"{name}: assembled prediction + residual != original luma")
        panels[name] = (label, pred, np.abs(resid))

    abs_all = np.concatenate([a.ravel() for _, _, a in panels.values()])
    # One shared scale for both residual maps; the 99.5th percentile keeps a
    # few large errors on edges from washing out the rest.
    vmax = max(1.0, float(np.percentile(abs_all, 99.5)))
    h, w = luma.shape
    fig_w = 15.0
    fig, axes = plt.subplots(2, 3, figsize=(fig_w, fig_w / 3 * h / w * 2 + 1.2), layout="constrained")
    gray = dict(cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    axes[0, 0].imshow(luma, **gray)
    axes[0, 0].set_title("original luma Y")
    means = {}
    for col, name in ((1, "planar"), (2, "blockcnn")):
        label, pred, absr = panels[name]
        means[name] = float(absr.mean())
        axes[0, col].imshow(pred, **gray)
        axes[0, col].set_title(f"{label} prediction")
        im = axes[1, col].imshow(absr, cmap="inferno", vmin=0, vmax=vmax, interpolation="nearest")
        axes[1, col].set_title(f"|Y − {label} prediction|, mean {means[name]:.2f}")
    # Colorbars go below their panels so that all six panels keep one width.
    fig.colorbar(im, ax=axes[1, 1:], location="bottom", shrink=0.5, aspect=40,
                 label=f"absolute residual (shared scale, clipped at {vmax:.0f})")

    # Where the network wins: per 8x8 block, mean |residual| planar minus BlockCNN.
    def block_mean(a):
        hb, wb = a.shape[0] // 8 * 8, a.shape[1] // 8 * 8
        return a[:hb, :wb].reshape(hb // 8, 8, wb // 8, 8).mean(axis=(1, 3))
    gain = block_mean(panels["planar"][2].astype(np.float64)) - block_mean(panels["blockcnn"][2].astype(np.float64))
    g = max(1.0, float(np.percentile(np.abs(gain), 99)))
    gi = axes[1, 0].imshow(gain, cmap="RdBu", vmin=-g, vmax=g, interpolation="nearest",
                           extent=(0, gain.shape[1] * 8, gain.shape[0] * 8, 0))
    axes[1, 0].set_title(f"per 8×8 block: mean |res.| planar − BlockCNN\n"
                         f"(blue: BlockCNN better, {(gain > 0).mean():.0%} of blocks)")
    fig.colorbar(gi, ax=axes[1, 0], location="bottom", shrink=0.9, aspect=25,
                 label="difference of mean absolute residuals")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{title}, quality {quality}, 4:2:0, luma; predictions from decoded neighbours, "
                 "no post-filter")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return means


# ------------------------------------------------------------------ CLI

def make_figure(args, all_images: list[Path], kodak: Path, warnings: list[str]) -> Path | None:
    """The prediction figure, or None (with a warning) when it cannot be made."""
    if args.no_figure:
        return None
    fig_path = next((p for p in all_images if p.stem == args.figure_image), None)
    if fig_path is None:
        warnings.append(f"no image {args.figure_image!r} in {kodak}: figure skipped")
        return None
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        warnings.append("matplotlib is not installed: figure skipped")
        return None
    figure = args.out / f"prediction_{args.figure_image}.png"
    prediction_figure(figure, load_rgb(str(fig_path)), args.figure_image, DETAIL_QUALITY)
    return figure


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog=PROG,
        description="Ablation of blockcodec's predictors on Kodak (none, planar, BlockCNN, and "
                    "BlockCNN for luma only / chroma only): RD table with BD-rates, bits per stage, "
                    "and a figure of the luma predictions and residuals.  4:2:0, no post-filter.")
    ap.add_argument("--kodak-dir", type=Path, default=None,
                    help=f"folder with kodim*.png (default: <repo>/{KODAK_REL.as_posix()}, "
                         f"then ./{KODAK_REL.as_posix()})")
    ap.add_argument("--images", type=int, default=None, metavar="N",
                    help="use only the first N images (quick runs)")
    ap.add_argument("--qualities", type=_int_list, default=list(DEFAULT_QUALITIES),
                    help="quality sweep, e.g. 10,30,50 (default: 10,20,...,90)")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (default: 1)")
    ap.add_argument("--out", type=Path, default=PKG_DIR / "results",
                    help="output folder (default: kodak_eval/results)")
    ap.add_argument("--figure-image", default="kodim01", metavar="NAME",
                    help="image (file stem) for the prediction figure (default: kodim01); "
                         "it need not be among the first --images")
    ap.add_argument("--no-figure", action="store_true", help="skip the prediction figure")
    ap.add_argument("--no-cfl-weights", type=Path, default=None, metavar="NPZ",
                    help="weights of a BlockCNN trained with --no-chroma-guides: adds the "
                         "chroma-from-luma ablation variant (CNN luma + that blind chroma network)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    if args.no_cfl_weights is not None and not args.no_cfl_weights.is_file():
        ap.error(f"--no-cfl-weights: no such file {args.no_cfl_weights}")
    if args.jobs < 1:
        ap.error("--jobs must be >= 1")
    if args.images is not None and args.images < 1:
        ap.error("--images must be >= 1")
    args.qualities = sorted(set(args.qualities))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    # The optional ablation variant is part of this run only.
    _blind_weights[:] = [str(args.no_cfl_weights)] if args.no_cfl_weights else []
    try:
        return _run(args, argv)
    finally:
        _blind_weights.clear()


def _run(args, argv) -> int:
    t_start = time.perf_counter()
    load_start = _loadavg()
    warnings: list[str] = []

    all_images = kodak_images(args.kodak_dir, None)   # the figure may use any of them
    images = all_images[:args.images] if args.images else all_images
    kodak = images[0].parent

    # The RD sweep for every variant, plus quality 50 for the stage table when
    # the sweep lacks it (those extra points stay out of the RD curves).
    jobs = [Job(v, q, p.stem, str(p)) for v in variant_names() for q in args.qualities for p in images]
    if DETAIL_QUALITY not in args.qualities:
        jobs += [Job(v, DETAIL_QUALITY, p.stem, str(p)) for v in STAGE_VARIANTS for p in images]

    with threads_pinned() as threads:
        with temporary_variants() as added:
            temp_ids = [predictors.id_of(n) for n in added]
            records = run_jobs(jobs, args.jobs, progress=not args.quiet)
        args.out.mkdir(parents=True, exist_ok=True)
        figure = make_figure(args, all_images, kodak, warnings)

    curves = rd_curves(records, args.qualities)
    stages = stage_table(records, DETAIL_QUALITY)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)

    meta = {
        "command": shlex.join(["python", "-m", "kodak_eval.predictor_report",
                               *(sys.argv[1:] if argv is None else list(argv))]),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "blockcodec": blockcodec.__version__,
        "machine": machine_info(),
        "libraries": library_versions(),
        "kodak_dir": str(kodak),
        "images": [p.stem for p in images],
        "n_images": len(images),
        "qualities": args.qualities,
        "jobs": args.jobs,
        "threads": (f"OMP/OpenBLAS/MKL_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
                    f"codec threads {threads}"),
        "weights_file": zoo.path("blockcnn").name,
        "weights_hash": predictors.get("blockcnn").weights_hash().hex(),
        "temp_ids": ", ".join(map(str, temp_ids)) or "(none needed)",
        "figure": figure.name if figure else None,
        "figure_image": args.figure_image,
        "warnings": warnings,
        "wall_s": time.perf_counter() - t_start,
        "loadavg_start": load_start,
        "loadavg_end": _loadavg(),
    }
    write_csv(args.out / "ablation.csv", records)
    write_markdown(args.out / "ablation.md", meta, curves, stages, records)
    wrote = ["ablation.md", "ablation.csv"] + ([figure.name] if figure else [])
    print(f"wrote {', '.join(wrote)} to {args.out} in {meta['wall_s']:.1f} s "
          f"({len(records)} encode/decode round trips verified)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
