"""Restoration training settings and their command-line options (free of
torch, so that building the CLI stays fast)."""
from __future__ import annotations

import argparse
from dataclasses import dataclass

ARCHITECTURES = ("arcnn", "blockcnn-ar", "hourglass", "reshuffle", "wdsr")


@dataclass
class RestorationTrainConfig:
    arch: str = "arcnn"
    size: str = "small"
    patch: int = 64              # 64: the hourglass's pooled contexts are 8, 16 and 32 wide
    batch: int = 16
    lr: float = 1e-3
    steps: int = 0               # 0: derive from --minutes
    minutes: float = 60.0
    jpeg_qualities: tuple[int, int] = (5, 60)
    codec_qualities: tuple[int, int] = (5, 95)
    codec_fraction: float = 0.5  # share of patches from the codec (the rest JPEG)
    studio_fraction: float = 0.0  # share of the JPEG patches cut from studio-range luma (16..235)
    val_patches: int = 512
    grad_clip: float = 0.0       # clip the gradient norm to this (0: off)
    loss: str = "paper"          # "paper" (the architecture's own), "l1" or "l2"
    seed: int = 0


def _quality_range(text: str) -> tuple[int, int]:
    try:
        lo, hi = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI (two qualities), got {text!r}") from None
    if not 1 <= lo <= hi <= 100:
        raise argparse.ArgumentTypeError(f"need 1 <= LO <= HI <= 100, got {text!r}")
    return lo, hi


def add_arguments(ap: argparse.ArgumentParser) -> None:
    d = RestorationTrainConfig()
    ap.add_argument("--arch", required=True, choices=ARCHITECTURES,
                    help="network design")
    ap.add_argument("--size", default=d.size, choices=["small", "full"],
                    help="small (trains on a laptop CPU) or the paper's size (default: %(default)s)")
    ap.add_argument("--workdir", default=None, help="checkpoints and log.jsonl (default: runs/restoration-ARCH)")
    ap.add_argument("--output", default=None, help="exported weights (default: WORKDIR/ARCH.npz)")
    ap.add_argument("--data", default=None, help="training images (default: ../shared/data/train)")
    ap.add_argument("--minutes", type=float, default=d.minutes, help="time budget (default: %(default)s)")
    ap.add_argument("--steps", type=int, default=0, help="fixed number of steps instead of --minutes")
    ap.add_argument("--batch", type=int, default=d.batch, help="patches per step (default: %(default)s)")
    ap.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate (default: %(default)s)")
    ap.add_argument("--grad-clip", type=float, default=d.grad_clip, metavar="NORM",
                    help="clip the gradient norm to NORM, against the loss spikes of networks without "
                         "normalization (0: off; default: %(default)s)")
    ap.add_argument("--loss", default=d.loss, choices=["paper", "l1", "l2"],
                    help="training loss: the design's own (paper), L1 or L2 (MSE) (default: %(default)s)")
    ap.add_argument("--codec-fraction", type=float, default=d.codec_fraction,
                    help="share of training patches decoded by the codec, the rest JPEG (default: %(default)s)")
    ap.add_argument("--studio-fraction", type=float, default=d.studio_fraction,
                    help="share of the JPEG-coded patches cut from studio-range BT.601 luma (16..235, "
                         "MATLAB's rgb2ycbcr, as the grayscale JPEG benchmarks) instead of full-range "
                         "(default: %(default)s)")
    ap.add_argument("--jpeg-qualities", type=_quality_range, default=d.jpeg_qualities, metavar="LO,HI",
                    help="JPEG qualities of the JPEG-coded patches (default: %(default)s)")
    ap.add_argument("--codec-qualities", type=_quality_range, default=d.codec_qualities, metavar="LO,HI",
                    help="blockcodec qualities of the codec-decoded images (default: %(default)s)")
    ap.add_argument("--init-from", default=None, metavar="NPZ",
                    help="start from these weights (same architecture), e.g. a model trained at higher "
                         "qualities (AR-CNN's easy-to-hard transfer)")
    ap.add_argument("--images", type=int, default=None, help="use only the first N training images (smoke tests)")
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--resume", action="store_true", help="continue from WORKDIR/checkpoint.pt")
    ap.add_argument("--no-progress", action="store_true")


