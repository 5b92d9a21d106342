#!/usr/bin/env python
"""Speed and memory benchmark of blockcodec on the Kodak images.

    python benchmarks/bench_codec.py [--kodak-dir DIR] [--repeats N] [--images N]
                                     [--qualities 25,50,90] [--predictors planar,none]
                                     [--out benchmarks/results]

Writes <out>/bench.json (every raw timing) and <out>/bench.md (tables), and
prints a short summary.  See benchmarks/README.md for what is measured.
"""
from __future__ import annotations

import argparse
import datetime
import gc
import io
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import benchlib  # noqa: E402
from benchlib import LARGE, SMALL  # noqa: E402

PROBE = os.path.join(HERE, "mem_probe.py")
STAGES = ["color", "prediction", "transform", "glue", "entropy", "container", "postfilter"]
TARGET_S = 0.3           # issue target: encode and decode each < 0.3 s per Kodak image (median)
JPEG_QUALITY = 90
THREAD_ENV = ["OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
              "RAYON_NUM_THREADS"]
pc = time.perf_counter


# --------------------------------------------------------------------------- utilities
def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="blockcodec speed and memory benchmark on Kodak.")
    ap.add_argument("--kodak-dir", default=os.path.normpath(os.path.join(REPO, "..", "shared", "data", "kodak")),
                    help="folder with kodim*.png (default: ../shared/data/kodak from the repo root)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per image, after 1 warm-up (default 5)")
    ap.add_argument("--images", type=int, default=None, help="use the first N Kodak images (default: all)")
    ap.add_argument("--qualities", default="50", help="comma-separated qualities (default 50)")
    ap.add_argument("--predictors", default="planar,none",
                    help="comma-separated settings: a predictor name, with +FILTER for the post-filter the "
                         "stream records and the decoder runs (+default: the shipped default), e.g. "
                         "blockcnn+default,blockcnn (default planar,none)")
    ap.add_argument("--large-mode", choices=["tile", "upsample"], default="tile",
                    help="how the 4x larger 1536x1024 images are made (default tile: 2x2 of four different "
                         "Kodak images; upsample: one image 2x with Pillow LANCZOS)")
    ap.add_argument("--mem-images", type=int, default=1,
                    help="images per setting whose peak memory is probed, one fresh process each (default 1)")
    ap.add_argument("--skip-memory", action="store_true", help="skip the peak-memory probes")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads of blockcodec's C kernels (blockcodec.engine.set_threads(N); default: "
                         "OMP_NUM_THREADS, else the usable CPUs); torch's too, if the codec imported it")
    ap.add_argument("--out", default=os.path.join(HERE, "results"), help="output folder (default benchmarks/results)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    args.qualities = [int(q) for q in args.qualities.split(",") if q.strip()]
    args.predictors = [p.strip() for p in args.predictors.split(",") if p.strip()]
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    if args.images is not None and args.images < 1:
        ap.error("--images must be >= 1")
    return args


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix_str(self, s):
        pass

    def close(self):
        pass


def progress(total: int, desc: str, disable: bool):
    if disable:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc=desc, leave=False, file=sys.stderr, dynamic_ncols=True)


