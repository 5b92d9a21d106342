"""Kodak rate-distortion of the codec with each post-filter, side by side.

    python -m kodak_eval.postfilter_report [--filters all] [--qualities 10,30,50,70,90]
                                           [--jobs 2] [--images N] [--out kodak_eval/results]

Each Kodak image is coded once per quality by the default codec (BlockCNN
predictor); the in-loop reconstruction is then post-filtered by every network
in turn, so all curves share the same streams and differ only in the filter.
Rate is the stream size (the post-filter costs no bits); distortion is PSNR
on RGB after the decoder's colour conversion.  Reported per filter: BD-rate
and BD-PSNR against no post-filter, the post-filter's time per image (one
torch thread per worker, as every kodak_eval timing), and the network's size
in parameters and multiply-adds per pixel.  Every filter is measured as the
decoder runs it (WDSR as its integer program in the C core, ``blockcodec/convnet8.py``);
``NAME-float`` (e.g. ``--filters wdsr,wdsr-float``) adds the float network
beside it.  Writes postfilter.md, .csv and postfilter.png (PSNR gain over no
filter against bits per pixel).
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import datetime  # noqa: E402
import multiprocessing as mp  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor, as_completed  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import NamedTuple  # noqa: E402

import numpy as np  # noqa: E402

from .__main__ import PKG_DIR, _int_list, _loadavg, kodak_images, machine_info  # noqa: E402
from .bdrate import bd_metric_result, bd_rate_result  # noqa: E402
from .metrics import psnr  # noqa: E402

QUALITIES = (10, 30, 50, 70, 90)


class Job(NamedTuple):
    image: str      # stem
    path: str
    quality: int
    filters: tuple[str, ...]


def _worker_init() -> None:
    import torch
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))


def measure(job: Job) -> list[dict]:
    """One (image, quality): code once, post-filter with each filter."""
    from PIL import Image

    import blockcodec
    from blockcodec import codec as C
    from blockcodec import postfilter

    rgb = np.asarray(Image.open(job.path).convert("RGB"))
    enc = blockcodec.Codec(quality=job.quality, postfilter="none").encode(rgb, keep_trace=False)
    dec = C.decode_result(enc.data, postfilter_choice="none")
    if not np.array_equal(dec.image, enc.image):
        raise RuntimeError(f"{job.image} q{job.quality}: decoder differs from the encoder's reconstruction")
    geom = C.Geometry(dec.header.width, dec.header.height, dec.header.mode)
    planes = [tr.recon for tr in dec.planes]
    bpp = enc.bpp
    rows = []
    for name in job.filters:
        base, exact = _base(name)
        if base != "none":
            postfilter.decoder_network(base)     # loaded once per process, outside the timed region
        t0 = time.perf_counter()
        out = C._assemble(postfilter.apply(base, planes, job.quality, exact=exact), geom)
        dt = time.perf_counter() - t0
        rows.append(dict(image=job.image, quality=job.quality, filter=name, bpp=bpp,
                         psnr=psnr(rgb, out), seconds=dt))
    return rows


FLOAT = "-float"


def _base(name: str) -> tuple[str, bool]:
    """'wdsr-float' -> ('wdsr', True): the shipped filter and whether to run its float network."""
    return (name[:-len(FLOAT)], True) if name.endswith(FLOAT) else (name, False)


def run(jobs: list[Job], workers: int, progress: bool) -> list[dict]:
    from blockcodec.train.data import progress as bar_of

    records: list[dict] = []
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                 initializer=_worker_init) as pool:
            futures = [pool.submit(measure, j) for j in jobs]
            for fut in bar_of(as_completed(futures), "post-filters", progress, total=len(jobs), unit="img"):
                records += fut.result()
    else:
        _worker_init()
        for j in bar_of(jobs, "post-filters", progress, unit="img"):
            records += measure(j)
    return records


def curves(records: list[dict]) -> dict[str, list[dict]]:
    """filter -> one point per quality: mean bpp, mean PSNR, mean seconds."""
    out: dict[str, list[dict]] = {}
    for name in dict.fromkeys(r["filter"] for r in records):
        pts = []
        for q in sorted({r["quality"] for r in records}):
            rs = [r for r in records if r["filter"] == name and r["quality"] == q]
            pts.append(dict(quality=q, bpp=float(np.mean([r["bpp"] for r in rs])),
                            psnr=float(np.mean([r["psnr"] for r in rs])),
                            seconds=float(np.mean([r["seconds"] for r in rs])), n=len(rs)))
        out[name] = pts
    return out


def model_sizes(names) -> dict[str, dict]:
    from blockcodec import postfilter, zoo

    sizes = {}
    for name in names:
        base, _ = _base(name)
        if base == "none":
            continue
        net = postfilter.network(base)
        sizes[name] = dict(params=net.parameter_count(), macs=net.macs_per_pixel(),
                           kbytes=zoo.path(base).stat().st_size / 1000)
    return sizes


def summary(cv: dict[str, list[dict]]) -> list[dict]:
    base = cv["none"]
    rows = []
    for name, pts in cv.items():
        if name == "none":
            continue
        args = ([p["bpp"] for p in base], [p["psnr"] for p in base], [p["bpp"] for p in pts],
                [p["psnr"] for p in pts])
        rows.append(dict(filter=name, bd_rate=bd_rate_result(*args).value, bd_psnr=bd_metric_result(*args).value,
                         seconds=float(np.mean([p["seconds"] for p in pts])),
                         gains={p["quality"]: p["psnr"] - b["psnr"] for p, b in zip(pts, base)}))
    return rows


def anchor_curves(path: Path, n_images: int) -> dict[str, list[dict]]:
    """Anchor codecs' RD points (mean bpp, mean PSNR per parameter) from a
    kodak_eval results.csv, when it covers the same images."""
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if not r.get("error") and r["image"] != "MEAN"
                and not r["codec"].startswith("blockcodec")]
    out = {}
    for codec in dict.fromkeys(r["codec"] for r in rows):
        pts = []
        for param in dict.fromkeys(r["param"] for r in rows if r["codec"] == codec):
            rs = [r for r in rows if r["codec"] == codec and r["param"] == param]
            if len(rs) == n_images:
                pts.append(dict(bpp=float(np.mean([float(r["bpp"]) for r in rs])),
                                psnr=float(np.mean([float(r["psnr"]) for r in rs]))))
        if len(pts) >= 4:
            out[codec] = pts
    return out


def anchor_table(cv, anchors) -> list[str]:
    if not anchors:
        return []
    names = list(anchors)
    lines = ["", "BD-rate (PSNR-RGB) against the anchor codecs of `python -m kodak_eval` "
             "(their points from kodak_eval/results/results.csv, same images):", "",
             "| blockcodec curve | " + " | ".join(f"vs {n}" for n in names) + " |",
             "| --- | " + " | ".join("---:" for _ in names) + " |"]
    for name, pts in cv.items():
        cells = []
        for a in names:
            res = bd_rate_result([p["bpp"] for p in anchors[a]], [p["psnr"] for p in anchors[a]],
                                 [p["bpp"] for p in pts], [p["psnr"] for p in pts])
            cells.append(f"{res.value:+.1f} %")
        lines.append(f"| post-filter {name} | " + " | ".join(cells) + " |")
    return lines


def write_outputs(out: Path, records, cv, rows, sizes, meta, anchors=None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "postfilter.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(records[0]))
        w.writeheader()
        w.writerows(records)
    qs = [p["quality"] for p in cv["none"]]
    lines = [
        "# Kodak: the codec with each post-filter",
        "",
        f"Generated {meta['date']} by `{meta['command']}`; {meta['images']} images, qualities "
        f"{', '.join(map(str, qs))}; blockcodec default predictor (BlockCNN), 4:2:0; {meta['jobs']} worker(s), "
        f"one torch thread each; {meta['cpu']}, load average {meta['load_start']} -> {meta['load_end']}, "
        f"wall {meta['wall']:.0f} s.",
        "",
        "Every filter runs on the same streams (rate identical); PSNR is on RGB. BD-rate / BD-PSNR "
        "are against no post-filter (negative BD-rate = fewer bits for the same PSNR). "
        "`s/image` is the post-filter alone (all three planes, tiled), per Kodak image, one thread.",
        "",
        "| post-filter | BD-rate vs none | BD-PSNR (dB) | "
        + " | ".join(f"gain q{q} (dB)" for q in qs) + " | s/image | parameters | MACs/pixel |",
        "| --- | ---: | ---: | " + " | ".join("---:" for _ in qs) + " | ---: | ---: | ---: |",
    ]
    for r in rows:
        s = sizes[r["filter"]]
        lines.append(f"| {r['filter']} | {r['bd_rate']:+.2f} % | {r['bd_psnr']:+.3f} | "
                     + " | ".join(f"{r['gains'][q]:+.3f}" for q in qs)
                     + f" | {r['seconds']:.3f} | {s['params']:,} | {s['macs']:,.0f} |")
    lines += anchor_table(cv, anchors)
    lines += ["", "RD points (mean over images):", "", "| post-filter | q | bpp | PSNR (dB) |",
              "| --- | ---: | ---: | ---: |"]
    for name, pts in cv.items():
        for p in pts:
            lines.append(f"| {name} | {p['quality']} | {p['bpp']:.4f} | {p['psnr']:.3f} |")
    (out / "postfilter.md").write_text("\n".join(lines) + "\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    base = cv["none"]
    for name, pts in cv.items():
        if name != "none":
            ax.plot([p["bpp"] for p in pts], [p["psnr"] - b["psnr"] for p, b in zip(pts, base)],
                    marker="o", label=name)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel("PSNR-RGB gain over no post-filter (dB)")
    ax.set_title(f"Kodak ({meta['images']} images): post-filter gain at equal rate")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "postfilter.png", dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    from blockcodec import postfilter

    ap = argparse.ArgumentParser(prog="python -m kodak_eval.postfilter_report",
                                 description="Kodak RD of the codec with each post-filter, BD-rate against none.")
    ap.add_argument("--kodak-dir", type=Path, default=None, help="folder with kodim*.png")
    ap.add_argument("--filters", default="all",
                    help=f"comma list from {', '.join(postfilter.NAMES[1:])}, or all (default); NAME{FLOAT} "
                         "runs that filter's float network where the decoder runs int8 (wdsr)")
    ap.add_argument("--qualities", type=_int_list, default=list(QUALITIES),
                    help="codec qualities (default: 10,30,50,70,90)")
    ap.add_argument("--images", type=int, default=None, metavar="N", help="only the first N images")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (default: 1)")
    ap.add_argument("--out", type=Path, default=PKG_DIR / "results", help="output folder")
    ap.add_argument("--anchors", type=Path, default=PKG_DIR / "results" / "results.csv",
                    help="kodak_eval results.csv with the anchor codecs' points, for BD-rates against them "
                         "(default: kodak_eval/results/results.csv; skipped if missing)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.filters.split(",") if n.strip()]
    if "all" in names:     # the shipped filters, then any extra (NAME-float) asked for
        names = list(postfilter.NAMES[1:]) + [n for n in names if n != "all" and n not in postfilter.NAMES]
    bad = [n for n in names if _base(n)[0] not in postfilter.NAMES[1:]]
    if bad or not names:
        ap.error(f"unknown post-filter(s) {', '.join(bad) or '(none given)'}; "
                 f"choose from {', '.join(postfilter.NAMES[1:])}")
    if args.jobs < 1:
        ap.error("--jobs must be >= 1")
    images = kodak_images(args.kodak_dir, args.images)
    filters = ("none", *names)
    jobs = [Job(p.stem, str(p), q, filters) for q in args.qualities for p in images]
    load_start, t0 = _loadavg(), time.time()
    records = run(jobs, args.jobs, not args.quiet)
    records.sort(key=lambda r: (r["filter"] != "none", r["filter"], r["quality"], r["image"]))
    cv = curves(records)
    rows = summary(cv)
    meta = dict(date=datetime.datetime.now().isoformat(timespec="seconds"),
                command="python -m kodak_eval.postfilter_report " + " ".join(
                    shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)),
                images=len(images), jobs=args.jobs, cpu=machine_info()["cpu"], load_start=load_start,
                load_end=_loadavg(), wall=time.time() - t0)
    anchors = anchor_curves(args.anchors, len(images))
    write_outputs(args.out, records, cv, rows, model_sizes(filters), meta, anchors)
    for r in rows:
        print(f"{r['filter']:12s} BD-rate {r['bd_rate']:+6.2f} %  BD-PSNR {r['bd_psnr']:+.3f} dB  "
              f"{r['seconds']:.3f} s/image")
    print(f"wrote {args.out / 'postfilter.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
