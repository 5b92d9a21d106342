"""JPEG artifact-removal benchmark, grayscale protocol (LIVE1 and Classic5).

Run from the repository root:

    python -m kodak_eval.artifacts [--data-dir DIR] [--qualities 10,20,30,40]
                                   [--sets live1,classic5] [--out kodak_eval/results/artifacts.md]

Protocol (the one behind the published AR-CNN / DnCNN-3 / FBCNN grayscale tables):

1. Each image is an 8-bit grayscale PNG. The shipped ``live1_gray`` files are
   already "L" images: they are the *studio-range* BT.601 luma of the colour
   LIVE1 images (Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255, values
   16..235 -- MATLAB's ``rgb2ycbcr``), not full-range 0..255 luma. Classic5 is
   natively grayscale (0..255). If an RGB file is given instead, it is converted
   with that same studio-range BT.601 formula (``blockcodec.color.rgb_to_studio_luma``) so that
   LIVE1 from ``live1_color`` gives the same numbers.
2. The image is JPEG-compressed at quality q with the standard IJG tables:
   Pillow's ``save(format="JPEG", quality=q)`` on an "L" image calls libjpeg's
   ``jpeg_set_quality(q, force_baseline=TRUE)``, i.e. the Annex K luminance
   table scaled by the IJG formula (``ijg_luma_table``). The table Pillow wrote
   is read back from the file and checked against that formula for every
   image, so a Pillow build with other tables fails loudly instead of silently
   changing the benchmark. The JPEG is decoded by Pillow (libjpeg ISLOW IDCT).
3. Each method ("jpeg" = the decoded image itself, plus any plugged-in
   restorer) produces a uint8 image, scored against the original with PSNR
   (peak 255), SSIM and PSNR-B (``kodak_eval.metrics``), no border cropping.
4. A set's number is the mean over its images of the per-image metric (not the
   metric of the pooled MSE, which for LIVE1 q10 is ~0.6 dB lower).

Restorers are plugged in through ``evaluate``; see ``Restorer``.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import shlex
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from blockcodec.color import rgb_to_studio_luma

from .__main__ import _int_list
from .metrics import psnr, psnr_b, ssim

PKG_DIR = Path(__file__).resolve().parent
REPO_ROOT = PKG_DIR.parent
DEFAULT_OUT = PKG_DIR / "results" / "artifacts.md"
DATA_REL = Path("..") / "shared" / "data" / "eval"

# Benchmark name -> folder under the eval data dir, and the name shown in tables.
SETS = {"live1": "live1_gray", "classic5": "classic5"}
SET_TITLES = {"live1": "LIVE1", "classic5": "Classic5"}
QUALITIES = (10, 20, 30, 40)

# A restorer maps (decoded uint8 HxW image, the JPEG's 64 luminance quantization
# steps as uint16 in natural row-major order) to a restored uint8 HxW image.
Restorer = Callable[[np.ndarray, np.ndarray], np.ndarray]

# Published PSNR (dB), grayscale protocol (../shared/data/README.md). Only PSNR
# is given there, so only PSNR is listed; SSIM / PSNR-B cells stay empty rather
# than quoting numbers nobody here checked.
PUBLISHED_PSNR = {
    ("live1", 10): {"JPEG": 27.77, "AR-CNN": 28.96, "DnCNN-3": 29.19,
                    "hourglass + channel attention": 29.45, "FBCNN": 29.75},
    ("classic5", 10): {"JPEG": 27.82, "AR-CNN": 29.03, "DnCNN-3": 29.40,
                       "hourglass + channel attention": 29.70, "FBCNN": 30.12},
    ("live1", 40): {"JPEG": 32.35, "AR-CNN": 33.61},
    ("classic5", 40): {"JPEG": 32.43, "AR-CNN": 33.32},
}
# How close our "jpeg" row must be to the published JPEG row to count as a
# reproduction: the published numbers have two decimals (+-0.005), and 0.05 dB
# leaves room only for tiny codec differences, not for a different protocol.
REPRO_TOL_DB = 0.05

# ITU-T T.81 Annex K, Table K.1 (luminance), natural row-major order. This is the
# q = 50 table of the IJG library.
IJG_LUMA_TABLE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
], dtype=np.uint16)


# --- IJG quality scaling ------------------------------------------------------

def ijg_quality_scaling(quality: int) -> int:
    """libjpeg's ``jpeg_quality_scaling``: quality 1..100 to a percentage.

    q < 50: 5000 / q (integer division), so q = 10 -> 500 %;
    q >= 50: 200 - 2 q, so q = 50 -> 100 % (the Annex K table), q = 100 -> 0 %.
    Out-of-range qualities are clamped to 1..100 as libjpeg does.
    """
    q = min(max(int(quality), 1), 100)
    return 5000 // q if q < 50 else 200 - 2 * q


def ijg_luma_table(quality: int, force_baseline: bool = True) -> np.ndarray:
    """The IJG luminance quantization table for ``quality`` (uint16, natural order).

    libjpeg's ``jpeg_add_quant_table``: each entry is
    ``(base * scale + 50) // 100`` (rounded percentage), then clamped to at least
    1 (a zero step is meaningless) and, for baseline JPEG, to at most 255 (8-bit
    table entries). Pillow always asks for baseline, hence the default.
    """
    scale = ijg_quality_scaling(quality)
    t = (IJG_LUMA_TABLE.astype(np.int64) * scale + 50) // 100
    return np.clip(t, 1, 255 if force_baseline else 32767).astype(np.uint16)


# --- Images and JPEG ------------------------------------------------------------

def load_gray(path: str | Path) -> np.ndarray:
    """An image file as uint8 HxW: "L" as is, "RGB" through ``blockcodec.color.rgb_to_studio_luma``.

    Other modes (16-bit, palette, alpha) raise: guessing a conversion would
    quietly change the benchmark.
    """
    from PIL import Image
    with Image.open(path) as im:
        if im.mode == "L":
            return np.array(im, dtype=np.uint8)
        if im.mode == "RGB":
            return rgb_to_studio_luma(np.asarray(im))
        raise ValueError(f"{path}: unsupported image mode {im.mode!r} (need L or RGB)")


def jpeg_roundtrip(gray: np.ndarray, quality: int) -> tuple[np.ndarray, np.ndarray, int]:
    """JPEG-compress a uint8 HxW image with Pillow at IJG ``quality`` and decode it.

    Returns (decoded uint8 HxW, luminance table read back from the file as uint16
    in natural order, size in bytes). Raises RuntimeError if the file's table is
    not the IJG-scaled standard table: the benchmark is defined by those tables.
    """
    from PIL import Image
    g = np.asarray(gray)
    if g.ndim != 2 or g.dtype != np.uint8:
        raise ValueError(f"expected a uint8 HxW image, got {g.dtype} {g.shape}")
    buf = io.BytesIO()
    # optimize/progressive only change the entropy coding, never the pixels; they
    # are pinned anyway so the byte count is that of a plain baseline file.
    Image.fromarray(g).save(buf, format="JPEG", quality=int(quality),
                            optimize=False, progressive=False)
    nbytes = buf.tell()
    buf.seek(0)
    with Image.open(buf) as im:
        tables = im.quantization  # Pillow gives tables in natural order
        decoded = np.array(im.convert("L"), dtype=np.uint8)
    if sorted(tables) != [0]:
        raise RuntimeError(f"expected one luminance table, the JPEG has tables {sorted(tables)}")
    table = np.asarray(tables[0], dtype=np.uint16)
    expected = ijg_luma_table(quality)
    if table.shape != (64,) or not np.array_equal(table, expected):
        raise RuntimeError(f"Pillow wrote a non-IJG table at q={quality}: {table.tolist()} "
                           f"(expected {expected.tolist()})")
    return decoded, table, nbytes


# --- Data -----------------------------------------------------------------------

def default_data_dir() -> Path:
    """../shared/data/eval relative to the repository root, else to the cwd."""
    here = REPO_ROOT / DATA_REL
    return here if here.is_dir() else Path.cwd() / DATA_REL


def list_set(set_name: str, data_dir: str | Path | None = None) -> list[Path]:
    """Sorted PNG paths of one benchmark set; FileNotFoundError if missing or empty."""
    if set_name not in SETS:
        raise ValueError(f"unknown set {set_name!r}; known: {', '.join(SETS)}")
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    folder = root / SETS[set_name]
    if not folder.is_dir():
        raise FileNotFoundError(f"{SET_TITLES[set_name]} folder not found: {folder}")
    paths = sorted(folder.glob("*.png"))
    if not paths:
        raise FileNotFoundError(f"no .png images in {folder}")
    return paths


# --- Evaluation -------------------------------------------------------------------

def _identity(decoded: np.ndarray, table: np.ndarray) -> np.ndarray:
    return decoded


def evaluate(restorers: Mapping[str, Restorer] | None = None,
             sets: Sequence[str] = ("live1", "classic5"),
             qualities: Sequence[int] = QUALITIES,
             data_dir: str | Path | None = None,
             *, show_progress: bool = False) -> list[dict]:
    """Score "jpeg" (no restoration) and every restorer on every set and quality.

    ``restorers`` maps a method name to a callable ``f(decoded, table)``:
    ``decoded`` is the JPEG-decoded uint8 HxW image (a private copy, the
    restorer may modify it) and ``table`` the 64 luminance quantization steps of
    that JPEG, uint16, natural row-major order (entry 8*u + v is the step of
    vertical frequency u, horizontal frequency v). It must return a uint8 HxW
    image of the same shape; anything else raises ValueError rather than being
    cast, since e.g. truncating floats to uint8 would silently cost ~0.1 dB.

    Every (image, quality) is JPEG-coded once and shared by all methods.
    Returns one row per (set, quality, method): set, quality, method, psnr,
    ssim, psnr_b (means over images of the per-image values), n_images and
    seconds (wall time spent inside the method's calls, summed over images;
    the JPEG encode/decode and the metrics are not included, so "jpeg" is ~0).
    """
    restorers = dict(restorers or {})
    if "jpeg" in restorers:
        raise ValueError("'jpeg' is the built-in no-restoration row; pick another name")
    methods: dict[str, Restorer] = {"jpeg": _identity, **restorers}
    qualities = [int(q) for q in qualities]
    for q in qualities:
        if not 1 <= q <= 100:
            raise ValueError(f"JPEG quality must be in 1..100, got {q}")
    # Resolve every set before the (slow) work starts, so a missing folder fails
    # at once and not after an hour of network inference on the first set.
    set_paths = {s: list_set(s, data_dir) for s in sets}

    from blockcodec.train.data import progress

    rows = []
    for set_name, paths in set_paths.items():
        images = [load_gray(p) for p in paths]
        acc = {(q, m): {"psnr": [], "ssim": [], "psnr_b": [], "seconds": 0.0}
               for q in qualities for m in methods}
        work = [(q, i) for q in qualities for i in range(len(images))]
        for q, i in progress(work, desc=f"{SET_TITLES[set_name]}", enabled=show_progress,
                             unit="img", file=sys.stderr):
            original = images[i]
            decoded, table, _ = jpeg_roundtrip(original, q)
            for name, fn in methods.items():
                t0 = time.perf_counter()
                out = fn(decoded.copy(), table.copy())
                dt = time.perf_counter() - t0
                out = np.asarray(out)
                if out.dtype != np.uint8 or out.shape != original.shape:
                    raise ValueError(f"restorer {name!r} returned {out.dtype} {out.shape} for "
                                     f"{paths[i].name}; expected uint8 {original.shape}")
                a = acc[(q, name)]
                a["psnr"].append(psnr(original, out))
                a["ssim"].append(ssim(original, out))
                a["psnr_b"].append(psnr_b(original, out))
                a["seconds"] += dt
        for q in qualities:
            for name in methods:
                a = acc[(q, name)]
                rows.append({
                    "set": set_name, "quality": q, "method": name,
                    "psnr": float(np.mean(a["psnr"])), "ssim": float(np.mean(a["ssim"])),
                    "psnr_b": float(np.mean(a["psnr_b"])), "n_images": len(images),
                    "seconds": a["seconds"],
                })
    return rows


def network_restorer(net, ensemble: bool = False) -> Restorer:
    """A restorer running a restoration network, conditioned on the JPEG's table."""
    from blockcodec.restoration import quality_feature
    from blockcodec.restoration.tiling import restore

    return lambda decoded, table: restore(net, decoded, quality_feature(table), ensemble=ensemble)


