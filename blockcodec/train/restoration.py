"""Training of the restoration networks (post-filters and JPEG artifact removers).

    blockcodec train restoration --arch arcnn --minutes 60 --output arcnn.npz

One model per architecture serves both uses, conditioned on the quantizer
(``restoration.quality_feature`` of the luminance table): it is trained on
luminance patches decoded from two sources, half each by default:

* JPEG: the patch coded by Pillow's libjpeg at a random quality in
  ``--jpeg-qualities`` (standard IJG tables, as the LIVE1/Classic5 protocol);
* the codec: the image coded once by blockcodec with its default (BlockCNN)
  predictor at a random quality, the decoded luma plane cached in WORKDIR.

Images come from ../shared/data/train only; every 10th is held out for
validation, reported as the PSNR gain over the decoded input.  The loss is
the architecture's own (MSE or L1).  The hourglass gets progressive
supervision: its intermediate outputs are trained toward the same JPEG patch
coded at higher qualities (q+10, q+20, q+30); ``--init-from`` starts from
another model's weights (AR-CNN's easy-to-hard transfer).  Checkpoints every
few minutes; ``--resume`` continues.  Weights are exported as a plain .npz
(float32 tensors and JSON metadata, no pickles).
"""
from __future__ import annotations

import io
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .. import color, restoration
from ..codec import Codec, CodecConfig
from ..quantization import qtable
from ..restoration.hourglass import Hourglass
from ..restoration.weights import load_weights, save_weights  # noqa: F401  (re-exported)
from . import checkpoint
from .data import list_images, split
from .restoration_config import RestorationTrainConfig
from .data import progress as progress_bar


# --------------------------------------------------------------------------
# Data

def luma(rgb: np.ndarray) -> np.ndarray:
    return color.rgb_to_ycbcr(rgb)[0]


def jpeg(gray: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(gray).save(buf, format="JPEG", quality=int(quality))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L"))


def jpeg_feature(quality: int) -> float:
    """The quality feature of the luminance table Pillow writes at ``quality``."""
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, format="JPEG", quality=int(quality))
    table = Image.open(io.BytesIO(buf.getvalue())).quantization[0]
    return restoration.quality_feature(np.asarray(table))


@dataclass
class CodedPlane:
    original: np.ndarray         # uint8 luma
    decoded: np.ndarray          # the codec's decoded luma
    feature: float


def code_with_codec(grays, paths, rng, quality_range, cache: Path | None, progress: bool) -> list[CodedPlane]:
    """Each image's luma coded once by the codec (default predictor) at a
    random quality; cached, since it is the slow part of the data."""
    if cache is not None and cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            if int(z["n"]) == len(grays):
                return [CodedPlane(grays[i], z[f"d{i}"], float(z["f"][i])) for i in range(len(grays))]
    out = []
    for g, _ in zip(grays, progress_bar(paths, "coding images with blockcodec", progress)):
        q = int(rng.integers(quality_range[0], quality_range[1] + 1))
        res = Codec(CodecConfig(quality=q, postfilter="none")).encode(g, keep_trace=False)
        out.append(CodedPlane(g, res.image, restoration.quality_feature(qtable(q, False))))
    if cache is not None:
        arrays = {f"d{i}": c.decoded for i, c in enumerate(out)}
        np.savez(cache, n=len(out), f=np.array([c.feature for c in out]), **arrays)
    return out


