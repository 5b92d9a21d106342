"""Decode cost per claimed pixel, in the worst case a stream allows.

    python benchmarks/worst_case_decode.py                       # the table of docs/DESIGN.md
    python benchmarks/worst_case_decode.py --size 2048x1024      # a quick run

The cheapest block to code is an all-zero one, so the streams that claim the
most pixels per byte code a flat mid-grey image (every residual zero for the
none and planar predictors).  Each stream is coded once with the 'none'
predictor, then relabelled with the predictor to measure: the payload does
not depend on the predictor, and the decoder runs the relabelled one on it.
Encoding the largest size takes a few GB of memory.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

# Each step runs in a fresh process started from this small one: a child's
# peak RSS counts what its parent held when it forked (Linux keeps it across
# exec), so the parent must not have coded anything itself.
DECODE = """
import json, resource, sys, time
from blockcodec.codec import decode_result
data = open(sys.argv[1], "rb").read()
t = time.perf_counter()
r = decode_result(data, postfilter_choice=sys.argv[2])
print(json.dumps({"seconds": time.perf_counter() - t, "pixels": r.header.width * r.header.height,
                  "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""

# A flat mid-grey image coded with the 'none' predictor, relabelled with another.
MAKE = """
import struct, sys, zlib
import numpy as np
import blockcodec
from blockcodec import bitstream, predictors
path, width, height, colour, predictor = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5]
shape = (height, width, 3) if colour else (height, width)
data = bytearray(blockcodec.encode(np.full(shape, 128, np.uint8), 50, predictor="none", postfilter="none"))
struct.pack_into("<B4s", data, 16, predictors.id_of(predictor), predictors.get(predictor).weights_hash())
struct.pack_into("<I", data, len(data) - 4, zlib.crc32(bytes(data[:-4])))
assert bitstream.unpack(bytes(data))[0].predictor_id == predictors.id_of(predictor)
open(path, "wb").write(bytes(data))
"""


def python(code: str, *args) -> str:
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          check=True).stdout


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="16384x8192", help="WxH of the large streams (default: 2^27 pixels)")
    ap.add_argument("--predictors", default="none,planar,blockcnn")
    ap.add_argument("--postfilter", default="none", help="post-filter to decode with (default none)")
    ap.add_argument("--workdir", default="/tmp/blockcodec_worst_case")
    args = ap.parse_args(argv)
    width, height = map(int, args.size.lower().split("x"))
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    cases = [(f"{args.size} {'4:2:0' if colour else 'gray'}", width, height, colour)
             for colour in (False, True)] + [("65536x8 gray (one block row)", 65536, 8, False)]
    print("| stream | predictor | bytes | decode s | ns per pixel | peak RSS MB | bytes per pixel |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for label, w, h, colour in cases:
        for predictor in args.predictors.split(","):
            path = work / f"{w}x{h}-{'rgb' if colour else 'gray'}-{predictor}.bkc"
            python(MAKE, path, w, h, int(colour), predictor)
            m = json.loads(python(DECODE, path, args.postfilter))
            print(f"| {label} | {predictor} | {path.stat().st_size} | {m['seconds']:.2f} | "
                  f"{m['seconds'] / m['pixels'] * 1e9:.0f} | {m['peak_rss'] / 2**20:.0f} | "
                  f"{m['peak_rss'] / m['pixels']:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
