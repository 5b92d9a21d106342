"""Encoder and entropy-coding tools, each on and off, side by side.

    python -m kodak_eval.encoder_report [--set kodak|heldout] [--variants SPEC]
                                        [--qualities 10,30,50,70,90] [--jobs 2] [--images N]

Every variant is a set of ``blockcodec.CodecConfig`` fields; SPEC lists them
as ``name:field=value,field=value;name2:...`` (default: the ablation rows in
VARIANTS).  Each image is coded at each quality by every variant and decoded
as users get it (the post-filter each stream records, default WDSR), so all
rows are measured in one run on the same machine.  Reported per variant:
BD-rate (PSNR-RGB and MS-SSIM) against the first row and the previous row,
and on Kodak against the anchor codecs of ``python -m kodak_eval`` (their
points from kodak_eval/results/results.csv); median encode and decode time
per image (one thread per worker).  On all 24 Kodak images the table
also has BD-rates against CompressAI's published curves (bmshj2018-hyperprior,
mbt2018-mean, BPG 4:4:4), entered as data from kodak_eval/data/.  ``--set heldout`` runs on the
held-out split of the training images instead of Kodak: that is where
encoder settings are tuned.  Writes encoder[-heldout].md and .csv.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import ast  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
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
from .bdrate import bd_rate_result  # noqa: E402
from . import published  # noqa: E402
from .metrics import ms_ssim, msssim_db, psnr  # noqa: E402

QUALITIES = (10, 30, 50, 70, 90)
# The ablation, one tool added per row.
VARIANTS = ("default (effort 2):;"
            "no rate-distortion quantization (effort 0):effort=0;"
            "no table adaptation:adapt=False;"
            "version 1's chroma quantizer (base 16):chroma_base=16;"
            "chroma lambda at its RGB weight:chroma_lambda=1.0;"
            "BlockCNN's first weights (id 3, open loop):predictor=blockcnn;"
            "effort 3:effort=3")
ANCHORS = ("jpeg", "jpeg2000", "heic", "avif")


class Job(NamedTuple):
    image: str
    path: str
    quality: int
    variants: tuple[tuple[str, tuple[tuple[str, object], ...]], ...]


def parse_variants(spec: str) -> tuple[tuple[str, tuple[tuple[str, object], ...]], ...]:
    """'name:field=value,...;name2:...' -> ((name, ((field, value), ...)), ...)."""
    out = []
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        name, _, fields = part.partition(":")
        kv = []
        for item in filter(None, (f.strip() for f in fields.split(","))):
            key, _, value = item.partition("=")
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                pass   # a bare word: a string setting such as a predictor name
            kv.append((key.strip(), value))
        out.append((name.strip(), tuple(kv)))
    if not out:
        raise SystemExit("encoder_report: error: no variants given")
    return tuple(out)


def _worker_init(reference: str | None = None) -> None:
    """One thread (OMP_NUM_THREADS); a reference worker imports blockcodec
    from another checkout.  The codec's C kernels take their count from
    blockcodec.engine (a checkout from before that reads torch's, which
    follows OMP_NUM_THREADS when it loads); torch is told directly only if
    something has already imported it."""
    if reference:
        sys.path.insert(0, reference)
    n = max(1, int(os.environ.get("OMP_NUM_THREADS", "1")))
    from blockcodec import engine
    if hasattr(engine, "set_threads"):
        engine.set_threads(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def measure(job: Job) -> list[dict]:
    from PIL import Image

    import blockcodec
    from blockcodec import codec as C
    from blockcodec import entropy

    rgb = np.asarray(Image.open(job.path).convert("RGB"))
    rows = []
    for name, fields in job.variants:
        fields = dict(fields)
        # Experiment fields, applied to both sides in this process: a table set
        # (.npz), the quantizer base tables, adaptation off or its increment.
        tables_path = fields.pop("tables", None)
        _set_quantizer(*(fields.pop(f, None) for f in ("chroma_base", "chroma_tilt", "luma_tilt")))
        adaptive = getattr(entropy, "ADAPTIVE_TABLES", ())
        increment = getattr(entropy, "ADAPT_INCREMENT", None)
        if not fields.pop("adapt", True):
            entropy.ADAPTIVE_TABLES = ()
        entropy.ADAPT_INCREMENT = float(fields.pop("adapt_increment", increment or 0))
        codec = blockcodec.Codec(quality=job.quality, **fields)
        if tables_path:
            codec.tables = entropy.Tables.load(tables_path)
        try:
            t0 = time.perf_counter()
            enc = codec.encode(rgb, keep_trace=False)
            t1 = time.perf_counter()
            dec = C.decode_result(enc.data, codec.tables)
            t2 = time.perf_counter()
        finally:
            entropy.ADAPTIVE_TABLES = adaptive
            entropy.ADAPT_INCREMENT = increment
        rows.append(dict(variant=name, image=job.image, quality=job.quality, bytes=len(enc.data), bpp=enc.bpp,
                         psnr=psnr(rgb, dec.image), msssim=ms_ssim(rgb, dec.image),
                         psnr_loop=psnr(rgb, enc.image), enc_s=t1 - t0, dec_s=t2 - t1))
    return rows


_SHIPPED_BASES: dict[str, tuple[int, ...]] = {}


def _set_quantizer(chroma_base=None, chroma_tilt=None, luma_tilt=None) -> None:
    """Experiments with the (normative) quantizer base tables: both the
    encoder and the decoder of this process use them, as tune_quantizer does;
    a field left None keeps the shipped value."""
    from blockcodec import quantization as Q

    if not _SHIPPED_BASES:
        _SHIPPED_BASES.update(luma=Q.LUMA_BASE, chroma=Q.CHROMA_BASE)
    chroma, luma = _SHIPPED_BASES["chroma"], _SHIPPED_BASES["luma"]
    if chroma_base is not None or chroma_tilt is not None:
        chroma = Q._tilted(chroma[0] if chroma_base is None else chroma_base,
                           Q.CHROMA_TILT if chroma_tilt is None else chroma_tilt)
    if luma_tilt is not None:
        luma = Q._tilted(luma[0], luma_tilt)
    if (luma, chroma) != (Q.LUMA_BASE, Q.CHROMA_BASE):
        Q.LUMA_BASE, Q.CHROMA_BASE = luma, chroma
        Q._table.cache_clear()


def run(jobs: list[Job], workers: int, progress: bool, reference: str | None = None) -> list[dict]:
    """Measure the jobs in worker processes (always, for a reference checkout,
    whose blockcodec must not meet this one's in a process)."""
    from tqdm import tqdm

    records: list[dict] = []
    if workers > 1 or reference:
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                 initializer=_worker_init, initargs=(reference,)) as pool:
            futures = [pool.submit(measure, j) for j in jobs]
            for fut in tqdm(as_completed(futures), "reference" if reference else "encoder variants",
                            total=len(jobs), unit="img", disable=not progress):
                records += fut.result()
    else:
        _worker_init()
        for j in tqdm(jobs, "encoder variants", unit="img", disable=not progress):
            records += measure(j)
    return records


