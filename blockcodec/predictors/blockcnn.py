"""BlockCNN: a convolutional block predictor with exact integer inference.

The network sees a 24x24 window of 3x3 blocks around the block to predict.
Only the top-left, top, top-right and left blocks are decoded when the block is
coded; the rest is masked.  Chroma networks also read the co-located, already
decoded luma (and Cr the decoded Cb): cross-component prediction.

    input  [C_in, 24, 24]   pixels - 128, masks, quality feature, guides
    stem   conv 4x4 /2  -> [W/2, 12, 12]   conv - BN - leaky ReLU
           conv 3x3 /2  -> [W, 6, 6]       conv - BN - leaky ReLU
    body   depth x residual block (conv - BN - lReLU - conv - BN, + skip, lReLU)
    head   fully connected [W*36] -> 64 pixels

Two forms of the same network live here:

* ``BlockCNN``, the float training model.  It trains with batch norm first;
  ``fold_batchnorm()`` then folds each BN into its convolution and
  ``enable_quantization()`` switches on fake quantization (int8 weights per
  output channel, int8 activations with learned step sizes) for
  quantization-aware fine-tuning.
* ``IntegerNet``, what the codec runs.  All weights and activations are
  integers, and the codec evaluates it with integer arithmetic in the C core
  (cext/intnet.c): no float anywhere in the coding loop.  Every accumulator
  is also bounded by sum|w| * 128 + |bias| < 2**24, checked when the weights
  are loaded, so a float32 convolution computes it exactly in any summation
  order; ``IntegerNet`` keeps that float path (PyTorch convolutions, with
  the requantization in float64, exact below 2**53) as an independent second
  implementation that the tests hold the C kernel to, bit for bit.
"""
from __future__ import annotations

import hashlib
import io
import threading
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import _cext
from ..errors import BlockcodecError
from .base import CONTEXT, TOP, TOP_LEFT, TOP_RIGHT, LEFT, PlaneInfo, Predictor, by_plane_kind
from .classical import PlanarPredictor

_PLANAR = PlanarPredictor()   # the baseline the network corrects

NEG_SLOPE = 0.125          # leaky ReLU slope; a power of two, so exact in integers
ACT_MAX = 127              # activations are int8 (symmetric)
W_MAX = 127                # weights are int8 (symmetric, per output channel)
ACC_LIMIT = 2 ** 24        # float32 represents every integer below this exactly
MULT_BITS = 15             # requantization multipliers are < 2**MULT_BITS
MAX_SHIFT = 40
MASK_ON = 64               # value of a set mask pixel in the input
MIN_BLOCKS_PER_THREAD = 48  # waking the other core costs more than a smaller share saves

# Input channels.  Pixels are centred on 0; "planar" holds the classical
# planar prediction of the centre block (the network predicts a correction to
# it); guides are co-located decoded planes (luma for Cb and Cr, and Cb for
# Cr), fully known.
LUMA_INPUTS = ("pixels", "causal", "available", "quality", "planar")
PLANAR = LUMA_INPUTS.index("planar")
CHROMA_INPUTS = LUMA_INPUTS + ("luma", "cb", "is_cr")


@dataclass(frozen=True)
class BlockCNNConfig:
    chroma: bool = False
    width: int = 32        # channels after the stem
    depth: int = 1         # residual blocks

    @property
    def inputs(self) -> tuple[str, ...]:
        return CHROMA_INPUTS if self.chroma else LUMA_INPUTS


# --------------------------------------------------------------------------
# Network inputs (shared by training and inference, all integers)

def quality_feature(qtable: np.ndarray) -> int:
    """floor(32 * log2(mean quantizer step)) - 128, clamped to int8.

    Computed with exact integer comparisons (2**k <= sum**32) rather than a
    floating-point log, so it is the same on every machine."""
    total = int(np.asarray(qtable, dtype=np.int64).sum())
    power = total ** 32
    k = power.bit_length() - 1          # largest k with 2**k <= total**32
    return int(np.clip(k - 6 * 32 - 128, -ACT_MAX, ACT_MAX))


def _causal_pattern() -> np.ndarray:
    m = np.zeros((CONTEXT, CONTEXT), np.int16)
    m[0:8, :] = MASK_ON     # top-left, top, top-right
    m[8:16, 0:8] = MASK_ON  # left
    return m