def network_restorers(models: str, weights: Sequence[str] = (), ensemble: str = "") -> dict[str, Restorer]:
    """Restorers for shipped models ('all' or a comma list) and NAME=NPZ weights
    files; the models named in ``ensemble`` also as a self-ensemble row 'NAME x8'."""
    from blockcodec import postfilter

    names = [m.strip() for m in models.split(",") if m.strip()]
    if "all" in names:
        names = list(postfilter.NAMES[1:])
    out = {}
    for name in names:
        if name not in postfilter.NAMES[1:]:
            raise ValueError(f"unknown model {name!r}; shipped: {', '.join(postfilter.NAMES[1:])}")
        out[name] = network_restorer(postfilter.network(name))
    for spec in weights:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--weights expects NAME=NPZ, got {spec!r}")
        from blockcodec.restoration.inference import frozen
        from blockcodec.restoration.weights import load_weights
        try:
            net, _ = load_weights(path)
        except (OSError, KeyError, RuntimeError) as exc:
            raise ValueError(f"cannot load {path}: {exc}") from None
        out[name] = network_restorer(frozen(net))
    for name in (m.strip() for m in ensemble.split(",") if m.strip()):
        if name not in postfilter.NAMES[1:]:
            raise ValueError(f"unknown model {name!r} for --ensemble; shipped: {', '.join(postfilter.NAMES[1:])}")
        out[f"{name} x8"] = network_restorer(postfilter.network(name), ensemble=True)
    return out


