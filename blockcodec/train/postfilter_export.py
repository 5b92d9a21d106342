"""The shipped WDSR post-filter as an integer program (``blockcodec.convnet8``).

    blockcodec train int8 [--weights NPZ] [--images 48] [--output NPZ] [--force]

Post-training quantization of the float network (weight norm folded):

- the input buffer holds the pixel and the quality byte, both in units of
  1/255, as the float network sees them;
- the residual stream between blocks is int16 at one fine step for the
  whole network (four times the largest value seen, over 32767), so the
  sums of the residual blocks lose nothing;
- each residual block reads the stream requantized to int8 (stored as
  uint8 with zero 128) at its own step, and its hidden ReLU activations are
  uint8: both steps from a high percentile of the float activations, so a
  few outliers do not coarsen every other value;
- the wide convolutions' weights are int8 in -64..64 per output channel;
  the small convolutions (head, tail, the global 5x5 skip) are split into
  two passes, the second coding the first's rounding error, so their
  weights carry about 13 bits;
- the output is summed in int16 at 1/32 of a pixel level and rounded once.

The activation steps are measured with the float network on what the
post-filter sees in the decoder: the Y, Cb and Cr planes of training images
coded by blockcodec (default predictor, 4:2:0) at qualities spread over
5..95, each plane with its own table's quality byte.  Images come from
../shared/data/train (its held-out split left out).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
from pathlib import Path

import numpy as np

from .data import list_images, progress, split

DEFAULT_IMAGES = 48
QUALITIES = (5, 15, 25, 35, 45, 55, 65, 75, 85, 95)
CROP = 384            # the centre of each image, enough for its statistics
PERCENTILE = 0.99995  # the activation value the int8 / uint8 range ends at
STREAM_HEADROOM = 4   # the int16 stream's range over the largest value seen
OUT_FRACTION_BITS = 5  # the output sum's step: 1/32 of a pixel level
INT16 = (-32768, 32767)

# Buffers of the program (index: channels, type, zero).
IN, STREAM, A, HID, OUT16, OUT = range(6)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--weights", metavar="NPZ", default=None,
                    help="WDSR weights to quantize (default: the shipped wdsr)")
    ap.add_argument("--data", metavar="DIR", default=None, help="training images (default ../shared/data/train)")
    ap.add_argument("--images", type=int, default=DEFAULT_IMAGES,
                    help=f"training images to code for the activation statistics, evenly spaced "
                         f"(default {DEFAULT_IMAGES})")
    ap.add_argument("--output", metavar="NPZ", default=None,
                    help="where to write the program (default: runs/NAME.int8.npz for weights NAME.npz)")
    ap.add_argument("-f", "--force", action="store_true", help="overwrite NPZ if it exists")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")


def multiplier(real: float) -> tuple[int, int]:
    """(mult, shift) with mult in [2^30, 2^31) and mult / 2^shift = real."""
    if not (real > 0 and math.isfinite(real)):
        raise ValueError(f"requantization factor {real} is not a positive number")
    e = math.floor(math.log2(real))
    shift = 30 - e
    mult = round(real * 2.0 ** shift)
    if mult >= 1 << 31:
        mult, shift = mult // 2, shift - 1
    if not 0 <= shift <= 62:
        raise ValueError(f"requantization factor {real} is out of range")
    return mult, shift


def _conv_weights(m):
    """A Conv2d's effective float weight and bias (weight norm applied), float64."""
    return m.weight.detach().double().numpy(), m.bias.detach().double().numpy()