class Sampler:
    """Random aligned patches: (decoded, target, quality feature, higher-quality targets)."""

    def __init__(self, grays, coded, cfg: RestorationTrainConfig, progressive: int, seed: int,
                 studio=()):
        self.grays = [g for g in grays if min(g.shape) >= cfg.patch]
        self.studio = [g for g in studio if min(g.shape) >= cfg.patch]
        self.coded = [c for c in coded if min(c.original.shape) >= cfg.patch]
        self.cfg, self.progressive = cfg, progressive
        self.rng = np.random.default_rng(seed)
        self._features = {}

    def _feature(self, q):
        if q not in self._features:
            self._features[q] = jpeg_feature(q)
        return self._features[q]

    def _crop(self, shape):
        p = self.cfg.patch
        # Aligned to the 8x8 grid, so the crop's blocks are the coder's blocks.
        y = int(self.rng.integers(0, (shape[0] - p) // 8 + 1)) * 8
        x = int(self.rng.integers(0, (shape[1] - p) // 8 + 1)) * 8
        return slice(y, y + p), slice(x, x + p)

    def batch(self, n: int):
        xs, ys, fs, extra = [], [], [], []
        for _ in range(n):
            flip = self.rng.integers(2, size=2)
            if self.coded and self.rng.random() < self.cfg.codec_fraction:
                c = self.coded[self.rng.integers(len(self.coded))]
                sl = self._crop(c.original.shape)
                src, tgt, f = c.decoded[sl], c.original[sl], c.feature
                ups = [tgt] * self.progressive
            else:
                pool = self.studio if self.studio and self.rng.random() < self.cfg.studio_fraction else self.grays
                g = pool[self.rng.integers(len(pool))]
                tgt = np.ascontiguousarray(g[self._crop(g.shape)])
                q = int(self.rng.integers(self.cfg.jpeg_qualities[0], self.cfg.jpeg_qualities[1] + 1))
                src, f = jpeg(tgt, q), self._feature(q)
                ups = [jpeg(tgt, min(q + 10 * (k + 1), 95)) for k in range(self.progressive)]
            arrs = [src, tgt] + ups
            if flip[0]:
                arrs = [a[::-1] for a in arrs]
            if flip[1]:
                arrs = [a[:, ::-1] for a in arrs]
            xs.append(arrs[0])
            ys.append(arrs[1])
            extra.append(arrs[2:])
            fs.append(f)

        def t(a):
            return torch.from_numpy(np.ascontiguousarray(np.stack(a))[:, None].astype(np.float32) / 255)
        ups = [t([e[k] for e in extra]) for k in range(self.progressive)]
        return t(xs), t(ys), torch.tensor(fs, dtype=torch.float32), ups


# --------------------------------------------------------------------------
# Training

class Trainer:
    def __init__(self, cfg: RestorationTrainConfig, workdir: Path, data_dir=None, images=None,
                 progress: bool = True, init_from: str | None = None):
        self.cfg, self.workdir, self.progress = cfg, Path(workdir), progress
        self.workdir.mkdir(parents=True, exist_ok=True)
        train, val = split(list_images(data_dir))
        if images:
            train, val = train[:images], val[:max(1, images // 4)]
        t0 = time.time()
        rng = np.random.default_rng(cfg.seed)
        rgbs = [np.asarray(Image.open(p).convert("RGB")) for p in train]
        vrgbs = [np.asarray(Image.open(p).convert("RGB")) for p in val]
        grays, vgrays = [luma(a) for a in rgbs], [luma(a) for a in vrgbs]
        # Studio-range luma for part of the JPEG patches: the grayscale JPEG
        # benchmarks are made that way, and its lower contrast puts the same
        # quantizer table on relatively coarser detail.
        studio = vstudio = []
        if cfg.studio_fraction > 0:
            studio = [color.rgb_to_studio_luma(a) for a in rgbs]
            vstudio = [color.rgb_to_studio_luma(a) for a in vrgbs]
        del rgbs, vrgbs
        coded = vcoded = []
        if cfg.codec_fraction > 0:
            tag = f"{len(train)}_{cfg.codec_qualities[0]}_{cfg.codec_qualities[1]}_{cfg.seed}"
            coded = code_with_codec(grays, train, rng, cfg.codec_qualities,
                                    self.workdir / f"codec_train_{tag}.npz", progress)
            vcoded = code_with_codec(vgrays, val, np.random.default_rng(cfg.seed + 7), cfg.codec_qualities,
                                     self.workdir / f"codec_val_{tag}.npz", False)
        torch.manual_seed(cfg.seed)
        self.net = restoration.build(cfg.arch, cfg.size)
        if init_from:
            init, _ = load_weights(init_from)
            self.net.load_state_dict(init.state_dict())
        self.progressive = self.net.config.stacks - 1 if isinstance(self.net, Hourglass) else 0
        self.sampler = Sampler(grays, coded, cfg, self.progressive, cfg.seed + 1, studio)
        vs = Sampler(vgrays, vcoded, cfg, 0, 12345, vstudio)
        self.val = [vs.batch(64) for _ in range(max(1, cfg.val_patches // 64))]
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        self.step = 0
        self.log(dict(event="data", train_images=len(train), val_images=len(val),
                      seconds=round(time.time() - t0, 1), params=self.net.parameter_count(),
                      macs_per_pixel=round(self.net.macs_per_pixel())))

    def log(self, record: dict):
        record = dict(record, time=round(time.time(), 1))
        with open(self.workdir / "log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def _loss(self, out, target):
        kind = self.net.loss if self.cfg.loss == "paper" else self.cfg.loss
        return F.l1_loss(out, target) if kind == "l1" else F.mse_loss(out, target)

    def train_step(self, total: int) -> float:
        frac = self.step / max(total, 1)
        for g in self.opt.param_groups:   # cosine decay to 5 %
            g["lr"] = self.cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        x, y, f, ups = self.sampler.batch(self.cfg.batch)
        self.net.train()
        if self.progressive:
            outs = self.net.forward_all(x, f)
            # Intermediate outputs aim at the same patch coded at higher qualities.
            loss = sum(self._loss(o, u) for o, u in zip(outs[:-1], ups)) + self._loss(outs[-1], y)
        else:
            loss = self._loss(self.net(x, f), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip > 0:
            # A rare spike would otherwise inflate Adam's second moments and
            # stall learning for thousands of steps.
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.step += 1
        return float(loss.detach())

    @torch.no_grad()
    def validate(self) -> dict:
        self.net.eval()
        se_in = se_out = n = 0.0
        for x, y, f, _ in self.val:
            out = self.net(x, f).clamp(0, 1)
            se_in += float(((x - y) ** 2).mean((1, 2, 3)).clamp(min=1e-10).log10().sum())
            se_out += float(((out - y) ** 2).mean((1, 2, 3)).clamp(min=1e-10).log10().sum())
            n += len(x)
        # Mean per-patch PSNR (peak 1), input vs output.
        return dict(psnr_in=round(-10 * se_in / n, 3), psnr_out=round(-10 * se_out / n, 3),
                    gain=round(10 * (se_in - se_out) / n, 3))

    def save(self, total):
        state = dict(step=self.step, total=total, cfg=asdict(self.cfg), net=self.net.state_dict(),
                     opt=self.opt.state_dict(), rng=self.sampler.rng.bit_generator.state)
        checkpoint.save(self.workdir, state)

    def load(self):
        state = checkpoint.load(self.workdir)
        if state is None:
            return None
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])
        self.sampler.rng.bit_generator.state = state["rng"]
        self.step = state["step"]
        self.log(dict(event="resume", step=self.step))
        return state["total"]

    def run(self, resume=False, checkpoint_minutes=5.0) -> int:
        total = self.load() if resume else None
        if total is not None and self.cfg.steps:
            total = self.cfg.steps
        if total is None:
            t0 = time.time()
            for _ in range(3):
                self.train_step(10 ** 9)
            per_step = (time.time() - t0) / 3
            total = self.cfg.steps or max(10, int(self.cfg.minutes * 60 / max(per_step, 1e-3)))
            self.step = 0
            self.log(dict(event="start", total_steps=total, cfg=asdict(self.cfg), **self.validate()))
        bar = None
        if self.progress:
            try:
                from tqdm import tqdm
                bar = tqdm(total=total, initial=self.step, desc=f"training {self.cfg.arch}", unit="step")
            except ImportError:
                pass
        last_ckpt, running = time.time(), None
        while self.step < total:
            loss = self.train_step(total)
            running = loss if running is None else 0.98 * running + 0.02 * loss
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{running:.4g}")
            if self.step % 100 == 0 or self.step == total:
                self.log(dict(event="train", step=self.step, loss=round(running, 6)))
            if self.step % 1000 == 0 or self.step == total:
                self.log(dict(event="val", step=self.step, **self.validate()))
            if time.time() - last_ckpt > checkpoint_minutes * 60 or self.step == total:
                self.save(total)
                last_ckpt = time.time()
        if bar is not None:
            bar.close()
        return total

    def export(self, path):
        meta = dict(trained_steps=self.step, train=asdict(self.cfg), val=self.validate(),
                    data="../shared/data/train (every 10th image held out)",
                    command="blockcodec train restoration")
        save_weights(path, self.net, self.cfg.arch, meta)


def run(args) -> Path:
    cfg = RestorationTrainConfig(arch=args.arch, size=args.size, batch=args.batch, lr=args.lr,
                                 steps=args.steps, minutes=args.minutes, codec_fraction=args.codec_fraction,
                                 jpeg_qualities=args.jpeg_qualities, codec_qualities=args.codec_qualities,
                                 grad_clip=args.grad_clip, loss=args.loss, studio_fraction=args.studio_fraction,
                                 seed=args.seed)
    workdir = Path(args.workdir or f"runs/restoration-{args.arch}")
    trainer = Trainer(cfg, workdir, args.data, args.images, not args.no_progress, args.init_from)
    trainer.run(resume=args.resume)
    out = Path(args.output or workdir / f"{args.arch}.npz")
    trainer.export(out)
    return out
