"""Fit the entropy coder's frequency tables on the training images.

    python -m blockcodec.train.entropy_tables [--data-dir DIR] [--out PATH]

Every training image (validation split excluded) is coded at several random
qualities, predictors and colour modes; the (context, symbol) pairs of the
coding passes are counted and turned into integer frequencies, smoothed
toward the average distribution of the table so that rare contexts stay sane.
The result is committed as blockcodec/data/entropy_tables.npz.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
from PIL import Image

from .. import entropy
from ..codec import Codec, CodecConfig
from .data import list_images, split
from .data import progress as progress_bar

TOTAL = 1 << 16      # frequencies per row sum to about this
PRIOR_WEIGHT = 8.0   # pseudo-counts of the table-wide average per row


def collect(paths, qualities, predictor_names, rng, progress=True, effort=0, lambda_scale=None) -> dict:
    sink = entropy.Collector()
    for path in progress_bar(paths, "collecting", progress):
        img = np.asarray(Image.open(path).convert("RGB"))
        for q in rng.choice(qualities, size=2, replace=False):
            pred = str(rng.choice(predictor_names))
            sub = "420" if rng.random() < 0.75 else "444"
            gray = rng.random() < 0.1
            extra = {} if lambda_scale is None else {"lambda_scale": lambda_scale}
            codec = Codec(CodecConfig(quality=int(q), predictor=pred, subsampling=sub, effort=effort, **extra))
            geom, traces, dc_pred, _ = codec.analyse(img[:, :, 1] if gray else img, keep_trace=False)
            for (h, w), tr, i in zip(geom.plane_shapes, traces, range(3)):
                entropy.code_plane(sink, tr.coefs, h // 8, w // 8, i > 0, dc_pred, int(q))
    return sink.counts


def to_frequencies(counts: np.ndarray, max_per_mille: int | None = None) -> np.ndarray:
    """Smoothed integer frequencies; with ``max_per_mille``, no symbol's share
    of its row exceeds that bound (the EOB table's payload-size guard)."""
    c = counts.astype(np.float64)
    prior = c.sum(0) + 1.0
    prior /= prior.sum()
    p = c + PRIOR_WEIGHT * prior
    p /= p.sum(1, keepdims=True)
    f = np.maximum(1, np.round(p * TOTAL)).astype(np.int64)
    if max_per_mille is not None:
        top = f.argmax(1)
        rows = np.arange(len(f))
        others = f.sum(1) - f[rows, top]
        f[rows, top] = np.minimum(f[rows, top], max_per_mille * others // (1000 - max_per_mille))
    return f.astype(np.uint32)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", help="training images (default ../shared/data/train)")
    ap.add_argument("--out", default="blockcodec/data/entropy_tables.npz")
    ap.add_argument("--predictors", default="planar,dc,none")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N training images")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--effort", type=int, default=0, help="encoder effort the statistics are collected at")
    ap.add_argument("--lambda-scale", type=float, default=None)
    args = ap.parse_args(argv)
    train, _ = split(list_images(args.data_dir))
    if args.limit:
        train = train[: args.limit]
    rng = np.random.default_rng(args.seed)
    qualities = np.arange(5, 100, 5)
    counts = collect(train, qualities, args.predictors.split(","), rng, effort=args.effort,
                     lambda_scale=args.lambda_scale)
    bound = {"eob": entropy.MAX_EOB_PROBABILITY_PER_MILLE}
    tables = entropy.Tables({n: to_frequencies(c, bound.get(n)) for n, c in counts.items()})
    tables.save(args.out)
    total = {n: int(c.sum()) for n, c in counts.items()}
    print(f"fitted on {len(train)} images; symbols per table: {total}; hash {tables.hash.hex()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