def published_rows(sets: Iterable[str], qualities: Iterable[int]) -> list[dict]:
    """The published PSNR rows for the given sets and qualities (no SSIM/PSNR-B)."""
    qualities = list(qualities)
    out = []
    for s in sets:
        for q in qualities:
            for method, value in PUBLISHED_PSNR.get((s, q), {}).items():
                out.append({"set": s, "quality": q, "method": method, "psnr": value})
    return out


def reproduction_check(rows: Iterable[dict], tol: float = REPRO_TOL_DB) -> list[dict]:
    """Our "jpeg" PSNR against the published JPEG PSNR wherever both exist."""
    out = []
    for r in rows:
        if r["method"] != "jpeg":
            continue
        pub = PUBLISHED_PSNR.get((r["set"], r["quality"]), {}).get("JPEG")
        if pub is None:
            continue
        diff = r["psnr"] - pub
        out.append({"set": r["set"], "quality": r["quality"], "measured": r["psnr"],
                    "published": pub, "diff": diff, "ok": abs(diff) <= tol})
    return out


# --- Report -------------------------------------------------------------------------

CSV_FIELDS = ["set", "quality", "method", "source", "psnr", "ssim", "psnr_b", "n_images", "seconds"]


def _table_rows(rows: list[dict]) -> list[dict]:
    """Measured and published rows merged, grouped by set then quality."""
    sets = list(dict.fromkeys(r["set"] for r in rows))
    qualities = sorted({r["quality"] for r in rows})
    pub = published_rows(sets, qualities)
    merged = []
    for s in sets:
        for q in qualities:
            merged += [dict(r, source="measured") for r in rows
                       if r["set"] == s and r["quality"] == q]
            merged += [dict(r, source="published") for r in pub
                       if r["set"] == s and r["quality"] == q]
    return merged