CAUSAL = _causal_pattern()
_AVAIL_SLOTS = {TOP_LEFT: (0, 0), TOP: (0, 8), TOP_RIGHT: (0, 16), LEFT: (8, 0)}


def build_inputs(contexts: np.ndarray, avail: np.ndarray, qfeat: int,
                 guides: np.ndarray | None = None, is_cr: bool = False,
                 chroma: bool = False) -> np.ndarray:
    """int16 [n, C_in, 24, 24] network input from the predictor's arguments."""
    n = len(contexts)
    c_in = len(CHROMA_INPUTS if chroma else LUMA_INPUTS)
    x = np.zeros((n, c_in, CONTEXT, CONTEXT), np.int16)
    x[:, 0] = contexts.astype(np.int16) - 128
    x[:, 1] = CAUSAL
    for slot, (r, c) in _AVAIL_SLOTS.items():
        x[:, 2, r:r + 8, c:c + 8] = (avail[:, slot] != 0)[:, None, None] * MASK_ON
    x[:, 3] = qfeat
    x[:, PLANAR, 8:16, 8:16] = _PLANAR.predict(contexts, avail, None).astype(np.int16) - 128
    if chroma:
        if guides is None:
            raise ValueError("chroma BlockCNN needs the decoded luma as a guide")
        g = len(LUMA_INPUTS)
        x[:, g] = guides[:, 0].astype(np.int16) - 128
        if is_cr:
            x[:, g + 1] = guides[:, 1].astype(np.int16) - 128
            x[:, g + 2] = MASK_ON
    return x


# --------------------------------------------------------------------------
# Training model

def _round_ste(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


class ActQuant(nn.Module):
    """Fake int8 quantization of activations with a learned step (LSQ)."""

    def __init__(self):
        super().__init__()
        # Frozen until quantization is enabled (unused parameters upset DDP).
        self.log_step = nn.Parameter(torch.zeros(()), requires_grad=False)
        self.enabled = False

    def calibrate(self, x: torch.Tensor) -> None:
        # A high percentile rather than the max: a few outliers should clip.
        q = torch.quantile(x.detach().abs().flatten()[:1_000_000].float(), 0.9999)
        self.log_step.data.fill_(float(torch.log(q.clamp_min(1e-3) / ACT_MAX)))

    @property
    def step(self) -> torch.Tensor:
        return self.log_step.exp()

    def forward(self, x):
        if not self.enabled:
            return x
        s = self.step
        return torch.clamp(_round_ste(x / s), -ACT_MAX, ACT_MAX) * s


def _weight_step(w: torch.Tensor) -> torch.Tensor:
    return w.detach().abs().flatten(1).amax(1).clamp_min(1e-8) / W_MAX


class QConv(nn.Module):
    """Conv (or linear, as a conv over the whole map) with optional BN and
    fake-quantized weights."""

    def __init__(self, c_in, c_out, k, stride=1, padding=0, bn=True):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, stride, padding, bias=True)
        self.bn = nn.BatchNorm2d(c_out) if bn else None
        self.quantize = False

    def weight(self):
        w = self.conv.weight
        if not self.quantize:
            return w
        s = _weight_step(w).view(-1, 1, 1, 1)
        return torch.clamp(_round_ste(w / s), -W_MAX, W_MAX) * s

    def forward(self, x):
        y = F.conv2d(x, self.weight(), self.conv.bias, self.conv.stride, self.conv.padding)
        return self.bn(y) if self.bn is not None else y

    @torch.no_grad()
    def fold_batchnorm(self):
        if self.bn is None:
            return
        bn = self.bn
        g = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        self.conv.weight.mul_(g.view(-1, 1, 1, 1))
        self.conv.bias.copy_((self.conv.bias - bn.running_mean) * g + bn.bias)
        self.bn = None


