"""Closed-loop training of the BlockCNN predictor.

    blockcodec train predictor --minutes 100 --output blockcodec/data/blockcnn.npz

Contexts are the codec's own reconstructions: every training image is coded
by the codec (its default encoder, with the predictor ``--context-predictor``:
the default predictor by default, so that the contexts are the ones the
network will see in use; random quality in 5..95), and the network learns to
predict the *original* block from the *decoded* neighbours, so that it works
on what the decoder actually has (BlockCNN paper, §3.3).
Blocks are drawn at random positions of randomly flipped planes.

The loss is a rate proxy: |c| / q summed over the DCT coefficients c of the
prediction residual, q being the quantizer step of each coefficient - the
rate of a Laplacian coder of the quantized residual up to constants.
Validation also reports sum log2(1 + |c| / q), closer to the actual bits.

Training runs in two phases: float with batch norm, then (from
``--qat-fraction`` of the steps on) batch norm folded and quantization-aware
fine-tuning, after which the networks are exported as integer tensors.
Checkpoints are written every few minutes and ``--resume`` continues from the
last one.  Under ``torchrun`` the loop runs data-parallel (DDP, gloo).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image

from .. import _cext, quantization
from ..codec import Codec, CodecConfig, Geometry
from ..engine import guide_windows, pad_guide
from ..color import downsample_420
from ..predictors import FILL
from ..predictors.blockcnn import BlockCNNConfig, build_inputs, quality_feature, save_weights
from .blockcnn_qat import BlockCNN, export_integer
from .config import TrainConfig, add_arguments
from . import checkpoint
from .data import list_images, split
from .data import progress as progress_bar


# --------------------------------------------------------------------------
# Data: planes coded by the codec itself

@dataclass
class Coded:
    quality: int
    source: list[np.ndarray]     # Y, Cb, Cr (4:2:0), padded
    recon: list[np.ndarray]      # the codec's reconstruction of each
    luma_guide: np.ndarray       # padded (for windows) 2x2-box downsampled recon luma
    cb_guide: np.ndarray         # padded recon Cb


def _code_one(job) -> list[Coded]:
    path, qualities, predictor = job
    img = np.asarray(Image.open(path).convert("RGB"))
    out = []
    for q in qualities:
        codec = Codec(CodecConfig(quality=int(q), predictor=predictor))
        geom, traces, _, _ = codec.analyse(img, keep_trace=False)
        src = Codec._split(img, Geometry(img.shape[1], img.shape[0], geom.mode))
        rec = [t.recon for t in traces]
        out.append(Coded(int(q), src, rec, pad_guide(downsample_420(rec[0])), pad_guide(rec[1])))
    return out


def code_images(paths, qualities_per_image, quality_range, seed, progress=True,
                predictor: str = "planar", jobs: int = 1) -> list[Coded]:
    """Each image coded by the codec (default encoder settings, ``predictor``)
    at ``qualities_per_image`` random qualities, on ``jobs`` processes; the
    qualities are drawn up front, so the result does not depend on ``jobs``."""
    rng = np.random.default_rng(seed)
    work = [(p, [int(q) for q in rng.integers(quality_range[0], quality_range[1] + 1, qualities_per_image)],
             predictor) for p in paths]
    if jobs <= 1:
        results = map(_code_one, work)
    else:
        import multiprocessing as mp
        pool = mp.get_context("spawn").Pool(jobs)
        results = pool.imap(_code_one, work, chunksize=2)
    out = []
    for coded in progress_bar(results, "coding training images", progress, total=len(work)):
        out.extend(coded)
    if jobs > 1:
        pool.close()
        pool.join()
    return out


def sample(coded: list[Coded], rng: np.random.Generator, n: int, chroma: bool, per_plane: int = 16,
           use_guides: bool = True):
    """A batch: (int16 inputs [n, C, 24, 24], uint8 targets [n, 64], qtables [n, 64]).

    ``use_guides=False`` (the chroma-from-luma ablation) fills the guide
    windows with 128, i.e. zero network input, so the network cannot use them."""
    xs, ys, qs = [], [], []
    while sum(len(y) for y in ys) < n:
        c = coded[rng.integers(len(coded))]
        index = int(rng.integers(1, 3)) if chroma else 0
        flip_v, flip_h = rng.integers(2, size=2)
        sl = (slice(None, None, -1 if flip_v else 1), slice(None, None, -1 if flip_h else 1))

        def flipped(a):
            return np.ascontiguousarray(a[sl])
        src, rec = flipped(c.source[index]), flipped(c.recon[index])
        h, w = rec.shape
        rows = rng.integers(0, h // 8, per_plane).astype(np.int32)
        cols = rng.integers(0, w // 8, per_plane).astype(np.int32)
        ctx = np.empty((per_plane, 24, 24), np.uint8)
        avail = np.empty((per_plane, 4), np.uint8)
        _cext.gather_contexts(rec, w, h, rows, cols, FILL, ctx, avail)
        tgt = np.empty((per_plane, 64), np.uint8)
        _cext.gather_blocks(src, w, h, rows, cols, tgt)
        qt = quantization.qtable(c.quality, chroma)
        guides = None
        if chroma:
            # The guides are padded by 8 on every side; flip them inside the padding.
            g = [c.luma_guide[sl], c.cb_guide[sl]]
            guides = np.stack([guide_windows(np.ascontiguousarray(x), rows, cols) for x in g], 1)
            if not use_guides:
                guides = np.full_like(guides, 128)
        xs.append(build_inputs(ctx, avail, quality_feature(qt), guides, is_cr=index == 2, chroma=chroma))
        ys.append(tgt)
        qs.append(np.broadcast_to(qt, (per_plane, 64)))
    return (np.concatenate(xs)[:n], np.concatenate(ys)[:n], np.concatenate(qs)[:n])


def _dct_matrix() -> torch.Tensor:
    k = np.arange(8)
    d = np.cos((2 * k[None, :] + 1) * k[:, None] * np.pi / 16) * np.sqrt(2 / 8)
    d[0] /= np.sqrt(2)
    return torch.tensor(d, dtype=torch.float32)


DCT = _dct_matrix()


def _residual_coefficients(pred, target, qtable):
    res = (target.float() - 128.0 - pred).view(-1, 8, 8)
    return (DCT @ res @ DCT.T).flatten(1).abs() / qtable.float()


def rate_proxy(pred: torch.Tensor, target: torch.Tensor, qtable: torch.Tensor) -> torch.Tensor:
    """Mean over blocks of sum_k log2(1 + |DCT(target - pred)_k| / q_k): roughly
    the bits of the quantized residual.  Reported on validation."""
    return torch.log2(1 + _residual_coefficients(pred, target, qtable)).sum(1).mean()


def laplace_rate(pred: torch.Tensor, target: torch.Tensor, qtable: torch.Tensor) -> torch.Tensor:
    """Mean over blocks of sum_k |DCT(target - pred)_k| / q_k: the rate of a
    Laplacian coder up to constants.  The training loss: convex, unlike the
    log proxy, which rewards exact zeros and trains noisily (measured: it did
    not beat the planar predictor after 4000 steps)."""
    return _residual_coefficients(pred, target, qtable).sum(1).mean()


# --------------------------------------------------------------------------
# Loop

def _dist():
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _wrap(model):
    if dist.is_initialized():
        return torch.nn.parallel.DistributedDataParallel(model)
    return model


def _broadcast(model):
    if dist.is_initialized():
        for t in list(model.parameters()) + list(model.buffers()):
            dist.broadcast(t.data, 0)


class Trainer:
    def __init__(self, cfg: TrainConfig, workdir: Path, data_dir=None, images: int | None = None,
                 progress: bool = True):
        self.cfg, self.workdir, self.progress = cfg, Path(workdir), progress
        self.rank, self.world = _dist()
        self.workdir.mkdir(parents=True, exist_ok=True)
        paths = list_images(data_dir)
        train, val = split(paths)
        if images:
            train, val = train[:images], val[:max(1, images // 4)]
        # Each rank codes its own share of the training images.
        t0 = time.time()
        coding = dict(predictor=cfg.context_predictor, jobs=cfg.coding_jobs)
        self.train = code_images(train[self.rank::self.world], cfg.qualities_per_image,
                                 cfg.quality_range, cfg.seed + 1000 * self.rank, progress and self.rank == 0,
                                 **coding)
        self.val = code_images(val, 1, cfg.quality_range, cfg.seed + 7, False, **coding)
        self.log(dict(event="data", train_planes=len(self.train), val_planes=len(self.val),
                      seconds=round(time.time() - t0, 1)))
        vrng = np.random.default_rng(12345)
        self.val_batches = {ch: self.sample(self.val, vrng, cfg.val_blocks, ch) for ch in (False, True)}
        self.log(dict(event="baseline", predictor="planar", **self.baseline()))
        torch.manual_seed(cfg.seed)
        self.models = {False: BlockCNN(BlockCNNConfig(False, cfg.width, cfg.depth)),
                       True: BlockCNN(BlockCNNConfig(True, cfg.chroma_width, cfg.chroma_depth))}
        for m in self.models.values():
            _broadcast(m)
        self.step = 0
        self.rng = np.random.default_rng(cfg.seed + 1 + self.rank)
        self._make_optimizer(cfg.lr)

    # ---- helpers
    def log(self, record: dict):
        if self.rank:
            return
        record = dict(record, time=round(time.time(), 1))
        with open(self.workdir / "log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def sample(self, coded, rng, n, chroma):
        return sample(coded, rng, n, chroma, use_guides=self.cfg.chroma_guides)

    def _make_optimizer(self, lr):
        self.wrapped = {k: _wrap(m) for k, m in self.models.items()}
        params = [p for m in self.models.values() for p in m.parameters()]
        self.opt = torch.optim.Adam(params, lr=lr, weight_decay=self.cfg.weight_decay)
        self.base_lr = lr

    @property
    def qat(self) -> bool:
        return self.models[False].quantized

    def total_steps(self, measured_step_seconds: float | None) -> int:
        if self.cfg.steps:
            return self.cfg.steps
        return max(10, int(self.cfg.minutes * 60 / max(measured_step_seconds or 1.0, 1e-3)))

    def _lr(self, total):
        """Cosine decay within each phase."""
        switch = int(total * self.cfg.qat_fraction)
        if self.step < switch:
            frac, lr = self.step / max(switch, 1), self.cfg.lr
        else:
            frac, lr = (self.step - switch) / max(total - switch, 1), self.cfg.qat_lr
        return lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))

    def train_step(self, total):
        for g in self.opt.param_groups:
            g["lr"] = self._lr(total)
        loss_sum = {}
        self.opt.zero_grad(set_to_none=True)
        for ch, model in self.wrapped.items():
            model.train()
            x, y, q = self.sample(self.train, self.rng, self.cfg.batch, ch)
            loss = laplace_rate(model(torch.from_numpy(x)), torch.from_numpy(y), torch.from_numpy(q))
            loss.backward()
            loss_sum[ch] = loss.item()
        self.opt.step()
        self.step += 1
        return loss_sum

    @torch.no_grad()
    def validate(self):
        out = {}
        for ch, model in self.models.items():
            model.eval()
            x, y, q = self.val_batches[ch]
            pred = torch.cat([model(torch.from_numpy(x[i:i + 1024])) for i in range(0, len(x), 1024)])
            out["chroma" if ch else "luma"] = round(float(rate_proxy(pred, torch.from_numpy(y), torch.from_numpy(q))), 4)
            mse = float(((torch.from_numpy(y).float() - 128 - pred.round()) ** 2).mean())
            out[("chroma" if ch else "luma") + "_psnr"] = round(10 * math.log10(255 ** 2 / mse), 3)
        return out

    def baseline(self):
        """The classical planar predictor's loss on the validation blocks."""
        from ..predictors import PlaneInfo, get
        planar, out = get("planar"), {}
        for ch, (x, y, q) in self.val_batches.items():
            ctx = (x[:, 0] + 128).astype(np.uint8)
            avail = np.stack([x[:, 2, r, c] != 0 for r, c in ((0, 0), (0, 8), (0, 16), (8, 0))], 1).astype(np.uint8)
            pred = planar.predict(ctx, avail, PlaneInfo(int(ch), ch, 50, q[0])).reshape(-1, 64)
            pred = torch.from_numpy(pred.astype(np.float32) - 128)
            out["chroma" if ch else "luma"] = round(float(rate_proxy(pred, torch.from_numpy(y), torch.from_numpy(q))), 4)
        return out

    def switch_to_qat(self):
        for ch, m in self.models.items():
            x, _, _ = self.sample(self.train, np.random.default_rng(99), 2048, ch)
            m.enable_quantization(torch.from_numpy(x))
            _broadcast(m)
        self._make_optimizer(self.cfg.qat_lr)
        self.log(dict(event="qat", step=self.step))

    # ---- checkpoints
    def save(self, total):
        if self.rank:
            return
        state = dict(step=self.step, total=total, qat=self.qat, cfg=asdict(self.cfg),
                     models={str(int(k)): m.state_dict() for k, m in self.models.items()},
                     opt=self.opt.state_dict(), rng=self.rng.bit_generator.state)
        checkpoint.save(self.workdir, state)

    def load(self):
        state = checkpoint.load(self.workdir)
        if state is None:
            return None
        if state["qat"]:
            for ch, m in self.models.items():
                m.enable_quantization(torch.zeros(1, len(m.config.inputs), 24, 24))
        for k, m in self.models.items():
            m.load_state_dict(state["models"][str(int(k))])
            _broadcast(m)
        self._make_optimizer(self.cfg.qat_lr if state["qat"] else self.cfg.lr)
        self.opt.load_state_dict(state["opt"])
        self.step = state["step"]
        if self.world == 1:
            self.rng.bit_generator.state = state["rng"]
        self.log(dict(event="resume", step=self.step))
        return state["total"]

    def run(self, resume=False, checkpoint_minutes=5.0):
        total = self.load() if resume else None
        if total is not None and self.cfg.steps:
            total = self.cfg.steps      # resuming with --steps extends (or ends) the run
        last_ckpt = time.time()
        if total is None:
            t0 = time.time()
            for _ in range(3):
                self.train_step(10 ** 9)
            total = self.total_steps((time.time() - t0) / 3)
            if dist.is_initialized():   # every rank must run the same number of steps
                t = torch.tensor([total])
                dist.broadcast(t, 0)
                total = int(t)
            self.step = 0
            self.log(dict(event="start", total_steps=total, cfg=asdict(self.cfg), world=self.world,
                          macs_luma=self.models[False].macs_per_block(),
                          macs_chroma=self.models[True].macs_per_block()))
        bar = None
        if self.progress and self.rank == 0:
            try:
                from tqdm import tqdm
                bar = tqdm(total=total, initial=self.step, desc="training BlockCNN", unit="step")
            except ImportError:
                pass
        switch = int(total * self.cfg.qat_fraction)
        running = None
        while self.step < total:
            if self.step >= switch and not self.qat:
                self.log(dict(event="val", step=self.step, **self.validate()))
                self.switch_to_qat()
            losses = self.train_step(total)
            cur = (losses[False] + losses[True]) / 2
            running = cur if running is None else 0.98 * running + 0.02 * cur
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{running:.2f}", qat=int(self.qat))
            if self.step % 200 == 0 or self.step == total:
                self.log(dict(event="train", step=self.step, luma=round(losses[False], 4),
                              chroma=round(losses[True], 4), lr=self._lr(total)))
            if self.step % 1000 == 0 or self.step == total:
                self.log(dict(event="val", step=self.step, **self.validate()))
            if time.time() - last_ckpt > checkpoint_minutes * 60 or self.step == total:
                self.save(total)
                last_ckpt = time.time()
        if bar is not None:
            bar.close()
        if not self.qat:  # very short runs: still produce an integer model
            self.switch_to_qat()
        return total

    def export(self, path):
        if self.rank:
            return
        ints = {ch: export_integer(m) for ch, m in self.models.items()}
        meta = dict(trained_steps=self.step, train=asdict(self.cfg),
                    data="../shared/data/train (every 10th image held out)",
                    command="blockcodec train predictor", val=self.validate())
        save_weights(path, ints[False], ints[True], self.models[False].config,
                     self.models[True].config, meta)


def run(args) -> Path:
    cfg = TrainConfig(width=args.width, depth=args.depth, chroma_width=args.chroma_width,
                      chroma_depth=args.chroma_depth, batch=args.batch, steps=args.steps,
                      minutes=args.minutes, seed=args.seed,
                      chroma_guides=not args.no_chroma_guides, context_predictor=args.context_predictor,
                      coding_jobs=args.coding_jobs)
    trainer = Trainer(cfg, Path(args.workdir), args.data, args.images, not args.no_progress)
    trainer.run(resume=args.resume)
    trainer.export(args.output)
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return Path(args.output)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m blockcodec.train.predictor", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)
    run(ap.parse_args(argv))


if __name__ == "__main__":
    main()
