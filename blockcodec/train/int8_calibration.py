"""Calibration of the int8 WDSR post-filter (``restoration/int8.py``).

    blockcodec train int8 [--weights NPZ] [--images 48] [--output JSON] [--force]

The activation scales are measured with the float network on what the
post-filter sees in the decoder: the Y, Cb and Cr planes of training images
coded by blockcodec (default predictor, 4:2:0) at qualities spread over
5..95, each plane with its own table's quality feature.  Images come from
../shared/data/train (the validation split of training is left out too).
"""
from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from .data import list_images, progress, split

DEFAULT_IMAGES = 48
QUALITIES = (5, 15, 25, 35, 45, 55, 65, 75, 85, 95)
CROP = 384          # the centre of each image, enough for its statistics


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--weights", metavar="NPZ", default=None,
                    help="WDSR weights to calibrate (default: the shipped wdsr)")
    ap.add_argument("--data", metavar="DIR", default=None, help="training images (default ../shared/data/train)")
    ap.add_argument("--images", type=int, default=DEFAULT_IMAGES,
                    help=f"training images to code, evenly spaced (default {DEFAULT_IMAGES})")
    ap.add_argument("--output", metavar="JSON", default=None,
                    help="where to write the scales (default: runs/NAME.int8.json for weights NAME.npz)")
    ap.add_argument("-f", "--force", action="store_true", help="overwrite JSON if it exists")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> Path:
    # Imported here, not above: the CLI reads add_arguments on every start, and
    # these bring in torch.
    import numpy as np
    from PIL import Image

    from .. import quantization, restoration, zoo
    from ..codec import Codec
    from ..restoration.int8 import calibrate
    from ..restoration.weights import load_weights

    weights = Path(args.weights) if args.weights else zoo.path("wdsr")
    net, meta = load_weights(weights)
    if meta.get("arch") != "wdsr":
        raise ValueError(f"{weights}: int8 calibration is for WDSR weights, not {meta.get('arch')!r}")
    if args.images < 1:
        raise ValueError("--images must be at least 1")
    train, _ = split(list_images(args.data))
    picks = [train[i] for i in np.linspace(0, len(train) - 1, min(args.images, len(train))).astype(int)]
    planes, features = [], []
    for k, path in enumerate(progress(picks, "coding images", not args.no_progress)):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        h, w = rgb.shape[:2]
        y0, x0 = max(0, (h - CROP) // 2), max(0, (w - CROP) // 2)
        rgb = rgb[y0:y0 + CROP, x0:x0 + CROP]
        quality = QUALITIES[k % len(QUALITIES)]
        res = Codec(quality=quality, postfilter="none").encode(rgb, keep_trace=False)
        for i, tr in enumerate(res.planes):
            planes.append(tr.recon)
            features.append(restoration.quality_feature(quantization.qtable(quality, i > 0)))
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    cal = calibrate(net, planes, features, sha,
                    data=f"{len(picks)} training images (../shared/data/train, training split), centre "
                         f"{CROP}x{CROP}, coded by blockcodec 4:2:0 at qualities {QUALITIES[0]}..{QUALITIES[-1]}; "
                         f"Y, Cb, Cr planes")
    out = Path(args.output) if args.output else Path("runs") / f"{weights.stem}.int8.json"
    if out.exists() and not args.force:
        raise ValueError(f"{out} exists; pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(cal.to_json())
    tmp.replace(out)
    return out