def version_of(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def med(xs):
    return statistics.median(xs) if xs else None


def cfg_key(pred: str, q: int) -> str:
    return f"{pred}/q{q}"


# --------------------------------------------------------------------------- memory
def run_probe(cmd: list[str]) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"memory probe failed ({p.returncode}): {shlex.join(cmd)}\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def memory_phase(args, paths: list[str], tmp: str, bar) -> list[dict]:
    """One fresh process per measurement; see mem_probe.py."""
    records = []
    n_mem = min(args.mem_images, len(paths))
    for q in args.qualities:
        for pred in args.predictors:
            for size in (SMALL, LARGE):
                for k in range(n_mem):
                    members = [paths[k]] if size == SMALL else benchlib.large_members(paths, k, args.large_mode)
                    name = stem(paths[k]) if size == SMALL else benchlib.large_name(members, args.large_mode)
                    bar.set_postfix_str(f"memory {cfg_key(pred, q)} {size} {name}")
                    data = os.path.join(tmp, f"mem_{size}_{pred}_q{q}_{k}.bc")
                    base = [sys.executable, PROBE, "--size", size, "--large-mode", args.large_mode,
                            "--predictor", pred, "--quality", str(q)]
                    imgs = [a for p in members for a in ("--image", p)]
                    rec = {"size": size, "image": name, "predictor": pred, "quality": q}
                    rec["encode_rss"] = run_probe(base + ["--op", "encode", "--measure", "rss",
                                                          "--data-out", data] + imgs)
                    bar.update()
                    rec["encode_tracemalloc"] = run_probe(base + ["--op", "encode", "--measure", "tracemalloc"] + imgs)
                    bar.update()
                    rec["decode_rss"] = run_probe(base + ["--op", "decode", "--measure", "rss", "--data-in", data])
                    bar.update()
                    rec["decode_tracemalloc"] = run_probe(base + ["--op", "decode", "--measure", "tracemalloc",
                                                                  "--data-in", data])
                    bar.update()
                    records.append(rec)
    return records


# --------------------------------------------------------------------------- timing
def new_record(cfgs: list[str]) -> dict:
    return {
        "encode": {c: {s: [] for s in STAGES + ["total", "wall"]} for c in cfgs},
        "decode": {c: {s: [] for s in STAGES + ["total", "wall"]} for c in cfgs},
        "io": {"png_read": [], "png_write": []},
        "reference": {"jpeg_encode": [], "jpeg_decode": [], "png_decode": []},
        "bytes": {},
    }


def timing_round(rec, path, png_bytes, img, codecs, mods):
    """One run of everything for one image; rec None = warm-up (nothing kept).

    Everything is interleaved per round so that a burst of load from other
    processes hits blockcodec and the reference alike."""
    np, Image, simplejpeg, blockcodec = mods
    gc.collect()
    t0 = pc()
    a = benchlib.load_png(path)                               # I/O: PNG read (encode side)
    t_read = pc() - t0
    del a
    first = None
    for key, codec in codecs.items():
        t0 = pc()
        enc = codec.encode(img, keep_trace=False)
        w_enc = pc() - t0
        t0 = pc()
        dec = blockcodec.decode_result(enc.data)
        w_dec = pc() - t0
        if dec.image.shape != img.shape:
            raise RuntimeError(f"{key}: decoded shape {dec.image.shape} != {img.shape}")
        if rec is not None:
            for s in STAGES + ["total"]:
                rec["encode"][key][s].append(enc.timings.get(s, 0.0))   # the encoder runs no post-filter
                rec["decode"][key][s].append(dec.timings[s])
            rec["encode"][key]["wall"].append(w_enc)
            rec["decode"][key]["wall"].append(w_dec)
            rec["bytes"][key] = len(enc.data)
        if first is None:
            first = dec.image
        del enc, dec
    t0 = pc()
    buf = io.BytesIO()
    Image.fromarray(first).save(buf, format="PNG")            # I/O: PNG write (decode side), as the CLI does
    t_write = pc() - t0
    del buf, first

    t0 = pc()
    jpg = simplejpeg.encode_jpeg(img, quality=JPEG_QUALITY, colorspace="RGB", colorsubsampling="420",
                                 fastdct=False)
    t_je = pc() - t0
    t0 = pc()
    simplejpeg.decode_jpeg(jpg, colorspace="RGB", fastdct=False, fastupsample=False)
    t_jd = pc() - t0
    t0 = pc()
    with Image.open(io.BytesIO(png_bytes)) as im:
        im.load()
        np.asarray(im)
    t_pd = pc() - t0
    if rec is not None:
        rec["io"]["png_read"].append(t_read)
        rec["io"]["png_write"].append(t_write)
        rec["reference"]["jpeg_encode"].append(t_je)
        rec["reference"]["jpeg_decode"].append(t_jd)
        rec["reference"]["png_decode"].append(t_pd)
        rec["bytes"]["jpeg_q90_420"] = len(jpg)


def timing_phase(args, paths, tmp, bar, mods, codecs):
    np, Image, simplejpeg, blockcodec = mods
    raw = {SMALL: {}, LARGE: {}}
    meta = {SMALL: [], LARGE: []}
    for size in (SMALL, LARGE):
        for k in range(len(paths)):
            if size == SMALL:
                path, name, members = paths[k], stem(paths[k]), [paths[k]]
                img = benchlib.load_png(path)
            else:
                members = benchlib.large_members(paths, k, args.large_mode)
                name = benchlib.large_name(members, args.large_mode)
                img = benchlib.make_large(members, args.large_mode)
                path = os.path.join(tmp, f"large_{k:02d}.png")
                Image.fromarray(img).save(path, format="PNG")   # Pillow defaults, for the PNG read timing
            with open(path, "rb") as f:
                png_bytes = f.read()
            meta[size].append({"name": name, "members": [os.path.basename(m) for m in members],
                               "width": int(img.shape[1]), "height": int(img.shape[0]),
                               "png_bytes": len(png_bytes)})
            rec = new_record(list(codecs))
            for r in range(args.repeats + 1):
                bar.set_postfix_str(f"{size} {name} {'warm-up' if r == 0 else f'run {r}/{args.repeats}'}")
                timing_round(rec if r > 0 else None, path, png_bytes, img, codecs, mods)
                bar.update()
            raw[size][name] = rec
            del img
    return raw, meta


# --------------------------------------------------------------------------- aggregation
def _stats(values):
    return {"median": med(values), "mean": statistics.fmean(values), "min": min(values), "max": max(values)}


def summarise(raw, meta, cfgs, mem_records):
    """Per image: median over repeats.  Across images: median/mean/min/max of those."""
    s = {"time": {}, "reference": {}, "io": {}, "scaling": {}, "vs_reference": {}, "bytes": {}, "memory": {}}
    for size in (SMALL, LARGE):
        names = [m["name"] for m in meta[size]]
        if not names:
            continue
        st = s["time"][size] = {}
        for op, io_key in (("encode", "png_read"), ("decode", "png_write")):
            st[op] = {}
            for c in cfgs:
                per = {}
                for stage in STAGES + ["total", "wall"]:
                    per[stage] = _stats([med(raw[size][n][op][c][stage]) for n in names])
                untimed = []
                with_io = []
                for n in names:
                    r = raw[size][n][op][c]
                    untimed.append(med([t - sum(r[x][i] for x in STAGES) for i, t in enumerate(r["total"])]))
                    with_io.append(med([t + raw[size][n]["io"][io_key][i] for i, t in enumerate(r["total"])]))
                per["untimed"] = _stats(untimed)
                per["total_with_io"] = _stats(with_io)
                per["worst_image"] = max(names, key=lambda n: med(raw[size][n][op][c]["total"]))
                st[op][c] = per
        s["io"][size] = {k: _stats([med(raw[size][n]["io"][k]) for n in names]) for k in ("png_read", "png_write")}
        s["reference"][size] = {k: _stats([med(raw[size][n]["reference"][k]) for n in names])
                                for k in ("jpeg_encode", "jpeg_decode", "png_decode")}
        s["bytes"][size] = {c: statistics.fmean(raw[size][n]["bytes"][c] for n in names)
                            for c in cfgs + ["jpeg_q90_420"]}
        s["bytes"][size]["pixels"] = statistics.fmean(m["width"] * m["height"] for m in meta[size])
        vr = s["vs_reference"][size] = {}
        for c in cfgs:
            def ratio(op, ref):
                return med([med(raw[size][n][op][c]["total"]) / med(raw[size][n]["reference"][ref]) for n in names])
            vr[c] = {"encode_vs_jpeg_encode": ratio("encode", "jpeg_encode"),
                     "decode_vs_jpeg_decode": ratio("decode", "jpeg_decode"),
                     "decode_vs_png_decode": ratio("decode", "png_decode")}
    if SMALL in s["time"] and LARGE in s["time"]:
        for op in ("encode", "decode"):
            s["scaling"][op] = {}
            for c in cfgs:
                a, b = s["time"][SMALL][op][c], s["time"][LARGE][op][c]
                s["scaling"][op][c] = {
                    stage: {"ratio_of_means": b[stage]["mean"] / a[stage]["mean"] if a[stage]["mean"] > 0 else None,
                            "ratio_of_medians": b[stage]["median"] / a[stage]["median"] if a[stage]["median"] > 0
                            else None}
                    for stage in STAGES + ["untimed", "total", "total_with_io", "wall"]}
    # memory: median over probed images per (cfg, size, op)
    for c_rec in mem_records:
        c = cfg_key(c_rec["predictor"], c_rec["quality"])
        d = s["memory"].setdefault(c, {}).setdefault(c_rec["size"], {})
        for op in ("encode", "decode"):
            o = d.setdefault(op, {"rss_peak_increase_mib": [], "hwm_peak_increase_mib": [],
                                  "rss_slack_mib": [], "tracemalloc_peak_mib": []})
            r, t = c_rec[f"{op}_rss"], c_rec[f"{op}_tracemalloc"]
            o["rss_peak_increase_mib"].append(r["rss_peak_increase_mib"])
            o["hwm_peak_increase_mib"].append(r.get("hwm_peak_increase_mib"))
            o["rss_slack_mib"].append(r.get("rss_slack_mib"))
            o["tracemalloc_peak_mib"].append(t["tracemalloc_peak_mib"])
    for c, d in s["memory"].items():
        for size, ops in d.items():
            for op, o in ops.items():
                for k in list(o):
                    vals = [v for v in o[k] if v is not None]
                    o[k] = med(vals) if vals else None
        if SMALL in d and LARGE in d:
            d["ratio_large_small"] = {
                op: {k: (d[LARGE][op][k] / d[SMALL][op][k]) if d[SMALL][op][k] else None
                     for k in ("rss_peak_increase_mib", "tracemalloc_peak_mib")}
                for op in ("encode", "decode")}
    return s


# --------------------------------------------------------------------------- report
def machine_info(args, mods_versions, torch_state, load_start, load_end, started, codec_threads=None):
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "command": shlex.join([sys.executable.rsplit("/", 1)[-1]] + sys.argv),
        "date_utc": started.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "cpu_model": benchlib.cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_usable": usable,
        "loadavg_start": load_start,
        "loadavg_end": load_end,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": mods_versions,
        "threads": {
            "env": {k: os.environ.get(k) for k in THREAD_ENV},
            "torch": torch_state,
            "codec": codec_threads,
            "note": "blockcodec's C core (_cext) runs single-threaded, except that its BlockCNN kernel "
                    "shares a wavefront of 96 or more blocks among blockcodec.engine.threads() threads; the "
                    "constriction range coder, simplejpeg (libjpeg-turbo) and Pillow's PNG codec run "
                    "single-threaded.",
        },
    }


