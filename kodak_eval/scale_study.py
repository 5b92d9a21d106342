"""Learned entropy scales: would they beat the context-adaptive coder?

    python -m kodak_eval.scale_study [--train-images 80] [--qualities 25,50,75]

The BlockCNN issue suggests a second network head that predicts the scale of
every DCT coefficient of a block's residual, for the entropy coder to use in
place of its hand-made contexts.  Building that into the codec means
interleaving entropy decoding with prediction, one wavefront at a time, so
this study first measures what it would gain:

1. Blocks coded by the codec with the shipped BlockCNN predictor, on training
   images (``../shared/data/train``, its training split) at random qualities.
2. A scale head on the shipped network's frozen features (the int8 maps its
   prediction head reads), per plane type: features -> 128 -> 64 log-scales
   of the residual's DCT coefficients, divided by each coefficient's
   quantizer step.  It is trained on the code length of the quantized
   coefficients under a discretized Laplace distribution with those scales.
3. On Kodak, the ideal code length of every coefficient under the learned
   scales (probabilities floored at 2^-16, as a 16-bit coder would) against
   the bits the codec's context-adaptive coder actually spends on the same
   coefficients (EOB, DC, AC, escapes and signs; the container excluded).

The ideal code length is a lower bound for a real learned-scale coder, which
would also lose a little to bucketing the scales into tables.  Results go to
kodak_eval/results/scales.md.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from blockcodec import _cext, color, predictors, quantization
from blockcodec.codec import Codec, CodecConfig
from blockcodec.engine import guide_windows, pad_guide
from blockcodec.predictors import FILL
from blockcodec.predictors.blockcnn import build_inputs, quality_feature
from blockcodec.train.data import list_images, progress, split

from .__main__ import kodak_images

RESULTS = Path(__file__).parent / "results"
MIN_PROB = 2.0 ** -16


def plane_blocks(img: np.ndarray, quality: int):
    """Encode with BlockCNN; per plane: (int8 features [n, F], int16 coefs
    [n, 64], uint16 qtable [64], chroma).  Contexts come from the final
    reconstruction, which is what the decoder had when it reached each block."""
    res = Codec(CodecConfig(quality=quality, predictor="blockcnn")).encode(img, keep_trace=True)
    net = predictors.get("blockcnn")
    recon = [tr.recon for tr in res.planes]
    guides = [pad_guide(color.downsample_420(recon[0])), pad_guide(recon[1])]
    out = []
    for index, tr in enumerate(res.planes):
        h, w = tr.recon.shape
        rows, cols = (a.astype(np.int32).ravel() for a in np.divmod(np.arange(h * w // 64), w // 8))
        ctx = np.empty((len(rows), 24, 24), np.uint8)
        avail = np.empty((len(rows), 4), np.uint8)
        _cext.gather_contexts(tr.recon, w, h, rows, cols, FILL, ctx, avail)
        chroma = index > 0
        qt = quantization.qtable(quality, chroma)
        win = None
        if chroma:
            win = np.stack([guide_windows(g, rows, cols) for g in guides[:index]], 1)
        feats = []
        for i in range(0, len(rows), 4096):
            sl = slice(i, i + 4096)
            x = build_inputs(ctx[sl], avail[sl], quality_feature(qt), None if win is None else win[sl],
                             is_cr=index == 2, chroma=chroma)
            feats.append(net.nets[chroma](x, head=False))
        out.append((np.concatenate(feats), tr.coefs, qt, chroma))
    bits = sum(v for k, v in res.bits.items() if k != "container")
    return out, bits


class ScaleHead(nn.Module):
    def __init__(self, n_features: int, hidden: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, 64))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.net(feats / 128.0) + 3.0    # log-scale in DCT units; residual DCT ~ e^3 typical


def laplace_bits(log_scale: torch.Tensor, coefs: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """Code length (bits) of each quantized coefficient under a discretized
    Laplace with scale exp(log_scale) / step, in quantizer units."""
    b = torch.exp(log_scale) / steps
    a = coefs.abs()
    upper = torch.exp(-(a - 0.5).clamp(min=0) / b)
    lower = torch.exp(-(a + 0.5) / b)
    p = torch.where(a == 0, 1 - lower, 0.5 * (upper - lower))
    return -torch.log2(p.clamp(min=MIN_PROB))


def fit(samples, epochs: int, seed: int = 0) -> dict[bool, ScaleHead]:
    torch.manual_seed(seed)
    heads = {}
    for chroma in (False, True):
        f = torch.from_numpy(np.concatenate([s[0] for s in samples if s[3] == chroma]).astype(np.float32))
        c = torch.from_numpy(np.concatenate([s[1] for s in samples if s[3] == chroma]).astype(np.float32))
        q = torch.from_numpy(np.concatenate([np.broadcast_to(s[2], s[1].shape) for s in samples
                                             if s[3] == chroma]).astype(np.float32))
        head = ScaleHead(f.shape[1])
        opt = torch.optim.Adam(head.parameters(), lr=2e-3)
        n = len(f)
        steps = epochs * math.ceil(n / 1024)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        for _ in range(epochs):
            perm = torch.randperm(n)
            for i in range(0, n, 1024):
                idx = perm[i:i + 1024]
                loss = laplace_bits(head(f[idx]), c[idx], q[idx]).sum(1).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        heads[chroma] = head.eval()
        print(f"{'chroma' if chroma else 'luma'} head: {n} blocks, final batch {float(loss):.2f} bits/block")
    return heads


@torch.no_grad()
def ideal_bits(heads, planes) -> float:
    total = 0.0
    for feats, coefs, qt, chroma in planes:
        log_s = heads[chroma](torch.from_numpy(feats.astype(np.float32)))
        total += float(laplace_bits(log_s, torch.from_numpy(coefs.astype(np.float32)),
                                    torch.from_numpy(qt.astype(np.float32))).sum())
    return total


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-images", type=int, default=80)
    ap.add_argument("--block-fraction", type=float, default=0.3, help="training blocks kept per plane")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--qualities", default="25,50,75", help="Kodak qualities")
    ap.add_argument("--kodak-images", type=int, default=None, help="first N Kodak images only")
    ap.add_argument("--out", default=str(RESULTS / "scales.md"))
    argv = sys.argv[1:] if argv is None else argv
    args = ap.parse_args(argv)
    from PIL import Image

    t0 = time.time()
    rng = np.random.default_rng(0)
    train, _ = split(list_images())
    train = [train[i] for i in sorted(rng.choice(len(train), min(args.train_images, len(train)), replace=False))]
    samples = []
    for p in progress(train, "coding training images"):
        img = np.asarray(Image.open(p).convert("RGB"))
        for q in rng.integers(10, 91, 2):
            planes, _ = plane_blocks(img, int(q))
            for feats, coefs, qt, chroma in planes:
                keep = rng.random(len(feats)) < args.block_fraction
                samples.append((feats[keep], coefs[keep], qt, chroma))
    heads = fit(samples, args.epochs)

    rows = []
    for q in [int(x) for x in args.qualities.split(",")]:
        actual = ideal = pixels = 0.0
        for path in progress(kodak_images(None, args.kodak_images), f"Kodak q{q}"):
            img = np.asarray(Image.open(path).convert("RGB"))
            planes, bits = plane_blocks(img, q)
            actual += bits
            ideal += ideal_bits(heads, planes)
            pixels += img.shape[0] * img.shape[1]
        rows.append((q, actual / pixels, ideal / pixels, 100 * (ideal / actual - 1)))
        print(f"q{q}: context coder {actual / pixels:.4f} bpp, learned scales (ideal) {ideal / pixels:.4f} bpp "
              f"({rows[-1][3]:+.1f} %)")

    lines = ["# Learned entropy scales vs the context-adaptive coder (Kodak, BlockCNN predictor)", "",
             f"Command: `{' '.join(['python -m kodak_eval.scale_study'] + list(argv or []))}`", "",
             "Coefficient bits per pixel (container excluded). The learned-scale column is the ideal code",
             "length under the predicted scales, a lower bound for a real coder.", "",
             "| quality | context coder (actual) | learned scales (ideal) | change |",
             "|---:|---:|---:|---:|"]
    lines += [f"| {q} | {a:.4f} | {i:.4f} | {d:+.1f} % |" for q, a, i, d in rows]
    lines += ["", f"Scale heads: shipped BlockCNN features -> 128 -> 64, per plane type, trained on "
              f"{args.train_images} training images x 2 qualities ({args.block_fraction:.0%} of blocks), "
              f"{args.epochs} epochs; {time.time() - t0:.0f} s in all."]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