def _quantize(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel: int weights in -MAX_WEIGHT..MAX_WEIGHT and their steps."""
    from ..convnet8 import MAX_WEIGHT
    step = np.maximum(np.abs(w).reshape(len(w), -1).max(1), 1e-12) / MAX_WEIGHT
    return np.clip(np.round(w / step[:, None, None, None]), -MAX_WEIGHT, MAX_WEIGHT).astype(np.int64), step


class _Builder:
    def __init__(self):
        self.ops, self.arrays = [], {}

    def conv(self, src, dst, w_int, bias_int, reals, lo, hi, skip=-1):
        """reals: each output channel's factor from accumulator to destination units."""
        from ..convnet8 import CONV, pack_weights
        i = len(self.ops)
        k = w_int.shape[-1]
        # One shift per step: the largest factor sets it, the others keep fewer bits.
        _, shift = multiplier(max(reals))
        mult = np.array([round(r * 2.0 ** shift) for r in reals], np.int64)
        if mult.max() >= 1 << 31:
            raise ValueError("requantization multiplier out of range")
        self.arrays[f"w{i}"] = pack_weights(w_int.astype(np.int8))
        self.arrays[f"b{i}"] = np.asarray(bias_int, np.int32)
        self.arrays[f"m{i}"] = mult.astype(np.int32)
        self.ops.append((CONV, src, dst, skip, k, shift, lo, hi))

    def requant(self, src, dst, real, lo, hi, skip=-1):
        from ..convnet8 import REQUANT
        i = len(self.ops)
        m, s = multiplier(real)
        self.arrays[f"m{i}"] = np.array([m], np.int32)
        self.ops.append((REQUANT, src, dst, skip, 1, s, lo, hi))

    def precise_conv(self, src, dst, w, b, in_step, out_step, zero_in, lo, hi, skip=-1):
        """A small convolution in two passes: the weights, then their rounding error."""
        w1, s1 = _quantize(w)
        err = w - w1 * s1[:, None, None, None]
        w2, s2 = _quantize(err)
        bias = np.round(b / (in_step * s1)) - zero_in * w1.reshape(len(w1), -1).sum(1)
        if not np.any(w2):       # the first pass is exact
            self.conv(src, dst, w1, bias, in_step * s1 / out_step, lo, hi, skip)
            return
        self.conv(src, dst, w1, bias, in_step * s1 / out_step, INT16[0], INT16[1], skip)
        bias2 = -zero_in * w2.reshape(len(w2), -1).sum(1)
        self.conv(src, dst, w2, bias2, in_step * s2 / out_step, lo, hi, dst)


def _pad_in(w: np.ndarray, cin: int) -> np.ndarray:
    out = np.zeros((w.shape[0], cin) + w.shape[2:], w.dtype)
    out[:, :w.shape[1]] = w
    return out


def build(net, peaks: dict, source: str, data: str) -> dict[str, np.ndarray]:
    """The program's arrays for a float WDSR and its measured activation peaks:
    peaks["stream"] (largest stream value), peaks["input"][i], peaks["hidden"][i]
    (block i), peaks["tail"] (the tail's input)."""
    cfg = net.config
    if cfg.channels != 1 or cfg.centered:
        raise ValueError("the integer WDSR program is for one-channel, uncentred networks")
    width, wide = cfg.width, cfg.width * cfg.expansion
    s_in = 1 / 255                                     # pixel and quality byte
    s_r = STREAM_HEADROOM * peaks["stream"] / 32767    # the residual stream
    s_o = 1 / (255 << OUT_FRACTION_BITS)                # the output sum
    bld = _Builder()
    wh, bh = _conv_weights(net.head)
    bld.precise_conv(IN, STREAM, _pad_in(wh, 4), bh, s_in, s_r, 0, *INT16)
    for i, blk in enumerate(net.body):
        s_a = peaks["input"][i] / 127
        s_h = peaks["hidden"][i] / 255
        bld.requant(STREAM, A, s_r / s_a, -127, 127)
        we, be = _conv_weights(blk.body[0])
        wq, step = _quantize(we)
        bias = np.round(be / (s_a * step)) - 128 * wq.reshape(wide, -1).sum(1)
        bld.conv(A, HID, wq, bias, s_a * step / s_h, 0, 255)
        ws, bs = _conv_weights(blk.body[2])
        wq, step = _quantize(ws)
        bias = np.round(bs / (s_h * step))
        bld.conv(HID, STREAM, wq, bias, s_h * step / s_r, *INT16, skip=STREAM)
    wk, bk = _conv_weights(net.skip)
    bld.precise_conv(IN, OUT16, _pad_in(wk, 4), bk, s_in, s_o, 0, *INT16)
    s_t = peaks["tail"] / 127
    bld.requant(STREAM, A, s_r / s_t, -127, 127)
    wt, bt = _conv_weights(net.tail)
    bld.precise_conv(A, OUT16, wt, bt, s_t, s_o, 128, *INT16, skip=OUT16)
    bld.requant(OUT16, OUT, 1 / (1 << OUT_FRACTION_BITS), 0, 255)
    from ..convnet8 import I16, U8
    # IN, STREAM, A, HID, OUT16, OUT as (channels, type, zero)
    buffers = np.array([(4, U8, 0), (width, I16, 0), (width, U8, 128), (wide, U8, 0), (1, I16, 0), (1, U8, 0)],
                       np.int32)
    margin = 2 * cfg.blocks + 2
    meta = {"input": IN, "output": OUT, "margin": margin, "arch": "wdsr", "consts": ["quality byte", 0, 0],
            "source_sha256": source, "data": data, "peaks": peaks}
    arrays = dict(bld.arrays, buffers=buffers, ops=np.array(bld.ops, np.int32),
                  meta=np.frombuffer(json.dumps(meta, sort_keys=True).encode(), np.uint8))
    return arrays


def measure_peaks(net, planes, qbytes) -> dict:
    """The float network's activation peaks over planes (uint8) with their quality bytes."""
    import torch
    import torch.nn.functional as F

    stats = {"stream": 0.0, "input": [0.0] * len(net.body), "hidden": [0.0] * len(net.body), "tail": 0.0}

    def pct(t):
        v = t.abs().flatten()
        k = int(PERCENTILE * (len(v) - 1)) + 1   # nearest rank, lower
        return float(torch.kthvalue(v, k).values)

    with torch.no_grad():
        for plane, qb in zip(planes, qbytes):
            x = torch.from_numpy(np.ascontiguousarray(plane)).float().div_(255)[None, None]
            h = net.head(net.with_quality(x, torch.tensor([qb / 255], dtype=torch.float32)))
            for i, blk in enumerate(net.body):
                stats["stream"] = max(stats["stream"], float(h.abs().max()))
                stats["input"][i] = max(stats["input"][i], pct(h))
                r = F.relu(blk.body[0](h))
                stats["hidden"][i] = max(stats["hidden"][i], pct(r))
                h = h + blk.body[2](r)
            stats["stream"] = max(stats["stream"], float(h.abs().max()))
            stats["tail"] = max(stats["tail"], pct(h))
    return stats


def calibration_planes(data_dir, images: int, show_progress: bool):
    """Decoded planes of training images and their quality bytes (module docstring)."""
    from PIL import Image

    from .. import quantization
    from ..codec import Codec
    from ..convnet8 import quality_byte

    train, _ = split(list_images(data_dir))
    picks = [train[i] for i in np.linspace(0, len(train) - 1, min(images, len(train))).astype(int)]
    planes, qbytes = [], []
    for k, path in enumerate(progress(picks, "coding images", show_progress)):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        h, w = rgb.shape[:2]
        y0, x0 = max(0, (h - CROP) // 2), max(0, (w - CROP) // 2)
        rgb = rgb[y0:y0 + CROP, x0:x0 + CROP]
        quality = QUALITIES[k % len(QUALITIES)]
        res = Codec(quality=quality, postfilter="none").encode(rgb, keep_trace=False)
        for i, tr in enumerate(res.planes):
            planes.append(tr.recon)
            qbytes.append(quality_byte(quantization.qtable(quality, i > 0)))
    return planes, qbytes, len(picks)


def run(args) -> Path:
    from .. import convnet8, zoo
    from ..restoration.weights import load_weights

    weights = Path(args.weights) if args.weights else zoo.path("wdsr")
    net, meta = load_weights(weights)
    if meta.get("arch") != "wdsr":
        raise ValueError(f"{weights}: the integer program is for WDSR weights, not {meta.get('arch')!r}")
    if args.images < 1:
        raise ValueError("--images must be at least 1")
    out = Path(args.output) if args.output else Path("runs") / f"{weights.stem}.int8.npz"
    if out.exists() and not args.force:
        raise ValueError(f"{out} exists; pass --force to replace it")
    net = net.eval()
    planes, qbytes, n = calibration_planes(args.data, args.images, not args.no_progress)
    peaks = measure_peaks(net, planes, qbytes)
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    data = (f"{n} training images (../shared/data/train, training split), centre {CROP}x{CROP}, coded by "
            f"blockcodec 4:2:0 at qualities {QUALITIES[0]}..{QUALITIES[-1]}; Y, Cb, Cr planes")
    arrays = build(net, peaks, sha, data)
    out.parent.mkdir(parents=True, exist_ok=True)
    convnet8.save(out, arrays)
    convnet8.load(out)    # the C core accepts it
    return out