def _ms(x):
    return "–" if x is None else f"{x * 1000:.1f}"


def _x(x):
    return "–" if x is None else f"{x:.2f}×"


def _mib(x):
    return "–" if x is None else f"{x:.1f}"


def write_markdown(path, info, args, meta, s, cfgs, mem_records):
    L = []
    add = L.append
    lg = info["loadavg_start"]
    add("# blockcodec speed and memory benchmark\n")
    add(f"- command: `{info['command']}`")
    add(f"- date: {info['date_utc']}")
    add(f"- CPU: {info['cpu_model']}, {info['cpu_count']} logical cores ({info['cpu_usable']} usable by this process)")
    add(f"- load average (1/5/15 min) at start: {lg[0]:.2f} / {lg[1]:.2f} / {lg[2]:.2f}; at end: "
        + " / ".join(f"{v:.2f}" for v in info["loadavg_end"]))
    if lg[0] > 0.5 * info["cpu_usable"]:
        add(f"  - **warning: the machine was busy when the run started (load {lg[0]:.2f} on "
            f"{info['cpu_usable']} cores): absolute times are inflated; the ratios to libjpeg-turbo, measured "
            f"in the same rounds, are less affected.**")
    v = info["versions"]
    add(f"- Python {info['python']}, numpy {v.get('numpy')}, Pillow {v.get('pillow')}, simplejpeg {v.get('simplejpeg')}, "
        f"constriction {v.get('constriction')}, blockcodec {v.get('blockcodec')}, torch {v.get('torch')} "
        f"({'imported' if info['threads']['torch']['imported'] else 'installed, not imported by the codec'})")
    env = ", ".join(f"{k}={val}" for k, val in info["threads"]["env"].items() if val is not None) or "none set"
    tt = info["threads"]["torch"]
    add(f"- threads: thread env vars: {env}; blockcodec.engine.threads() = {info['threads'].get('codec')}; torch: "
        + (f"imported, torch.get_num_threads() = {tt['num_threads']}" if tt["imported"] else "not imported")
        + f". {info['threads']['note']}")
    add(f"- platform: {info['platform']}")
    small_names = [m["name"] for m in meta[SMALL]]
    add(f"- images: {len(small_names)} Kodak images ({', '.join(small_names)}); "
        + ("large = 2x2 tiles of four different Kodak images, image k = kodim k, k+1, k+2, k+3 (cyclic; "
           "portrait images rotated to landscape), so each small image appears 4 times in the large set"
           if args.large_mode == "tile" else "large = each Kodak image upsampled 2x with Pillow LANCZOS")
        + (" **(fewer than 4 images: tiles repeat images)**" if args.large_mode == "tile" and len(small_names) < 4
           else ""))
    sz = {k: (f"{meta[k][0]['width']}×{meta[k][0]['height']}" if meta[k] else "?") for k in (SMALL, LARGE)}
    add(f"- timing: {args.repeats} timed runs per image after 1 warm-up, all settings and the reference "
        f"interleaved per run; per image the median over runs, in the tables the median over images of those "
        f"(so stage rows need not add up to the total). blockcodec via `Codec.encode(img, keep_trace=False)` "
        f"(what `blockcodec.encode` does) and `decode_result(data)`; stage times are the codec's own `timings`.")
    add("")

    add("## Time per image (ms, median)\n")
    add("`untimed` = total − sum of stages (loop overhead outside the stage timers). PNG I/O: Pillow PNG read "
        "of the source file (encode side, as the CLI reads) and PNG write to memory of the decoded image "
        "(decode side, as the CLI writes); measured separately from the codec total. "
        "`×` = large/small, ratio of the mean over images (content-matched for tiles); 4× = linear scaling.\n")
    for c in cfgs:
        add(f"### {c.replace('/q', ', quality ')}\n")
        add(f"| stage | encode {sz[SMALL]} | encode {sz[LARGE]} | × | decode {sz[SMALL]} | decode {sz[LARGE]} | × |")
        add("|---|---:|---:|---:|---:|---:|---:|")
        T = s["time"]
        sc = s.get("scaling", {})

        def row(label, stage, bold=False):
            cells = []
            for op in ("encode", "decode"):
                for size in (SMALL, LARGE):
                    st = T.get(size, {}).get(op, {}).get(c, {}).get(stage)
                    cells.append(_ms(st["median"]) if st else "–")
                r = sc.get(op, {}).get(c, {}).get(stage)
                cells.append(_x(r["ratio_of_means"]) if r else "–")
            if bold:
                label, cells = f"**{label}**", [f"**{x}**" for x in cells]
            add(f"| {label} | " + " | ".join(cells) + " |")

        for stage in STAGES:
            row(stage, stage)
        row("untimed", "untimed")
        row("codec total", "total", bold=True)
        io_cells = []
        for op, k in (("encode", "png_read"), ("decode", "png_write")):
            vals = [s["io"].get(size, {}).get(k) for size in (SMALL, LARGE)]
            io_cells += [_ms(x["median"]) if x else "–" for x in vals]
            io_cells.append(_x(vals[1]["mean"] / vals[0]["mean"]) if all(vals) else "–")
        add("| PNG I/O (read / write) | " + " | ".join(io_cells) + " |")
        row("total incl. PNG I/O", "total_with_io", bold=True)
        row("wall clock around the call", "wall")
        worst = []
        for op in ("encode", "decode"):
            for size in (SMALL, LARGE):
                st = T.get(size, {}).get(op, {}).get(c)
                worst.append(f"{_ms(st['total']['max'])} ({st['worst_image']})" if st else "–")
            worst.append("")
        add("| slowest image, codec total | " + " | ".join(worst) + " |")
        b = [s["bytes"].get(size, {}) for size in (SMALL, LARGE)]
        bpp = [f"{x[c] * 8 / x['pixels']:.3f} bpp" if x else "–" for x in b]
        add(f"| mean size | {bpp[0]} | {bpp[1]} | | | | |")
        add("")

    add("## Peak memory of one encode / decode (MiB)\n")
    add("Each number from a fresh process (`benchmarks/mem_probe.py`): imports, tables, a tiny warm-up and "
        "the input (image array or coded bytes) are loaded before the baseline. "
        "**peak RSS increase** = ru_maxrss after − ru_maxrss before; "
        "VmHWM check = /proc VmHWM after a reset at the baseline − VmRSS at the baseline (should agree; "
        "the RSS number can read low by up to `slack`, ru_maxrss − VmRSS at the baseline); "
        "**tracemalloc peak** = Python/numpy allocations during the call (a separate process; memory "
        "allocated inside C/Rust extensions is not traced). "
        f"Probed image(s): {', '.join(sorted({r['image'] for r in mem_records})) or 'none'}.\n")
    if not mem_records:
        add("(skipped)\n")
    else:
        add("| setting | op | size | peak RSS increase | VmHWM check | slack | tracemalloc peak |")
        add("|---|---|---|---:|---:|---:|---:|")
        for c in cfgs:
            d = s["memory"].get(c, {})
            for op in ("encode", "decode"):
                for size in (SMALL, LARGE):
                    o = d.get(size, {}).get(op)
                    if not o:
                        continue
                    add(f"| {c} | {op} | {sz[size]} | {_mib(o['rss_peak_increase_mib'])} | "
                        f"{_mib(o['hwm_peak_increase_mib'])} | {_mib(o['rss_slack_mib'])} | "
                        f"{_mib(o['tracemalloc_peak_mib'])} |")
                r = d.get("ratio_large_small", {}).get(op)
                if r:
                    add(f"| {c} | {op} | large/small | {_x(r['rss_peak_increase_mib'])} | | | "
                        f"{_x(r['tracemalloc_peak_mib'])} |")
        add("")

    add("## Versus the reference on the same machine\n")
    add(f"Reference: libjpeg-turbo through simplejpeg, quality {JPEG_QUALITY}, 4:2:0, accurate DCT "
        "(fastdct=False) and fancy upsampling (fastupsample=False), RGB in/out; Pillow PNG decode of the "
        "same PNG bytes from memory to an array. Timed in the same rounds as blockcodec.\n")
    add("| size | JPEG encode (ms) | JPEG decode (ms) | PNG decode (ms) | JPEG size |")
    add("|---|---:|---:|---:|---:|")
    for size in (SMALL, LARGE):
        r = s["reference"].get(size)
        if r:
            b = s["bytes"][size]
            add(f"| {sz[size]} | {_ms(r['jpeg_encode']['median'])} | {_ms(r['jpeg_decode']['median'])} | "
                f"{_ms(r['png_decode']['median'])} | {b['jpeg_q90_420'] * 8 / b['pixels']:.3f} bpp |")
    add("")
    add("blockcodec codec total ÷ reference (median over images of the per-image ratio):\n")
    add("| setting | size | encode ÷ JPEG encode | decode ÷ JPEG decode | decode ÷ PNG decode |")
    add("|---|---|---:|---:|---:|")
    for c in cfgs:
        for size in (SMALL, LARGE):
            r = s["vs_reference"].get(size, {}).get(c)
            if r:
                add(f"| {c} | {sz[size]} | {_x(r['encode_vs_jpeg_encode'])} | {_x(r['decode_vs_jpeg_decode'])} | "
                    f"{_x(r['decode_vs_png_decode'])} |")
    add("")

    add("## Target\n")
    add(f"Issue target: encode and decode each under {TARGET_S * 1000:.0f} ms per Kodak image (median over "
        "images, codec total) on the 2-core reference machine. On this machine:\n")
    add("| setting | encode median | decode median | encode < 300 ms | decode < 300 ms |")
    add("|---|---:|---:|:---:|:---:|")
    for c in cfgs:
        e = s["time"][SMALL]["encode"][c]["total"]["median"]
        d = s["time"][SMALL]["decode"][c]["total"]["median"]
        add(f"| {c} | {_ms(e)} | {_ms(d)} | {'yes' if e < TARGET_S else 'no'} | {'yes' if d < TARGET_S else 'no'} |")
    r = s["reference"][SMALL]
    add(f"\nThe target in reference units, if this is the reference machine: encode ÷ JPEG encode below "
        f"**{TARGET_S / r['jpeg_encode']['median']:.0f}×** (300 ms ÷ {_ms(r['jpeg_encode']['median'])} ms) and "
        f"decode ÷ JPEG decode below **{TARGET_S / r['jpeg_decode']['median']:.0f}×** "
        f"(300 ms ÷ {_ms(r['jpeg_decode']['median'])} ms). A run on another machine meets the target when its "
        "ratios stay below the limits computed on the reference machine; its ratio × the reference machine's "
        "JPEG time estimates the time there (see benchmarks/README.md).\n")
    with open(path, "w") as f:
        f.write("\n".join(L))