class BlockCNN(nn.Module):
    """Float/QAT training model; see the module docstring for the layout."""

    def __init__(self, config: BlockCNNConfig = BlockCNNConfig()):
        super().__init__()
        self.config = config
        w, c_in = config.width, len(config.inputs)
        self.stem1 = QConv(c_in, w // 2, 4, 2, 1)
        self.a1 = ActQuant()
        self.stem2 = QConv(w // 2, w, 3, 2, 1)
        self.a2 = ActQuant()
        self.body = nn.ModuleList()
        for _ in range(config.depth):
            self.body.append(nn.ModuleDict({
                "conv1": QConv(w, w, 3, 1, 1), "act1": ActQuant(),
                "conv2": QConv(w, w, 3, 1, 1), "act2": ActQuant(),
            }))
        self.head = QConv(w, 64, 6, 1, 0, bn=False)   # fully connected over the 6x6 map
        with torch.no_grad():   # start from the planar prediction itself
            self.head.conv.weight.mul_(0.1)
            self.head.conv.bias.zero_()

    INPUT_STEP = 1.0 / 64     # float input = integer input * INPUT_STEP

    def forward(self, x_int: torch.Tensor) -> torch.Tensor:
        """x_int: integer inputs (any dtype) [n, C_in, 24, 24]; returns the
        predicted pixels minus 128, float [n, 64]: the planar prediction plus
        the network's correction."""
        base = x_int[:, PLANAR, 8:16, 8:16].float().flatten(1)
        x = x_int.float() * self.INPUT_STEP
        x = self.a1(F.leaky_relu(self.stem1(x), NEG_SLOPE))
        x = self.a2(F.leaky_relu(self.stem2(x), NEG_SLOPE))
        for blk in self.body:
            h = blk["act1"](F.leaky_relu(blk["conv1"](x), NEG_SLOPE))
            x = blk["act2"](F.leaky_relu(blk["conv2"](h) + x, NEG_SLOPE))
        return base + self.head(x).flatten(1) * 64.0

    def convs(self):
        yield self.stem1
        yield self.stem2
        for blk in self.body:
            yield blk["conv1"]
            yield blk["conv2"]
        yield self.head

    def acts(self):
        yield self.a1
        yield self.a2
        for blk in self.body:
            yield blk["act1"]
            yield blk["act2"]

    @property
    def quantized(self) -> bool:
        return self.head.quantize

    def fold_batchnorm(self):
        for c in self.convs():
            c.fold_batchnorm()

    @torch.no_grad()
    def enable_quantization(self, calibration_input: torch.Tensor):
        """Fold BN (if not yet), calibrate activation steps on a batch, and
        switch fake quantization on."""
        self.fold_batchnorm()
        self.eval()
        captured = []
        hooks = [a.register_forward_hook(lambda m, i, o: captured.append((m, i[0]))) for a in self.acts()]
        self(calibration_input)
        for h in hooks:
            h.remove()
        for a, x in captured:
            a.calibrate(x)
            a.enabled = True
            a.log_step.requires_grad_(True)
        for c in self.convs():
            c.quantize = True

    def macs_per_block(self) -> int:
        w, c_in = self.config.width, len(self.config.inputs)
        macs = 12 * 12 * (c_in * 16) * (w // 2) + 6 * 6 * (w // 2 * 9) * w
        macs += self.config.depth * 2 * 6 * 6 * (w * 9) * w
        return macs + w * 36 * 64


# --------------------------------------------------------------------------
# Integer network

def _multiplier(m: np.ndarray) -> tuple[np.ndarray, int]:
    """Integer M (< 2**MULT_BITS) and one shift S with M * 2**-S ~= m."""
    top = float(np.max(np.abs(m)))
    if top <= 0:
        return np.zeros_like(m, dtype=np.int64), 0
    shift = int(np.floor(np.log2((2 ** MULT_BITS - 1) / top)))
    mult = np.round(m * 2.0 ** shift).astype(np.int64)
    return mult, shift


@torch.no_grad()
def export_integer(model: BlockCNN) -> dict[str, np.ndarray]:
    """Turn a quantization-aware trained model into integer tensors.

    Layer l computes acc = conv(x_int, w_int) + b_int; the next activation is
    clamp(floor(lrelu(acc * M + skip * Ms) * 2**-S + 1/2), -127, 127), where
    lrelu halves negatives three times.  The head gives pixels - 128 the same
    way without lrelu, clamped to -255..255: a correction added to the planar
    prediction, the sum clamped to 0..255."""
    if not model.quantized:
        raise ValueError("export needs a quantization-aware trained model")
    steps = [model.INPUT_STEP] + [float(a.step) for a in model.acts()]
    convs = list(model.convs())
    # Activation step feeding each conv, and the step of what it produces.
    in_steps = steps[:len(convs)]
    out_steps = steps[1:] + [1.0 / 64]   # the head's output unit: pixels/64 before *64
    # Residual skips: the block input (step steps[2 + 2j]) joins the
    # accumulator of block j's second conv (layer 3 + 2j) before requantizing.
    skips = {3 + 2 * j: (steps[2 + 2 * j], steps[4 + 2 * j]) for j in range(model.config.depth)}
    out: dict[str, np.ndarray] = {}
    for i, (conv, s_in, s_out) in enumerate(zip(convs, in_steps, out_steps)):
        w = conv.conv.weight
        s_w = _weight_step(w)
        w_int = torch.clamp(torch.round(w / s_w.view(-1, 1, 1, 1)), -W_MAX, W_MAX)
        acc_step = s_in * s_w                      # unit of the accumulator, per channel
        b_int = torch.round(conv.conv.bias / acc_step)
        m = (acc_step / s_out).numpy().astype(np.float64)
        ratio = np.full_like(m, skips[i][0] / skips[i][1]) if i in skips else None
        mult, shift = _multiplier(m if ratio is None else np.concatenate([m, ratio]))
        bound = w_int.abs().flatten(1).sum(1) * 128 + b_int.abs()
        if float(bound.max()) >= ACC_LIMIT:
            raise ValueError(f"layer {i}: sum|w| * 128 + |b| = {float(bound.max()):.0f} breaks the 2**24 "
                             "exactness bound; train a narrower network or clip the weights")
        out[f"l{i}.weight"] = w_int.numpy().astype(np.int8)
        out[f"l{i}.bias"] = b_int.numpy().astype(np.int32)
        out[f"l{i}.mult"] = mult[:len(m)].astype(np.int32)
        out[f"l{i}.shift"] = np.array([shift], np.int32)
        if ratio is not None:
            out[f"l{i}.skip"] = mult[len(m):].astype(np.int32)
    return out


def _batch_bucket(n: int) -> int:
    """n rounded up to 1, 2, 4, 8, then a multiple of 8 up to 128, of 32 up
    to 512, of 128 beyond: under a quarter of the rows wasted."""
    if n <= 8:
        return 1 << max(n - 1, 0).bit_length()
    step = 8 if n <= 128 else 32 if n <= 512 else 128
    return -(-n // step) * step


def pack_for_c(weight: np.ndarray) -> np.ndarray:
    """int8 [O, I, kh, kw] -> the C kernel's int16 layout [K/2, O8, 2]
    (cext/intnet.h): patch values k = (ky * kw + kx) * I + ci in pairs,
    output channels padded to a multiple of 8, zeros in the padding."""
    o, i, kh, kw = weight.shape
    k = kh * kw * i
    rows = np.zeros((-(-o // 8) * 8, -(-k // 2) * 2), np.int16)
    rows[:o, :k] = weight.transpose(0, 2, 3, 1).reshape(o, k)
    return np.ascontiguousarray(rows.reshape(len(rows), -1, 2).transpose(1, 0, 2))


class IntegerNet:
    """Runs exported integer tensors; see ``export_integer`` for the rule."""

    def __init__(self, tensors: dict[str, np.ndarray], config: BlockCNNConfig):
        self.config = config
        n_layers = 3 + 2 * config.depth
        c_in = len(config.inputs)
        w = config.width
        shapes = [(w // 2, c_in, 4, 4), (w, w // 2, 3, 3)] + [(w, w, 3, 3)] * (2 * config.depth) + [(64, w, 6, 6)]
        residual = {3 + 2 * j for j in range(config.depth)}
        expected = {f"l{i}.{k}" for i in range(n_layers) for k in ("weight", "bias", "mult", "shift")}
        expected |= {f"l{i}.skip" for i in residual}
        if set(tensors) != expected:
            odd = sorted(set(tensors) ^ expected)
            raise BlockcodecError(f"BlockCNN weights do not fit {config}: unexpected or missing {odd[:4]}")
        self.layers = []
        for i in range(n_layers):
            wt, b, mult, shift = (np.asarray(tensors[f"l{i}.{k}"]) for k in ("weight", "bias", "mult", "shift"))
            skip = np.asarray(tensors[f"l{i}.skip"]) if i in residual else None
            c_out = shapes[i][0]
            if (wt.shape != shapes[i] or wt.dtype != np.int8 or b.shape != (c_out,) or b.dtype != np.int32
                    or mult.shape != (c_out,) or mult.dtype != np.int32 or shift.shape != (1,)
                    or shift.dtype != np.int32 or (skip is not None and (skip.shape != (c_out,) or skip.dtype != np.int32))):
                raise BlockcodecError(f"BlockCNN layer {i} has the wrong shape or type for {config}")
            shift = int(shift[0])
            # The exactness guarantee: every partial sum of the convolution stays
            # below 2**24 whatever the order (inputs are at most 128 in magnitude).
            bound = np.abs(wt.astype(np.int64)).reshape(len(wt), -1).sum(1) * 128 + np.abs(b.astype(np.int64))
            if bound.max() >= ACC_LIMIT:
                raise BlockcodecError(f"BlockCNN layer {i} could overflow float32 exactness ({bound.max()})")
            if (np.abs(mult.astype(np.int64)).max() >= 2 ** MULT_BITS or not 0 <= shift <= MAX_SHIFT
                    or (skip is not None and np.abs(skip.astype(np.int64)).max() >= 2 ** MULT_BITS)):
                raise BlockcodecError(f"BlockCNN layer {i} has an out-of-range requantizer")
            self.layers.append(dict(
                packed=pack_for_c(wt),
                weight=torch.from_numpy(wt.astype(np.float32)).contiguous(memory_format=torch.channels_last),
                bias=np.ascontiguousarray(b), mult=np.ascontiguousarray(mult), shift=shift,
                skip=None if skip is None else np.ascontiguousarray(skip),
            ))
        self.strides = [(2, 1), (2, 1)] + [(1, 1)] * (2 * config.depth) + [(1, 0)]
        self.residual = residual   # layers that add their block's input (a skip)
        head = self.layers[-1]["weight"]
        self.layers[-1]["fc"] = head.permute(0, 2, 3, 1).reshape(64, -1).t().contiguous()
        self._stages = {h: self._c_stages(h) for h in (True, False)}
        self._local = threading.local()

    def __call__(self, x_int: np.ndarray, dtype=None, reference: bool = False, head: bool = True,
                 simd: bool = True) -> np.ndarray:
        """x_int int16 [n, C_in, 24, 24] -> uint8 [n, 64] predicted pixels
        (``head=False``: the int8 features the head reads, [n, 6 * 6 * width]).

        By default the C core's integer kernel runs (``simd=False``: its plain
        loops).  ``dtype`` (torch.float32 or float64) runs the float path
        instead, and ``reference`` writes its requantization out in float64
        torch; they exist for the exactness tests, and every one of them gives
        the same bits."""
        x_int = np.asarray(x_int)
        if dtype is not None or reference:
            return self._forward_torch(x_int, dtype or torch.float32, reference, head)
        return self._forward_c(x_int, head, simd)

    def _c_stages(self, head: bool) -> tuple:
        """The layers as the C core's stage tuples (``_cext.intnet_forward``)."""
        stages, size = [], CONTEXT
        layers = self.layers if head else self.layers[:-1]
        for i, layer in enumerate(layers):
            c_out, c_in, k, _ = layer["weight"].shape
            stride, pad = self.strides[i]
            last = i == len(self.layers) - 1
            skip_from = i - 1 if i in self.residual else -1
            stages.append((size, size, c_in, k, k, stride, pad, layer["packed"], layer["bias"], layer["mult"],
                           layer["shift"], skip_from, layer["skip"] if skip_from >= 0 else None, not last,
                           -255 if last else -ACT_MAX, 255 if last else ACT_MAX))
            size = (size + 2 * pad - k) // stride + 1
        return tuple(stages), (size, size, c_out)

    def _scratch(self, head: bool, threads: int) -> np.ndarray:
        """The C kernel's working memory, kept between calls (fresh pages cost
        more than the network on a small batch); one per Python thread."""
        key = (head, threads)
        cache = self._local.__dict__.setdefault("scratch", {})
        if key not in cache:
            cache[key] = np.empty(_cext.intnet_scratch_len(self._stages[head][0], threads), np.int16)
        return cache[key]

    def _forward_c(self, x_int: np.ndarray, head: bool, simd: bool) -> np.ndarray:
        stages, out_shape = self._stages[head]
        n = len(x_int)
        a = np.ascontiguousarray(x_int.astype(np.int16, copy=False).transpose(0, 2, 3, 1))   # NHWC
        out = np.empty((n,) + out_shape, np.int16)
        # Blocks are independent: a batch is shared among as many threads as
        # torch is set to use, as long as each gets MIN_BLOCKS_PER_THREAD.
        threads = max(1, min(torch.get_num_threads(), n // MIN_BLOCKS_PER_THREAD))
        _cext.intnet_forward(a, n, stages, threads, simd, out, self._scratch(head, threads))
        if not head:
            return out.reshape(n, -1).astype(np.int8)
        base = x_int[:, PLANAR, 8:16, 8:16].reshape(n, 64).astype(np.int16) + 128
        return np.clip(base + out.reshape(n, 64), 0, 255).astype(np.uint8)

    def _forward_torch(self, x_int: np.ndarray, dtype, reference: bool, head: bool) -> np.ndarray:
        """The float path: exact float32 (or float64) convolutions, channels-last."""
        L = self.layers
        n_blocks = len(x_int)
        # oneDNN builds (JIT-compiles) a kernel for every new batch size, about
        # 1 s for the ~250 sizes an image's wavefronts have: pad the batch to
        # one of a few sizes instead.  Blocks never interact, so the padding
        # rows change nothing.
        n = _batch_bucket(n_blocks)
        if n != n_blocks:
            x_int = np.concatenate([x_int, np.zeros((n - n_blocks,) + x_int.shape[1:], x_int.dtype)])
        exact32 = dtype is torch.float32
        requant = self._requant_reference if reference else self._requant
        inputs = []                       # inputs[i]: the activation layer i reads
        with torch.no_grad():
            # The NCHW input goes in as it is: oneDNN's own reorder to its
            # channels-last output is cheaper than transposing it here.
            a = torch.from_numpy(np.ascontiguousarray(x_int)).to(dtype)
            for i, layer in enumerate(L):
                inputs.append(a)
                last = i == len(L) - 1
                if last and not head:
                    return a.reshape(n, -1).numpy()[:n_blocks].astype(np.int8)
                if not exact32:
                    a = a.to(dtype)
                if last:   # fully connected head: one matmul over the NHWC features
                    acc = a.reshape(n, -1) @ (layer["fc"] if exact32 else layer["fc"].to(dtype))
                else:
                    stride, pad = self.strides[i]
                    w = layer["weight"] if exact32 else layer["weight"].to(dtype)
                    acc = F.conv2d(a if i == 0 else a.permute(0, 3, 1, 2), w, None, stride, pad)
                    acc = acc.permute(0, 2, 3, 1)
                skip = inputs[i - 1] if i in self.residual else None
                a = requant(acc, layer, skip, relu=not last, lo=-255 if last else -ACT_MAX,
                            hi=255 if last else ACT_MAX)
        base = x_int[:n_blocks, PLANAR, 8:16, 8:16].reshape(n_blocks, 64).astype(np.int16) + 128
        corr = a.reshape(n, 64).numpy()[:n_blocks].astype(np.int16)
        return np.clip(base + corr, 0, 255).astype(np.uint8)

    @staticmethod
    def _requant(acc, layer, skip, relu, lo, hi):
        """The C core's requantization of an NHWC accumulator (a float64 one
        converts exactly: its integers are below 2**24)."""
        acc = acc.numpy() if acc.dtype is torch.float32 else acc.float().numpy()
        if not acc.flags.c_contiguous:   # oneDNN normally keeps channels-last
            acc = np.ascontiguousarray(acc)
        out = np.empty_like(acc)
        _cext.requantize(acc, acc.shape[-1], 1, layer["bias"], layer["mult"], layer["shift"],
                         None if skip is None else skip.numpy(), layer["skip"] if skip is not None else None,
                         relu, 0, lo, hi, out)
        return torch.from_numpy(out)

    @staticmethod
    def _requant_reference(acc, layer, skip, relu, lo, hi):
        """The rule written out in float64 torch (exact: integers below 2**53)."""
        t = (acc.double() + torch.from_numpy(layer["bias"].astype(np.float64))) \
            * torch.from_numpy(layer["mult"].astype(np.float64))
        if skip is not None:
            t = t + skip.double() * torch.from_numpy(layer["skip"].astype(np.float64))
        t = t * 2.0 ** -layer["shift"]
        if relu:
            t = torch.where(t < 0, t * NEG_SLOPE, t)
        return torch.floor(t + 0.5).clamp_(lo, hi).float()


# --------------------------------------------------------------------------
# Weights files and the predictor

def save_weights(path, luma: dict, chroma: dict, luma_cfg: BlockCNNConfig,
                 chroma_cfg: BlockCNNConfig, meta: dict) -> None:
    """A plain .npz (no pickles): integer tensors plus JSON metadata."""
    import json
    arrays = {f"luma/{k}": v for k, v in luma.items()}
    arrays.update({f"chroma/{k}": v for k, v in chroma.items()})
    info = dict(meta, luma=asdict(luma_cfg), chroma=asdict(chroma_cfg))
    arrays["meta"] = np.frombuffer(json.dumps(info, sort_keys=True).encode(), np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def weights_digest(arrays: dict[str, np.ndarray]) -> bytes:
    """4-byte hash over the tensors that define the predictions (not metadata)."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        if name == "meta":
            continue
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode() + b"\0" + str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes())
    return h.digest()[:4]


def _config(d: dict) -> BlockCNNConfig:
    """A config from weights metadata, with every field present and typed."""
    if not isinstance(d, dict) or set(d) != {"chroma", "width", "depth"}:
        raise ValueError("config needs exactly chroma, width, depth")
    if type(d["chroma"]) is not bool or type(d["width"]) is not int or type(d["depth"]) is not int:
        raise ValueError("config fields have the wrong types")
    if not (2 <= d["width"] <= 512 and d["width"] % 2 == 0 and 0 <= d["depth"] <= 16):
        raise ValueError("config width/depth out of range")
    return BlockCNNConfig(**d)


class BlockCNNPredictor(Predictor):
    """Predictor over a shipped weights file (luma and chroma networks)."""

    def __init__(self, path, name: str = "blockcnn"):
        import json
        self.name = name
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError) as exc:
            raise BlockcodecError(f"cannot read BlockCNN weights {path}: {exc}") from None
        stray = [k for k in arrays if k != "meta" and not k.startswith(("luma/", "chroma/"))]
        if stray or "meta" not in arrays or arrays["meta"].dtype != np.uint8:
            raise BlockcodecError(f"BlockCNN weights {path}: unexpected arrays {stray[:3]} or missing/odd meta")
        try:
            meta = json.loads(bytes(arrays["meta"]).decode())
            self.luma_cfg, self.chroma_cfg = (_config(meta[k]) for k in ("luma", "chroma"))
        except (KeyError, TypeError, ValueError) as exc:
            raise BlockcodecError(f"BlockCNN weights {path} have no valid metadata ({exc})") from None
        if self.luma_cfg.chroma or not self.chroma_cfg.chroma:
            raise BlockcodecError(f"BlockCNN weights {path} mix up the luma and chroma networks")
        self.meta = meta
        self.nets = {
            False: IntegerNet({k[5:]: v for k, v in arrays.items() if k.startswith("luma/")}, self.luma_cfg),
            True: IntegerNet({k[7:]: v for k, v in arrays.items() if k.startswith("chroma/")}, self.chroma_cfg),
        }
        self._hash = weights_digest(arrays)
        self._qfeat: dict[bytes, int] = {}

    def weights_hash(self) -> bytes:
        return self._hash

    @property
    def guides(self) -> bool:
        return True

    def _inputs(self, contexts, avail, plane: PlaneInfo, guides=None):
        key = np.asarray(plane.qtable).tobytes()
        qfeat = self._qfeat.get(key)
        if qfeat is None:      # an exact big-integer power: worth computing once per table
            qfeat = self._qfeat[key] = quality_feature(plane.qtable)
        return build_inputs(contexts, avail, qfeat, guides,
                            is_cr=plane.index == 2, chroma=plane.chroma)

    def predict(self, contexts, avail, plane: PlaneInfo, guides=None):
        return self.nets[plane.chroma](self._inputs(contexts, avail, plane, guides)).reshape(-1, 8, 8)

    def predict_many(self, parts):
        """Batches that share a network (Cb and Cr) go through it as one:
        its cost is mostly per call, and batching never changes the bits."""
        return by_plane_kind(parts, self._run_joined)

    def _run_joined(self, chroma: bool, parts) -> list[np.ndarray]:
        xs = [self._inputs(*part) for part in parts]
        pred = self.nets[chroma](xs[0] if len(xs) == 1 else np.concatenate(xs)).reshape(-1, 8, 8)
        return np.split(pred, np.cumsum([len(x) for x in xs])[:-1])

    def macs_per_block(self, chroma: bool) -> int:
        cfg = self.chroma_cfg if chroma else self.luma_cfg
        return BlockCNN(cfg).macs_per_block()
