"""CLI: python -m kodak_eval [options]  (see --help)."""

from __future__ import annotations

import os

# Timings are per image on one core for every codec (blockcodec's torch included),
# so BLAS/OpenMP pools are pinned before numpy or torch get imported. An explicit
# setting in the environment wins. Spawned pool workers inherit this.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

PKG_DIR = Path(__file__).resolve().parent
REPO_ROOT = PKG_DIR.parent
KODAK_REL = Path("..") / "shared" / "data" / "kodak"


def die(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)
    raise SystemExit(2)


def warn(msg: str, bucket: list[str]) -> None:
    print(f"warning: {msg}", file=sys.stderr)
    bucket.append(msg)


def _int_list(s: str) -> list[int]:
    try:
        vals = [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}") from None
    if not vals or any(not 1 <= v <= 100 for v in vals):
        raise argparse.ArgumentTypeError("qualities must be integers in 1..100")
    return vals


def parse_args(argv=None) -> argparse.Namespace:
    from .codecs import ALL_CODECS
    ap = argparse.ArgumentParser(
        prog="python -m kodak_eval",
        description="Kodak rate-distortion curves of blockcodec and anchor codecs, with BD-rates.")
    ap.add_argument("--kodak-dir", type=Path, default=None,
                    help=f"folder with kodim*.png (default: <repo>/{KODAK_REL.as_posix()}, "
                         f"then ./{KODAK_REL.as_posix()})")
    ap.add_argument("--out", type=Path, default=PKG_DIR / "results",
                    help="output folder (default: kodak_eval/results)")
    ap.add_argument("--codecs", default="all",
                    help=f"comma list from {','.join(ALL_CODECS)} (default: all)")
    ap.add_argument("--images", type=int, default=None, metavar="N",
                    help="use only the first N images (quick runs)")
    ap.add_argument("--qualities", type=_int_list, default=None,
                    help="blockcodec quality sweep, e.g. 10,20,30 (default: 10,20,...,90)")
    ap.add_argument("--blockcodec-variants", default="default",
                    help="comma list of blockcodec predictors, one curve each, PREDICTOR+POSTFILTER for a "
                         "curve with a post-filter, e.g. blockcnn,blockcnn+reshuffle; 'default' is the "
                         "codec's default configuration, BlockCNN with its default post-filter "
                         "(default: default)")
    ap.add_argument("--blockcodec-subsampling", default="420",
                    help="chroma subsampling passed to blockcodec.encode (default: 420)")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (default: 1)")
    ap.add_argument("--no-cache", action="store_true",
                    help="recompute anchors, neither reading nor writing the cache")
    ap.add_argument("--cache-dir", type=Path, default=PKG_DIR / "cache", help=argparse.SUPPRESS)
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error("--jobs must be >= 1")
    if args.images is not None and args.images < 1:
        ap.error("--images must be >= 1")
    return args


def resolve_kodak_dir(arg: Path | None) -> Path:
    if arg is not None:
        cands = [arg]
    else:
        cands = [REPO_ROOT / KODAK_REL, Path.cwd() / KODAK_REL]
    for c in cands:
        if c.is_dir():
            return c.resolve()
    die(f"Kodak directory not found (tried {', '.join(str(c) for c in cands)}); pass --kodak-dir")


def kodak_images(kodak_dir: Path | None, limit: int | None) -> list[Path]:
    """The Kodak PNGs (sorted), the first ``limit`` of them when given."""
    kodak = resolve_kodak_dir(kodak_dir)
    images = sorted(kodak.glob("*.png"))
    if not images:
        die(f"no PNG images in {kodak}")
    return images[:limit] if limit else images


