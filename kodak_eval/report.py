"""Aggregation and outputs: results.json, results.csv, rd_psnr.png, table.md."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from . import published
from .bdrate import bd_metric_result, bd_rate_result
from .metrics import msssim_db

# BD-rates are reported against these anchors when they are part of the run.
REFERENCES = ("jpeg", "heic")


def _mean(xs) -> float:
    return float(np.mean(xs)) if len(xs) else math.nan


def summarize(codecs, tasks, records, versions) -> dict:
    """Group per-image records into curves; a point counts only if every image succeeded."""
    by_point: dict[tuple[str, object], list[dict]] = {}
    for t, r in zip(tasks, records):
        by_point.setdefault((t.codec.name, t.param), []).append(r)

    curves = {}
    for c in codecs:
        points = []
        for p in c.sweep:
            recs = by_point.get((c.name, p), [])
            ok = [r for r in recs if "error" not in r]
            bad = [r for r in recs if "error" in r]
            ms = _mean([r["msssim"] for r in ok])
            points.append({
                "param": p,
                "n_images": len(ok),
                "valid": bool(ok) and not bad,
                "bpp": _mean([r["bpp"] for r in ok]),
                # PSNR per image, then the mean (not the PSNR of the mean MSE).
                "psnr": _mean([r["psnr"] for r in ok]),
                "msssim": ms,
                # dB of the mean MS-SSIM (as CompressAI and most papers plot it).
                "msssim_db": msssim_db(ms) if ok else math.nan,
                "enc_s": _mean([r["enc_s"] for r in ok]),
                "dec_s": _mean([r["dec_s"] for r in ok]),
                "enc_cpu_s": _mean([r["enc_cpu_s"] for r in ok]),
                "dec_cpu_s": _mean([r["dec_cpu_s"] for r in ok]),
                "cached": sum(1 for r in recs if r.get("cached")),
                "errors": [{"image": r["image"], "error": r["error"]} for r in bad],
                "per_image": recs,
            })
        curves[c.name] = {
            "name": c.name,
            "library": c.library,
            "version": versions.get(c.name, ""),
            "settings": c.settings(),
            "param_name": c.param_name,
            "cached_anchor": c.cacheable,
            "points": points,
        }
    return curves


def _curve_arrays(curve, metric: str):
    pts = [p for p in curve["points"] if p["valid"]]
    pts.sort(key=lambda p: p["bpp"])
    return np.array([p["bpp"] for p in pts]), np.array([p[metric] for p in pts])


def compute_bd(curves: dict) -> dict:
    """BD numbers of every curve against each reference anchor present in the run."""
    out = {}
    for name, curve in curves.items():
        row = {}
        for ref in REFERENCES:
            if ref not in curves:
                continue
            entry = {}
            for metric, key in (("psnr", "psnr"), ("msssim_db", "msssim")):
                ra, ma = _curve_arrays(curves[ref], metric)
                rt, mt = _curve_arrays(curve, metric)
                res = bd_rate_result(ra, ma, rt, mt)
                entry[f"bd_rate_{key}"] = res.value
                entry[f"bd_rate_{key}_note"] = res.note
            ra, ma = _curve_arrays(curves[ref], "psnr")
            rt, mt = _curve_arrays(curve, "psnr")
            res = bd_metric_result(ra, ma, rt, mt)
            entry["bd_psnr"] = res.value
            entry["bd_psnr_note"] = res.note
            row[ref] = entry
        out[name] = row
    return out


def _jsonable(x):
    # Strict JSON has no NaN/Infinity: both become null (an infinite PSNR only
    # happens for a lossless round trip, which the CSV still shows as 'inf').
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def write_json(path: Path, meta: dict, curves: dict, bd: dict) -> None:
    blob = {"meta": meta, "curves": curves, "bd": bd}
    path.write_text(json.dumps(_jsonable(blob), indent=1, allow_nan=False))


CSV_FIELDS = ["codec", "param_name", "param", "image", "bytes", "bpp", "psnr", "msssim",
              "msssim_db", "enc_s", "dec_s", "enc_cpu_s", "dec_cpu_s", "cached", "error"]


def write_csv(path: Path, curves: dict) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for curve in curves.values():
            for p in curve["points"]:
                base = {"codec": curve["name"], "param_name": curve["param_name"], "param": p["param"]}
                for r in p["per_image"]:
                    w.writerow({**base, **r})
                # The average row of the point, marked by image=MEAN.
                w.writerow({**base, "image": "MEAN", "bpp": p["bpp"], "psnr": p["psnr"],
                            "msssim": p["msssim"], "msssim_db": p["msssim_db"],
                            "enc_s": p["enc_s"], "dec_s": p["dec_s"],
                            "enc_cpu_s": p["enc_cpu_s"], "dec_cpu_s": p["dec_cpu_s"],
                            "error": f"{len(p['errors'])} failed images" if p["errors"] else ""})


def plot(path: Path, curves: dict, n_images: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(15, 6.2))
    markers = "os^vDP*Xhp<>"
    for k, (name, curve) in enumerate(curves.items()):
        ours = name.startswith("blockcodec")
        style = dict(marker=markers[k % len(markers)], markersize=4 if not ours else 6,
                     linewidth=2.4 if ours else 1.2, linestyle="-" if ours else "--",
                     label=name, zorder=3 if ours else 2)
        for ax, metric in zip(axes, ("psnr", "msssim_db")):
            x, y = _curve_arrays(curve, metric)
            if x.size:
                ax.plot(x, y, **style)
    axes[0].set_ylabel("PSNR-RGB [dB]")
    axes[1].set_ylabel("MS-SSIM (RGB) [dB]  = -10 log10(1 - MS-SSIM)")
    for ax in axes:
        ax.set_xlabel("bits per pixel")
        ax.grid(True, alpha=0.35)
        ax.set_xlim(left=0)
        ax.legend(loc="lower right", fontsize=9)
    axes[0].set_title(f"Kodak ({n_images} images): rate vs PSNR-RGB")
    axes[1].set_title("rate vs MS-SSIM")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(v, spec=".1f", suffix=""):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return f"{v:{spec}}{suffix}"


def write_table(path: Path, meta: dict, curves: dict, bd: dict) -> None:
    L = []
    L.append("# Kodak rate-distortion summary")
    L.append("")
    L.append(f"- Command: `{meta['command']}`")
    L.append(f"- Date: {meta['date']}")
    L.append(f"- Machine: {meta['machine']['platform']}, CPU: {meta['machine']['cpu']}, "
             f"{meta['machine']['cpu_count']} logical CPUs; Python {meta['machine']['python']}")
    L.append(f"- Images: {meta['n_images']} from `{meta['kodak_dir']}`; jobs: {meta['jobs']}; "
             f"wall time: {meta['wall_s']:.1f} s; measurements computed: {meta['computed']}, "
             f"from cache: {meta['from_cache']}; load average at start/end: "
             f"{meta['loadavg_start']} / {meta['loadavg_end']}")
    L.append(f"- Threads: {meta['threads']}")
    L.append("- Libraries: " + "; ".join(f"{k} {v}" for k, v in meta["libraries"].items()))
    for name, curve in curves.items():
        L.append(f"- **{name}**: {curve['library']} — {curve['version']} — {curve['settings']}; "
                 f"sweep {curve['param_name']} = {', '.join(str(p['param']) for p in curve['points'])}")
    L.append("- Metrics: bpp = whole file bytes*8/pixels; PSNR on 8-bit RGB (MSE over all 3 channels), "
             "per image then averaged; MS-SSIM 5-scale (Wang 2003 weights, 11x11 Gaussian σ=1.5) per "
             "RGB channel then averaged, dB = -10·log10(1 - mean MS-SSIM).")
    L.append("- BD: classic Bjøntegaard (cubic fit of log-rate vs metric over the overlapping interval); "
             "negative BD-rate = fewer bits than the reference at equal quality. BD-PSNR in dB, "
             "positive = better.")
    L.append("")

    refs = [r for r in REFERENCES if r in curves]
    head = ["Curve", "bpp range", "PSNR range [dB]"]
    for r in refs:
        head.append(f"BD-rate vs {r.upper()} (PSNR)")
    for r in refs:
        head.append(f"BD-rate vs {r.upper()} (MS-SSIM)")
    if "jpeg" in curves:
        head.append("BD-PSNR vs JPEG [dB]")
    head += ["Enc CPU s/img", "Dec CPU s/img", "Enc wall s/img", "Dec wall s/img"]
    L.append("| " + " | ".join(head) + " |")
    L.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
    notes = []
    for name, curve in curves.items():
        valid = [p for p in curve["points"] if p["valid"]]
        bpps = [p["bpp"] for p in valid]
        ps = [p["psnr"] for p in valid]
        row = [name,
               f"{min(bpps):.3f}–{max(bpps):.3f}" if bpps else "n/a",
               f"{min(ps):.2f}–{max(ps):.2f}" if ps else "n/a"]

        if not valid:
            notes.append(f"{name}: no complete point (every image must succeed), so no BD numbers")

        def cell(ref, key, spec, suffix):
            e = bd.get(name, {}).get(ref, {})
            note = e.get(f"{key}_note", "")
            if note and valid:
                notes.append(f"{name} vs {ref} ({key}): {note}")
            return _fmt(e.get(key), spec, suffix) + (" *" if note and valid else "")

        for r in refs:
            row.append(cell(r, "bd_rate_psnr", "+.1f", " %"))
        for r in refs:
            row.append(cell(r, "bd_rate_msssim", "+.1f", " %"))
        if "jpeg" in curves:
            row.append(cell("jpeg", "bd_psnr", "+.2f", ""))
        all_ok = [r for p in curve["points"] for r in p["per_image"] if "error" not in r]
        for key in ("enc_cpu_s", "dec_cpu_s", "enc_s", "dec_s"):
            row.append(_fmt(_mean([r[key] for r in all_ok]), ".3f"))
        L.append("| " + " | ".join(row) + " |")
        for p in curve["points"]:
            if p["errors"]:
                notes.append(f"{name} {curve['param_name']}={p['param']}: {len(p['errors'])} image(s) failed, "
                             f"point left out (first: {p['errors'][0]['image']}: {p['errors'][0]['error']})")
    pub = published.curves() if meta["n_images"] == 24 else {}
    if pub:
        L.append("")
        L.append("Published curves, entered as data and not measured here (" + published.source() + "):")
        L.append("")
        head = ["Curve"] + [f"BD-rate vs {r.upper()} (PSNR)" for r in refs] + \
               [f"BD-rate vs {r.upper()} (MS-SSIM)" for r in refs]
        L.append("| " + " | ".join(head) + " |")
        L.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
        for name, c in pub.items():
            row = [name]
            for metric in ("psnr", "msssim_db"):
                for r in refs:
                    ra, ma = _curve_arrays(curves[r], metric)
                    row.append(_fmt(bd_rate_result(ra, ma, c["bpp"], c[metric]).value, "+.1f", " %"))
            L.append("| " + " | ".join(row) + " |")
    L.append("")
    L.append("Times are mean seconds per 768x512 image over all points, codecs single-threaded. "
             "CPU time (process time around encode/decode) is the robust number on a shared machine; "
             "wall time also counts waiting for a core. Cached anchor results keep the timings of the "
             "run that computed them.")
    if meta.get("warnings") or notes:
        L.append("")
        L.append("## Notes")
        L.append("")
        for n in meta.get("warnings", []) + notes:
            L.append(f"- {n}")
    L.append("")
    L.append("## Per-point averages")
    for name, curve in curves.items():
        L.append("")
        L.append(f"**{name}** ({curve['param_name']})")
        L.append("")
        L.append(f"| {curve['param_name']} | bpp | PSNR [dB] | MS-SSIM | MS-SSIM [dB] | enc CPU s | dec CPU s |")
        L.append("|---:|---:|---:|---:|---:|---:|---:|")
        for p in curve["points"]:
            flag = "" if p["valid"] else " (incomplete)"
            L.append(f"| {p['param']}{flag} | {_fmt(p['bpp'], '.4f')} | {_fmt(p['psnr'], '.3f')} | "
                     f"{_fmt(p['msssim'], '.5f')} | {_fmt(p['msssim_db'], '.3f')} | "
                     f"{_fmt(p['enc_cpu_s'], '.3f')} | {_fmt(p['dec_cpu_s'], '.3f')} |")
    L.append("")
    path.write_text("\n".join(L))
