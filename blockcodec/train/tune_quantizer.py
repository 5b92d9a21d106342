"""Reproduce the quantizer tuning: BD-rate (PSNR-RGB) against libjpeg-turbo
JPEG 4:2:0 on the held-out split of the training images (never Kodak).

    python -m blockcodec.train.tune_quantizer [--images 20] [--grid default]

Run from the repository root (it borrows kodak_eval's BD-rate).  Each setting
patches the base tables and the encoder's AC rounding, then measures a curve.
Entropy tables are held fixed, so refit them after choosing a new setting.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
from PIL import Image

from .. import quantization as Q
from ..codec import Codec, CodecConfig
from .data import list_images, split

QUALITIES = (10, 20, 30, 40, 50, 60, 70, 80, 90)
# (luma tilt, chroma tilt, chroma base, AC rounding); luma base stays 20.
GRID = [(60, 60, 24, 88), (0, 0, 24, 88), (100, 100, 24, 88), (60, 60, 20, 88), (60, 60, 30, 88),
        (60, 60, 24, 64), (60, 60, 24, 110), (100, 60, 17, 88), (100, 40, 16, 80), (100, 60, 16, 84)]


def _psnr(a, b):
    return 10 * np.log10(255.0 ** 2 / np.mean((a.astype(np.float64) - b) ** 2))


def curve(images, code) -> np.ndarray:
    pts = []
    for q in QUALITIES:
        rate, dist = zip(*((len(d) * 8 / (im.shape[0] * im.shape[1]), _psnr(rec, im))
                           for im in images for d, rec in [code(im, q)]))
        pts.append((np.mean(rate), np.mean(dist)))
    return np.array(pts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir")
    ap.add_argument("--images", type=int, default=20, help="held-out images to use (every 3rd)")
    ap.add_argument("--predictor", default="planar")
    args = ap.parse_args(argv)
    import simplejpeg
    from kodak_eval.bdrate import bd_rate

    _, val = split(list_images(args.data_dir))
    images = [np.asarray(Image.open(p).convert("RGB")) for p in val[::3][: args.images]]

    def jpeg(im, q):
        d = simplejpeg.encode_jpeg(im, quality=q, colorspace="RGB", colorsubsampling="420")
        return d, simplejpeg.decode_jpeg(d)

    anchor = curve(images, jpeg)
    print("luma_tilt chroma_tilt chroma_base ac_rounding  BD-rate vs JPEG")
    for lt, ct, cb, ac in GRID:
        Q.LUMA_BASE, Q.CHROMA_BASE = Q._tilted(20, lt), Q._tilted(cb, ct)
        Q._table.cache_clear()

        def code(im, q):
            r = Codec(CodecConfig(quality=q, predictor=args.predictor,
                                  rounding=Q.Rounding(ac=ac))).encode(im, keep_trace=False)
            return r.data, r.image

        b = curve(images, code)
        print(f"{lt:9d} {ct:11d} {cb:11d} {ac:11d}  {bd_rate(anchor[:, 0], anchor[:, 1], b[:, 0], b[:, 1]):+.2f}%",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