def select_codecs(args, warnings: list[str]):
    from .codecs import ALIASES, ALL_CODECS, ANCHORS, BlockCodec, CodecUnavailable

    names = [n.strip().lower() for n in args.codecs.split(",") if n.strip()]
    if "all" in names:
        names = ALL_CODECS
    names = [ALIASES.get(n, n) for n in names]
    unknown = [n for n in names if n not in ALL_CODECS]
    if unknown:
        die(f"unknown codec(s) {', '.join(unknown)}; choose from {', '.join(ALL_CODECS)}")

    codecs = []
    for n in dict.fromkeys(names):  # de-duplicated, order kept
        if n == "blockcodec":
            variants = [v.strip() for v in args.blockcodec_variants.split(",") if v.strip()]
            codecs += [BlockCodec(v, args.blockcodec_subsampling, args.qualities) for v in variants]
        else:
            codecs.append(ANCHORS[n]())

    usable, versions = [], {}
    for c in codecs:
        try:
            c.check()
            versions[c.name] = c.version()
        except CodecUnavailable as exc:
            warn(f"skipping {c.name}: {exc}", warnings)
            continue
        except Exception as exc:
            warn(f"skipping {c.name}: {type(exc).__name__}: {exc}", warnings)
            continue
        usable.append(c)
    return usable, versions


def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(),
            "python": platform.python_version()}


def _loadavg() -> str:
    # Recorded because wall-clock timings are only meaningful on an otherwise idle machine.
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def library_versions() -> dict:
    import importlib.metadata as md
    out = {}
    for dist in ("numpy", "pillow", "simplejpeg", "pillow-heif", "imagecodecs", "matplotlib", "torch"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    load_start = _loadavg()
    warnings: list[str] = []

    images = kodak_images(args.kodak_dir, args.images)
    kodak = images[0].parent

    codecs, versions = select_codecs(args, warnings)
    if not codecs:
        die("no usable codec left to evaluate")

    from .evaluate import ImageRef, ResultCache, Task, file_digest, run_tasks
    from . import report

    refs = [ImageRef(p.stem, str(p), file_digest(str(p))) for p in images]
    # Point-major order: with a pool, consecutive tasks hit different images of the
    # same codec setting, so the bar shows steady progress per curve.
    tasks = [Task(c, p, im) for c in codecs for p in c.sweep for im in refs]
    cache = ResultCache(args.cache_dir, enabled=not args.no_cache)
    records = run_tasks(tasks, versions, cache, jobs=args.jobs, progress=not args.quiet)

    failed = {}
    for t, r in zip(tasks, records):
        if "error" in r:
            failed.setdefault(t.codec.name, []).append(f"{t.param}/{r['image']}: {r['error']}")
    for name, errs in failed.items():
        warn(f"{name}: {len(errs)} measurement(s) failed, e.g. {errs[0]}", warnings)

    curves = report.summarize(codecs, tasks, records, versions)
    bd = report.compute_bd(curves)
    n_cached = sum(1 for r in records if r.get("cached"))
    meta = {
        "command": shlex.join(["python", "-m", "kodak_eval",
                               *(sys.argv[1:] if argv is None else list(argv))]),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine_info(),
        "libraries": library_versions(),
        "kodak_dir": str(kodak),
        "images": [r.name for r in refs],
        "n_images": len(refs),
        "jobs": args.jobs,
        "threads": ("every codec single-threaded (OMP/OpenBLAS/MKL_NUM_THREADS="
                    f"{os.environ.get('OMP_NUM_THREADS')}, AVIF max_threads=1, JPEG XL numthreads=1, "
                    "x265 pools=1 + frame-threads=1, libde265 1 thread)"),
        "computed": len(records) - n_cached,
        "from_cache": n_cached,
        "warnings": warnings,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    meta["wall_s"] = time.perf_counter() - t_start
    meta["loadavg_start"], meta["loadavg_end"] = load_start, _loadavg()
    report.write_json(args.out / "results.json", meta, curves, bd)
    report.write_csv(args.out / "results.csv", curves)
    report.plot(args.out / "rd_psnr.png", curves, len(refs))
    report.write_table(args.out / "table.md", meta, curves, bd)

    print(f"wrote results.json, results.csv, rd_psnr.png, table.md to {args.out} "
          f"in {meta['wall_s']:.1f} s ({meta['computed']} computed, {n_cached} cached)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
