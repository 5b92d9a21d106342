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
    val_patches: int = 512
    seed: int = 0


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
    ap.add_argument("--codec-fraction", type=float, default=d.codec_fraction,
                    help="share of training patches decoded by the codec, the rest JPEG (default: %(default)s)")
    ap.add_argument("--init-from", default=None, metavar="NPZ",
                    help="start from these weights (same architecture), e.g. a model trained at higher "
                         "qualities (AR-CNN's easy-to-hard transfer)")
    ap.add_argument("--images", type=int, default=None, help="use only the first N training images (smoke tests)")
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--resume", action="store_true", help="continue from WORKDIR/checkpoint.pt")
    ap.add_argument("--no-progress", action="store_true")


