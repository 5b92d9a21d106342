#!/usr/bin/env python
"""Decode time with the post-filter, on the Kodak images.

    python benchmarks/bench_postfilter.py [--kodak-dir DIR] [--quality 50] [--repeats 3]
                                          [--filters default,none] [--images N]
                                          [--out benchmarks/results]

Each image is encoded once per post-filter setting (the same payload; only
the header's post-filter differs), then decoded ``--repeats`` times after a
warm-up, interleaved per round with a libjpeg-turbo decode of the same image
(simplejpeg, quality 90, 4:2:0) as the side-by-side reference.  Reported per
setting: the median over images of each image's median full decode
(``blockcodec.decode_result``: entropy decoding, prediction loop, post-filter,
colour), the post-filter's own share, and the ratio to the reference.  The codec
keeps its default thread count (both cores here), as a user's decode would.

Target (issue 4): a full decode with the default post-filter takes at most 1 s
per Kodak image (median).  Writes postfilter.md and postfilter.json.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import benchlib  # noqa: E402

TARGET_S = 1.0
pc = time.perf_counter


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="blockcodec decode time with each post-filter, on Kodak.")
    ap.add_argument("--kodak-dir", default=os.path.normpath(os.path.join(REPO, "..", "shared", "data", "kodak")))
    ap.add_argument("--quality", type=int, default=50, help="codec quality (default 50)")
    ap.add_argument("--repeats", type=int, default=3, help="timed decodes per image after a warm-up (default 3)")
    ap.add_argument("--filters", default="default,none",
                    help="comma list of post-filters ('default' = the shipped default) (default: default,none)")
    ap.add_argument("--images", type=int, default=None, help="only the first N images")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")

    import simplejpeg

    import blockcodec
    from blockcodec import postfilter

    filters = [postfilter.DEFAULT if f.strip() == "default" else f.strip() for f in args.filters.split(",")
               if f.strip()]
    for f in filters:
        postfilter.check_name(f)
    paths = benchlib.list_kodak(args.kodak_dir, args.images)
    load_start = os.getloadavg()
    started = time.time()
    per_image = {f: {"total": [], "postfilter": []} for f in filters}
    per_image["jpeg_decode"] = {"total": []}
    for path in paths:
        img = benchlib.load_png(path)
        streams = {f: blockcodec.Codec(quality=args.quality, postfilter=f).encode(img, keep_trace=False).data
                   for f in filters}
        jpg = simplejpeg.encode_jpeg(img, quality=90, colorspace="RGB", colorsubsampling="420", fastdct=False)
        runs = {k: {"total": [], "postfilter": []} for k in per_image}
        for r in range(args.repeats + 1):
            for f in filters:
                t0 = pc()
                res = blockcodec.decode_result(streams[f])
                dt = pc() - t0
                if r:
                    runs[f]["total"].append(dt)
                    runs[f]["postfilter"].append(res.timings["postfilter"])
            t0 = pc()
            simplejpeg.decode_jpeg(jpg, colorspace="RGB", fastdct=False, fastupsample=False)
            if r:
                runs["jpeg_decode"]["total"].append(pc() - t0)
        for k, v in runs.items():
            for stage, xs in v.items():
                if xs:
                    per_image[k][stage].append(statistics.median(xs))
        print(f"{os.path.basename(path)}: " + ", ".join(
            f"{f} {statistics.median(runs[f]['total']) * 1000:.0f} ms" for f in filters), file=sys.stderr)

    from blockcodec import engine
    summary = {k: {stage: statistics.median(xs) for stage, xs in v.items() if xs} for k, v in per_image.items()}
    ref = summary["jpeg_decode"]["total"]
    info = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "images": len(paths),
            "quality": args.quality, "repeats": args.repeats, "threads": engine.threads(),
            "load_start": [round(x, 2) for x in load_start], "load_end": [round(x, 2) for x in os.getloadavg()],
            "seconds": round(time.time() - started, 1), "cpu_count": os.cpu_count()}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "postfilter.json"), "w") as f:
        json.dump({"meta": info, "per_image": per_image, "summary": summary}, f, indent=1)
    lines = [
        "# Decode time with the post-filter (Kodak)",
        "",
        f"Generated {info['date']} by `python benchmarks/bench_postfilter.py "
        f"{' '.join(sys.argv[1:] if argv is None else argv)}`; {info['images']} images 768×512 at quality "
        f"{args.quality}, {args.repeats} timed decodes each after a warm-up, codec threads "
        f"{info['threads']}, {info['cpu_count']} CPUs, load average {info['load_start']} -> "
        f"{info['load_end']}.",
        "",
        "Median over images of each image's median. The reference is libjpeg-turbo (simplejpeg) decoding "
        "the same image at JPEG quality 90, 4:2:0, interleaved in every round.",
        "",
        "| post-filter | full decode (ms) | of which post-filter (ms) | × JPEG decode | target ≤ 1 s |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for f in filters:
        s = summary[f]
        ok = "met" if s["total"] <= TARGET_S else "**not met**"
        lines.append(f"| {f}{' (default)' if f == postfilter.DEFAULT else ''} | {s['total'] * 1000:.0f} | "
                     f"{s['postfilter'] * 1000:.0f} | {s['total'] / ref:.0f}× | {ok} |")
    lines.append(f"| JPEG decode (reference) | {ref * 1000:.1f} | – | 1× | |")
    with open(os.path.join(args.out, "postfilter.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