def print_summary(s, cfgs, info, out_json, out_md):
    print(f"blockcodec benchmark — {info['cpu_model']}, {info['cpu_usable']} cores, load at start "
          f"{info['loadavg_start'][0]:.2f}")
    T, sm = s["time"], SMALL
    for c in cfgs:
        parts = []
        for op in ("encode", "decode"):
            a = T[sm][op][c]["total"]["median"]
            b = T.get(LARGE, {}).get(op, {}).get(c, {}).get("total", {}).get("median")
            sc = s.get("scaling", {}).get(op, {}).get(c, {}).get("total", {}).get("ratio_of_means")
            vr = s["vs_reference"][sm][c][f"{op}_vs_jpeg_{op}"]
            parts.append(f"{op} {a * 1000:.0f} ms (large {_ms(b)} ms, {_x(sc)}; {vr:.1f}× JPEG)")
        m = s["memory"].get(c, {}).get(sm, {})
        mem = ", ".join(f"{op} peak RSS +{m[op]['rss_peak_increase_mib']:.0f} MiB" for op in ("encode", "decode")
                        if op in m)
        print(f"  {c:12s} " + "; ".join(parts) + (f"; {mem}" if mem else ""))
    r = s["reference"][sm]
    print(f"  reference    JPEG q90 encode {_ms(r['jpeg_encode']['median'])} ms, decode "
          f"{_ms(r['jpeg_decode']['median'])} ms; PNG decode {_ms(r['png_decode']['median'])} ms "
          f"(target: each < {TARGET_S * 1000:.0f} ms on the reference machine)")
    print(f"  wrote {out_json} and {out_md}")


