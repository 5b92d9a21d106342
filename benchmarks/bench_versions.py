#!/usr/bin/env python
"""This checkout's codec against an earlier one, per stage, interleaved.

    python benchmarks/bench_versions.py --reference DIR [--images N] [--repeats R]
                                        [--quality 50] [--effort E] [--out benchmarks/results]

DIR is another blockcodec checkout with its C extension built in place (e.g.
``git worktree add ../ref v0.1 && (cd ../ref && python setup.py build_ext
--inplace)``).  Two worker processes, one per checkout, each pinned to one
thread, code the same Kodak images in turn: for every image and repeat, the
reference encodes and decodes, then this checkout does, so outside load hits
both alike.  Reported: medians per image of encode total, decode total and
each decode stage (``Result.timings``), and the ratio of this checkout to the
reference.  Both decode with their default post-filter.  Writes versions.md.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import multiprocessing as mp  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
STAGES = ("entropy", "prediction", "transform", "glue", "postfilter", "color")


def _init(path: str) -> None:
    sys.path.insert(0, path)
    os.environ["OMP_NUM_THREADS"] = "1"     # the codec's C kernels (and torch's, where a checkout uses it)
    from blockcodec import engine
    if hasattr(engine, "set_threads"):
        engine.set_threads(1)


def _run(path: str, quality: int, effort: int | None) -> dict:
    """Encode and decode one image in this worker's checkout."""
    import numpy as np
    from PIL import Image

    import blockcodec
    from blockcodec import codec as C

    rgb = np.asarray(Image.open(path).convert("RGB"))
    kwargs = {} if effort is None else {"effort": effort}
    t0 = time.perf_counter()
    enc = blockcodec.Codec(quality=quality, **kwargs).encode(rgb, keep_trace=False)
    t1 = time.perf_counter()
    dec = C.decode_result(enc.data)
    t2 = time.perf_counter()
    out = {"encode": t1 - t0, "decode": t2 - t1, "bytes": len(enc.data)}
    out.update({s: dec.timings.get(s, 0.0) for s in STAGES})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", required=True, metavar="DIR")
    ap.add_argument("--reference-name", default="reference")
    ap.add_argument("--kodak-dir", default=str(REPO.parent / "shared" / "data" / "kodak"))
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--quality", type=int, default=50)
    ap.add_argument("--effort", type=int, default=None, help="this checkout's encoder effort (default: its default)")
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args(argv)
    paths = sorted(Path(args.kodak_dir).glob("kodim*.png"))[: args.images]
    if not paths:
        raise SystemExit(f"bench_versions: error: no kodim*.png in {args.kodak_dir}")
    ctx = mp.get_context("spawn")
    sides = {"reference": str(Path(args.reference).resolve()), "this": str(REPO)}
    pools = {k: ProcessPoolExecutor(1, mp_context=ctx, initializer=_init, initargs=(v,)) for k, v in sides.items()}
    rows: dict[str, list[dict]] = {k: [] for k in sides}
    load0 = os.getloadavg()
    try:
        for k in sides:    # warm-up: imports, weights, first-call costs
            pools[k].submit(_run, str(paths[0]), args.quality, None if k == "reference" else args.effort).result()
        for _ in range(args.repeats):
            for p in paths:
                for k in sides:
                    rows[k].append(pools[k].submit(_run, str(p), args.quality,
                                                   None if k == "reference" else args.effort).result())
    finally:
        for pool in pools.values():
            pool.shutdown()
    med = {k: {m: statistics.median(r[m] for r in rows[k]) for m in ("encode", "decode") + STAGES}
           for k in sides}
    size = {k: sum(r["bytes"] for r in rows[k]) / len(rows[k]) for k in sides}
    lines = ["# This checkout against a reference, interleaved", "",
             f"Generated {datetime.datetime.now().isoformat(timespec='seconds')} by "
             f"`python benchmarks/bench_versions.py {shlex.join(sys.argv[1:] if argv is None else argv)}`; "
             f"{len(paths)} Kodak images x {args.repeats} repeats at quality {args.quality}, one thread each; "
             f"load average {load0[0]:.2f} -> {os.getloadavg()[0]:.2f}.", "",
             "Medians per image in ms (decode stages from `Result.timings`); ratio = this / reference.", "",
             f"| | {args.reference_name} | this checkout | ratio |", "| --- | ---: | ---: | ---: |"]
    for m in ("encode", "decode") + STAGES:
        a, b = med["reference"][m] * 1000, med["this"][m] * 1000
        lines.append(f"| {m} | {a:.1f} | {b:.1f} | {b / a:.3f} |" if a > 0 else f"| {m} | {a:.1f} | {b:.1f} | |")
    lines.append(f"| mean stream bytes | {size['reference']:.0f} | {size['this']:.0f} | "
                 f"{size['this'] / size['reference']:.3f} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "versions.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