def curve(records: list[dict], key: str, value: str) -> dict:
    """Mean bpp, PSNR and MS-SSIM (dB) per quality of the records whose ``key`` is ``value``."""
    rs = [r for r in records if r[key] == value]
    qs = sorted({r["quality"] for r in rs})
    pick = {q: [r for r in rs if r["quality"] == q] for q in qs}
    return dict(quality=qs, bpp=np.array([np.mean([r["bpp"] for r in pick[q]]) for q in qs]),
                psnr=np.array([np.mean([r["psnr"] for r in pick[q]]) for q in qs]),
                msssim=np.array([np.mean([msssim_db(r["msssim"]) for r in pick[q]]) for q in qs]))


def _bd(anchor: dict, test: dict, metric: str) -> float:
    return bd_rate_result(anchor["bpp"], anchor[metric], test["bpp"], test[metric]).value


def anchor_curves(images: list[str], path: Path) -> dict[str, dict]:
    """The anchor codecs' Kodak curves from python -m kodak_eval's results.csv, on these images."""
    if not path.is_file():
        return {}
    with path.open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["codec"] in ANCHORS and r["image"] in images and not r["error"]]
    out = {}
    for name in ANCHORS:
        recs = [dict(variant=name, quality=float(r["param"]), bpp=float(r["bpp"]), psnr=float(r["psnr"]),
                     msssim=float(r["msssim"])) for r in rows if r["codec"] == name]
        complete = [q for q in {r["quality"] for r in recs} if sum(r["quality"] == q for r in recs) == len(images)]
        recs = [r for r in recs if r["quality"] in complete]
        if len(complete) >= 4:
            out[name] = curve(recs, "variant", name)
    return out