# --------------------------------------------------------------------------- main
def main(argv=None) -> int:
    args = parse_args(argv)
    started = datetime.datetime.now(datetime.timezone.utc)
    load_start = os.getloadavg()
    paths = benchlib.list_kodak(args.kodak_dir, args.images)
    cfgs = [cfg_key(p, q) for q in args.qualities for p in args.predictors]
    n_mem = 0 if args.skip_memory else 4 * 2 * len(cfgs) * min(args.mem_images, len(paths))
    bar = progress(n_mem + 2 * len(paths) * (args.repeats + 1), "bench", args.no_progress)
    tmp = tempfile.mkdtemp(prefix="blockcodec-bench-")
    try:
        # Memory first, while this process is still small (see benchlib's docstring).
        parent_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        mem_records = [] if args.skip_memory else memory_phase(args, paths, tmp, bar)

        import numpy as np
        import simplejpeg
        from PIL import Image

        import blockcodec

        codecs = {cfg_key(p, q): benchlib.make_codec(p, q) for q in args.qualities for p in args.predictors}
        for p in args.predictors:        # load the predictors (and their weights) now
            blockcodec.predictors.get(p.partition("+")[0])
        from blockcodec import engine
        if args.threads:
            engine.set_threads(args.threads)
        codec_threads = engine.threads()
        torch_state = {"imported": "torch" in sys.modules, "num_threads": None}
        if torch_state["imported"]:
            torch = sys.modules["torch"]
            if args.threads:
                torch.set_num_threads(args.threads)
            torch_state["num_threads"] = torch.get_num_threads()
        mods = (np, Image, simplejpeg, blockcodec)
        raw, meta = timing_phase(args, paths, tmp, bar, mods, codecs)
    finally:
        bar.close()
        shutil.rmtree(tmp, ignore_errors=True)

    versions = {d: version_of(d) for d in ("numpy", "pillow", "simplejpeg", "constriction", "torch", "tqdm")}
    versions["blockcodec"] = blockcodec.__version__
    info = machine_info(args, versions, torch_state, load_start, os.getloadavg(), started, codec_threads)
    info["duration_s"] = (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds()
    summary = summarise(raw, meta, cfgs, mem_records)

    os.makedirs(args.out, exist_ok=True)
    out_json = os.path.join(args.out, "bench.json")
    out_md = os.path.join(args.out, "bench.md")
    doc = {
        "meta": info,
        "config": {"repeats": args.repeats, "warmup": 1, "qualities": args.qualities,
                   "predictors": args.predictors, "large_mode": args.large_mode, "kodak_dir": args.kodak_dir,
                   "mem_images": 0 if args.skip_memory else min(args.mem_images, len(paths)),
                   "reference": {"jpeg": f"simplejpeg quality {JPEG_QUALITY} 4:2:0 fastdct=False "
                                         "fastupsample=False", "png": "Pillow decode from memory"},
                   "keep_trace": False, "units": "seconds (timings), MiB (memory)"},
        "images": meta,
        "timings": raw,
        "memory": {"parent_maxrss_mib_when_probing": parent_maxrss, "probes": mem_records},
        "summary": summary,
    }
    with open(out_json, "w") as f:
        json.dump(doc, f, indent=1)
    write_markdown(out_md, info, args, meta, summary, cfgs, mem_records)
    print_summary(summary, cfgs, info, out_json, out_md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