def _fmt(v, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def render_markdown(rows: list[dict], command: str = "") -> str:
    from PIL import __version__ as pil_version
    from PIL import features
    turbo = features.version("libjpeg_turbo") if features.check_feature("libjpeg_turbo") else None
    jpeg_lib = f"libjpeg-turbo {turbo}" if turbo else f"libjpeg {features.version('jpg')}"
    lines = [
        "# JPEG artifact removal: grayscale protocol (LIVE1, Classic5)",
        "",
        f"Generated {datetime.datetime.now().isoformat(timespec='seconds')}"
        + (f" by `{command}`" if command else "") + f"; Pillow {pil_version}, {jpeg_lib}.",
        "",
        "Protocol: 8-bit grayscale originals (LIVE1: studio-range BT.601 luma of the colour "
        "images; Classic5: native gray), JPEG at quality q with the standard IJG luminance "
        "table (checked per image), decoded by Pillow; PSNR (peak 255), SSIM (Gaussian 11x11, "
        "sigma 1.5, 'valid' map) and PSNR-B (Yim & Bovik 2011, 8x8 BEF of the test image) "
        "against the original, no border cropping, averaged over images. `seconds` is the "
        "time spent in the method (JPEG coding excluded). Published rows: PSNR only, from "
        "`../shared/data/README.md`.",
        "",
        "| set | q | method | source | PSNR (dB) | SSIM | PSNR-B (dB) | images | seconds |",
        "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in _table_rows(rows):
        measured = r["source"] == "measured"
        lines.append(
            f"| {SET_TITLES.get(r['set'], r['set'])} | {r['quality']} | {r['method']} | "
            f"{r['source']} | {r['psnr']:.{3 if measured else 2}f} | "
            f"{_fmt(r.get('ssim'), '.4f')} | {_fmt(r.get('psnr_b'), '.3f')} | "
            f"{_fmt(r.get('n_images'), 'd')} | {_fmt(r.get('seconds'), '.2f')} |")
    checks = reproduction_check(rows)
    if checks:
        lines += ["", f"Reproduction of the published JPEG rows (tolerance {REPRO_TOL_DB} dB):", "",
                  "| set | q | measured (dB) | published (dB) | difference (dB) | reproduced |",
                  "| --- | ---: | ---: | ---: | ---: | --- |"]
        for c in checks:
            lines.append(f"| {SET_TITLES[c['set']]} | {c['quality']} | {c['measured']:.3f} | "
                         f"{c['published']:.2f} | {c['diff']:+.3f} | {'yes' if c['ok'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in _table_rows(rows):
            w.writerow({k: ("" if r.get(k) is None else
                            (round(r[k], 6) if isinstance(r.get(k), float) else r[k]))
                        for k in CSV_FIELDS})


# --- CLI --------------------------------------------------------------------------------

def _set_list(s: str) -> list[str]:
    vals = [x.strip().lower() for x in s.split(",") if x.strip()]
    bad = [v for v in vals if v not in SETS]
    if not vals or bad:
        raise argparse.ArgumentTypeError(f"unknown set(s) {bad or s!r}; known: {', '.join(SETS)}")
    return vals


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m kodak_eval.artifacts",
        description="JPEG artifact-removal benchmark (grayscale LIVE1 / Classic5): "
                    "PSNR, SSIM and PSNR-B of decoded JPEG, beside the published rows.")
    ap.add_argument("--data-dir", type=Path, default=None,
                    help=f"folder holding live1_gray/ and classic5/ (default: {DATA_REL})")
    ap.add_argument("--qualities", type=_int_list, default=list(QUALITIES),
                    help="comma-separated JPEG qualities (default: 10,20,30,40)")
    ap.add_argument("--sets", type=_set_list, default=list(SETS),
                    help="comma-separated sets among live1,classic5 (default: both)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help="markdown output; a .csv with the same stem is written beside it")
    ap.add_argument("--models", default="",
                    help="comma-separated shipped restoration networks to score, or 'all' "
                         "(blockcnn-ar, arcnn, hourglass, reshuffle, wdsr); default: none, JPEG only")
    ap.add_argument("--weights", action="append", default=[], metavar="NAME=NPZ",
                    help="also score a weights file from 'blockcodec train restoration' (repeatable)")
    ap.add_argument("--ensemble", default="", metavar="NAMES",
                    help="also score these shipped models as a self-ensemble over the 8 rotations and "
                         "flips (a row 'NAME x8'; 8x the time)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)

    try:
        # Checked up front so that a wrong path is one clear line, not a traceback.
        for s in args.sets:
            list_set(s, args.data_dir)
        restorers = network_restorers(args.models, args.weights, args.ensemble)
        rows = evaluate(restorers, sets=args.sets, qualities=args.qualities, data_dir=args.data_dir,
                        show_progress=not args.no_progress)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    command = "python -m kodak_eval.artifacts " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_markdown(rows, command.strip()))
    write_csv(rows, out.with_suffix(".csv"))

    for r in rows:
        print(f"{SET_TITLES[r['set']]:8s} q{r['quality']:<3d} {r['method']:10s} "
              f"PSNR {r['psnr']:.3f} dB  SSIM {r['ssim']:.4f}  PSNR-B {r['psnr_b']:.3f} dB  "
              f"({r['n_images']} images)")
    for c in reproduction_check(rows):
        print(f"{SET_TITLES[c['set']]} q{c['quality']}: measured {c['measured']:.3f} vs published "
              f"{c['published']:.2f} ({c['diff']:+.3f} dB): "
              f"{'reproduced' if c['ok'] else 'NOT reproduced'}")
    print(f"wrote {out} and {out.with_suffix('.csv')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