def images_of(args) -> list[tuple[str, Path]]:
    if args.set == "kodak":
        paths = kodak_images(args.kodak_dir, args.images)
    else:
        from blockcodec.train.data import list_images, split
        _, val = split(list_images(args.data_dir))
        step = max(1, len(val) // args.images) if args.images else 1
        paths = val[::step][: args.images or None]
    return [(p.stem, p) for p in paths]


def write(records: list[dict], names: list[str], images: list[str], args, meta: dict) -> Path:
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "encoder" if args.set == "kodak" else "encoder-heldout"
    with (out_dir / f"{stem}.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(records[0]))
        w.writeheader()
        w.writerows(sorted(records, key=lambda r: (names.index(r["variant"]), r["quality"], r["image"])))
    curves = {n: curve(records, "variant", n) for n in names}
    anchors = {}
    if args.set == "kodak":
        anchors = anchor_curves(images, PKG_DIR / "results" / "results.csv")
        if len(images) == 24:    # published curves average all 24 images
            anchors.update({n: dict(c, msssim=c["msssim_db"]) for n, c in published.curves().items()})
    first = curves[names[0]]
    lines = [f"# Encoder and entropy-coding tools ({'Kodak' if args.set == 'kodak' else 'held-out training split'})",
             "", f"Generated {meta['date']} by `{meta['command']}`; {len(images)} images, qualities "
             f"{', '.join(map(str, args.qualities))}; {meta['workers']} worker(s), one thread each; "
             f"{meta['cpu']}, load average {meta['load']}, wall {meta['wall']:.0f} s.", "",
             "Every stream is decoded as users get it (the post-filter it records). BD-rates are on PSNR-RGB "
             "unless marked MS-SSIM; negative = fewer bits for the same quality. Times are medians per image, "
             "one thread.", ""]
    # With a reference first, row 2 is this checkout's default: the ablation's rows compare to it.
    base = 1 if meta.get("reference") else None
    head = ["variant", "settings", f"BD-rate vs {names[0]}",
            f"vs {names[1]}" if base else "vs previous row", f"MS-SSIM vs {names[0]}"]
    head += [f"vs {a}" for a in anchors] + ["encode s", "decode s"]
    lines += ["| " + " | ".join(head) + " |", "| --- | --- | " + " | ".join(["---:"] * (len(head) - 2)) + " |"]
    for i, n in enumerate(names):
        rs = [r for r in records if r["variant"] == n]
        settings = ", ".join(f"{k}={v}" for k, v in dict(args.variants)[n]) or "defaults"
        cells = [n, settings, f"{_bd(first, curves[n], 'psnr'):+.2f} %",
                 f"{_bd(curves[names[i - 1 if base is None else base]], curves[n], 'psnr'):+.2f} %"
                 if i > (base or 0) else "",
                 f"{_bd(first, curves[n], 'msssim'):+.2f} %"]
        cells += [f"{_bd(a, curves[n], 'psnr'):+.1f} %" for a in anchors.values()]
        cells += [f"{np.median([r['enc_s'] for r in rs]):.3f}", f"{np.median([r['dec_s'] for r in rs]):.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "RD points (mean over images; PSNR after the post-filter, and of the in-loop reconstruction):", "",
              "| variant | q | bpp | PSNR (dB) | in-loop PSNR (dB) | MS-SSIM (dB) |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for n in names:
        for q in args.qualities:
            rs = [r for r in records if r["variant"] == n and r["quality"] == q]
            lines.append(f"| {n} | {q} | {np.mean([r['bpp'] for r in rs]):.4f} | {np.mean([r['psnr'] for r in rs]):.3f} | "
                         f"{np.mean([r['psnr_loop'] for r in rs]):.3f} | "
                         f"{np.mean([msssim_db(r['msssim']) for r in rs]):.3f} |")
    path = out_dir / f"{stem}.md"
    path.write_text("\n".join(lines) + "\n")
    (out_dir / f"{stem}.json").write_text(json.dumps(dict(meta, variants=args.variants, names=names, images=images,
                                                          qualities=list(args.qualities)), indent=1) + "\n")
    return path


def rewrite(args) -> Path:
    """The table again from a run's .csv and .json, without measuring."""
    stem = "encoder" if args.set == "kodak" else "encoder-heldout"
    out = Path(args.out)
    meta = json.loads((out / f"{stem}.json").read_text())
    with (out / f"{stem}.csv").open() as fh:
        records = [dict(r, quality=int(r["quality"]), **{k: float(r[k]) for k in FLOATS}) for r in csv.DictReader(fh)]
    args.variants = tuple((n, tuple(tuple(kv) for kv in fields)) for n, fields in meta["variants"])
    args.qualities = meta["qualities"]
    return write(records, meta["names"], meta["images"], args, meta)


FLOATS = ("bytes", "bpp", "psnr", "msssim", "psnr_loop", "enc_s", "dec_s")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", choices=("kodak", "heldout"), default="kodak")
    ap.add_argument("--variants", type=parse_variants, default=parse_variants(VARIANTS))
    ap.add_argument("--qualities", type=_int_list, default=list(QUALITIES))
    ap.add_argument("--images", type=int, default=None, help="first N Kodak images, or N held-out images")
    ap.add_argument("--kodak-dir", type=Path, default=None)
    ap.add_argument("--data-dir", default=None, help="training images (for --set heldout)")
    ap.add_argument("--reference", metavar="DIR", default=None,
                    help="also measure the default codec of another blockcodec checkout (built in place, "
                         "e.g. a git worktree of an earlier release) as the first row")
    ap.add_argument("--reference-name", default="reference")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", default=str(PKG_DIR / "results"))
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--rewrite", action="store_true",
                    help="only write the table again from the last run's .csv and .json in --out")
    args = ap.parse_args(argv)
    if args.rewrite:
        print(rewrite(args).read_text())
        return 0
    images = images_of(args)
    jobs = [Job(stem, str(p), q, args.variants) for stem, p in images for q in args.qualities]
    load0, t0 = _loadavg(), time.perf_counter()
    records = []
    if args.reference:
        ref = str(Path(args.reference).resolve())
        ref_jobs = [j._replace(variants=((args.reference_name, ()),)) for j in jobs]
        records += run(ref_jobs, args.jobs, not args.quiet, reference=ref)
        args.variants = ((args.reference_name, (("checkout", args.reference),)),) + args.variants
    records += run(jobs, args.jobs, not args.quiet)
    meta = dict(date=datetime.datetime.now().isoformat(timespec="seconds"),
                command="python -m kodak_eval.encoder_report " + shlex.join(sys.argv[1:] if argv is None else argv),
                workers=args.jobs, cpu=machine_info().get("cpu", "?"), load=f"{load0} -> {_loadavg()}",
                wall=time.perf_counter() - t0, reference=args.reference)
    path = write(records, [n for n, _ in args.variants], [s for s, _ in images], args, meta)
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
