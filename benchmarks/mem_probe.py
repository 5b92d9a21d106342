"""Peak memory of ONE blockcodec encode or decode, in a fresh process.

Run by bench_codec.py (one process per measurement); prints one JSON object.

    python benchmarks/mem_probe.py --op encode --measure rss \
        --image kodim01.png --size small --predictor planar --quality 50 --data-out x.bc
    python benchmarks/mem_probe.py --op decode --measure rss --data-in x.bc
    python benchmarks/mem_probe.py --op encode --measure rss --composite 6000x4000 \
        --predictor blockcnn+default --quality 75 --data-out x.bc     # a 24-MP photo

Everything that is not the operation itself happens before the baseline:
imports, entropy tables, a tiny warm-up encode + decode with the same settings
(lazy imports and first-call initialisation), reading the input image or the
coded bytes, and gc.collect().

--measure rss:         peak RSS increase = ru_maxrss(after) - ru_maxrss(before).
                       ru_maxrss is a high-water mark; if it was already above
                       the current RSS at the baseline (an earlier transient
                       peak, or one inherited from the parent at exec), the
                       increase is underestimated by up to that slack, which is
                       reported as rss_slack_mib.  As a cross-check the probe
                       also resets /proc/self VmHWM (clear_refs 5) at the
                       baseline and reports VmHWM(after) - VmRSS(before).
                       Where the reset works it may reset ru_maxrss too (it
                       does on this VM's kernel: the increase then reads low,
                       even below zero); the VmHWM figure is the one to use.
                       peak_rss_mib is the process's whole peak, interpreter,
                       libraries, weights and the input included: the largest
                       of ru_maxrss before and after and VmHWM after.
--measure tracemalloc: tracemalloc peak of the operation (Python objects and
                       numpy buffers; memory malloc'ed inside C/Rust extensions
                       such as _cext or constriction is not seen).  Separate
                       process, because tracemalloc's bookkeeping inflates RSS.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402


def _maxrss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--op", choices=["encode", "decode"], required=True)
    ap.add_argument("--measure", choices=["rss", "tracemalloc"], required=True)
    ap.add_argument("--image", action="append", default=[], help="source PNG(s) (encode)")
    ap.add_argument("--composite", metavar="WxH",
                    help="encode benchlib.make_composite(W, H), training photos tiled, instead of --image")
    ap.add_argument("--size", choices=[benchlib.SMALL, benchlib.LARGE], default=benchlib.SMALL)
    ap.add_argument("--large-mode", choices=["tile", "upsample"], default="tile")
    ap.add_argument("--predictor", default="planar")
    ap.add_argument("--quality", type=int, default=50)
    ap.add_argument("--data-in", help="coded stream to decode")
    ap.add_argument("--data-out", help="write the coded stream here (encode)")
    args = ap.parse_args(argv)

    maxrss_start = _maxrss_kib()
    import numpy as np

    import blockcodec

    # Warm-up with a tiny image: lazy imports, entropy tables, constriction.
    rng = np.random.default_rng(0)
    tiny = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    codec = benchlib.make_codec(args.predictor, args.quality)
    blockcodec.decode_result(codec.encode(tiny, keep_trace=False).data)
    del tiny

    img = data = None
    if args.op == "encode":
        if args.composite:
            w, h = (int(v) for v in args.composite.lower().split("x"))
            img = benchlib.make_composite(w, h)
        elif args.size == benchlib.SMALL:
            img = benchlib.load_png(args.image[0])
        else:
            img = benchlib.make_large(args.image, args.large_mode)
        shape = list(img.shape)
    else:
        with open(args.data_in, "rb") as f:
            data = f.read()
        shape = None

    if args.measure == "tracemalloc":
        import tracemalloc
    gc.collect()
    ru_before = _maxrss_kib()
    rss_before = benchlib.proc_status_kib("VmRSS")
    hwm_before = benchlib.proc_status_kib("VmHWM")
    hwm_reset = _reset_hwm() if args.measure == "rss" else False
    if args.measure == "tracemalloc":
        tracemalloc.start()

    t0 = time.perf_counter()
    if args.op == "encode":
        result = codec.encode(img, keep_trace=False)
    else:
        result = blockcodec.decode_result(data)
        shape = list(result.image.shape)
    seconds = time.perf_counter() - t0

    out = {"op": args.op, "measure": args.measure, "size": args.size, "shape": shape,
           "predictor": args.predictor, "quality": args.quality, "seconds": seconds,
           "maxrss_at_start_mib": maxrss_start / 1024, "torch_imported": "torch" in sys.modules}
    if args.measure == "tracemalloc":
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out["tracemalloc_peak_mib"] = peak / 2**20
    else:
        ru_after = _maxrss_kib()
        hwm_after = benchlib.proc_status_kib("VmHWM")
        out.update(
            rss_peak_increase_mib=(ru_after - ru_before) / 1024,
            ru_maxrss_before_mib=ru_before / 1024,
            ru_maxrss_after_mib=ru_after / 1024,
            peak_rss_mib=max(ru_before, ru_after, hwm_after or 0) / 1024,
            rss_before_mib=None if rss_before is None else rss_before / 1024,
            rss_slack_mib=None if rss_before is None else max(0, ru_before - rss_before) / 1024,
            hwm_before_mib=None if hwm_before is None else hwm_before / 1024,
            hwm_reset=hwm_reset,
            hwm_peak_increase_mib=(None if not (hwm_reset and hwm_after and rss_before)
                                   else (hwm_after - rss_before) / 1024),
        )
    if args.op == "encode":
        out["bytes"] = len(result.data)
        if args.data_out:
            with open(args.data_out, "wb") as f:
                f.write(result.data)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
