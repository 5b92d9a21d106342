"""Training settings and their command-line options (kept free of torch so
that building the CLI stays fast)."""
from __future__ import annotations

import argparse
from dataclasses import dataclass

from .. import predictors


@dataclass
class TrainConfig:
    width: int = 24
    depth: int = 1
    chroma_width: int = 24
    chroma_depth: int = 1
    batch: int = 256              # blocks per plane type per step
    lr: float = 1e-3              # Adam, as in the paper
    weight_decay: float = 1e-4
    qat_lr: float = 2e-4
    steps: int = 0                # 0: derive from --minutes
    minutes: float = 100.0
    qat_fraction: float = 0.6
    qualities_per_image: int = 3
    quality_range: tuple[int, int] = (5, 95)
    val_blocks: int = 4096
    seed: int = 0
    chroma_guides: bool = True    # False: ablation, chroma blind to decoded luma/Cb
    context_predictor: str = predictors.DEFAULT   # codes the training images whose reconstructions are the contexts
    coding_jobs: int = 2          # processes coding the training images


def add_arguments(ap: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    ap.add_argument("--workdir", default="runs/predictor", help="checkpoints and log.jsonl (default: %(default)s)")
    ap.add_argument("--output", default="blockcnn.npz", help="exported integer weights (default: %(default)s)")
    ap.add_argument("--data", default=None, help="training images (default: ../shared/data/train)")
    ap.add_argument("--minutes", type=float, default=d.minutes,
                    help="training time budget; sets the step count from the measured step time (default: %(default)s)")
    ap.add_argument("--steps", type=int, default=0, help="fixed number of steps instead of --minutes")
    ap.add_argument("--width", type=int, default=d.width, help="luma network channels (default: %(default)s)")
    ap.add_argument("--depth", type=int, default=d.depth, help="luma residual blocks (default: %(default)s)")
    ap.add_argument("--chroma-width", type=int, default=d.chroma_width)
    ap.add_argument("--chroma-depth", type=int, default=d.chroma_depth)
    ap.add_argument("--batch", type=int, default=d.batch, help="blocks per plane type per step (default: %(default)s)")
    ap.add_argument("--images", type=int, default=None, help="use only the first N training images (smoke tests)")
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--resume", action="store_true", help="continue from WORKDIR/checkpoint.pt")
    ap.add_argument("--no-chroma-guides", action="store_true",
                    help="ablation: train the chroma network without cross-component input "
                         "(its luma and Cb guide channels held at zero)")
    ap.add_argument("--context-predictor", default=d.context_predictor,
                    help="predictor of the codec that codes the training images, whose reconstructions "
                         "are the training contexts: the default predictor (the contexts the network sees "
                         "in use) or planar (the first release's data) (default: %(default)s)")
    ap.add_argument("--coding-jobs", type=int, default=d.coding_jobs,
                    help="processes coding the training images (default: %(default)s)")
    ap.add_argument("--no-progress", action="store_true")
