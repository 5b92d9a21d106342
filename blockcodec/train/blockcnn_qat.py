"""BlockCNN in PyTorch: the quantization-aware training model, its export to
integers, and the float implementation of the integer network.

The codec itself never imports this module: it runs the exported integers
with ``blockcodec.predictors.blockcnn.IntegerNet`` in the C core (numpy and
the C extension only).  Here are

* ``BlockCNN``, the float training model.  It trains with batch norm first;
  ``fold_batchnorm()`` then folds each BN into its convolution and
  ``enable_quantization()`` switches on fake quantization (int8 weights per
  output channel, int8 activations with learned step sizes) for
  quantization-aware fine-tuning.  ``export_integer`` turns it into the
  integer tensors a weights file holds.
* ``forward_float``, the same integer network as PyTorch float32 (or
  float64) convolutions.  Every accumulator is bounded by
  sum|w| * 128 + |bias| < 2**24 (checked when the weights are loaded), so a
  float32 convolution computes it exactly in any summation order; with the
  requantization in the C core, or written out in float64 torch
  (``reference=True``), it is an independent second implementation that the
  tests hold the C kernel to, bit for bit.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import _cext
from ..predictors.blockcnn import (ACC_LIMIT, ACT_MAX, MULT_BITS, NEG_SLOPE, PLANAR, W_MAX, BlockCNNConfig,
                                   IntegerNet, macs_per_block)


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
    """Float/QAT training model; the layout is in
    ``blockcodec.predictors.blockcnn``'s docstring."""

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
        return macs_per_block(self.config)


# --------------------------------------------------------------------------
# Export to integers

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


# --------------------------------------------------------------------------
# The integer network in float convolutions (the exactness tests' second
# implementation)

def _batch_bucket(n: int) -> int:
    """n rounded up to 1, 2, 4, 8, then a multiple of 8 up to 128, of 32 up
    to 512, of 128 beyond: under a quarter of the rows wasted."""
    if n <= 8:
        return 1 << max(n - 1, 0).bit_length()
    step = 8 if n <= 128 else 32 if n <= 512 else 128
    return -(-n // step) * step


def _torch_weights(net: IntegerNet) -> list[torch.Tensor]:
    """Each layer's int8 weights as float32 torch tensors, channels-last; the
    head as the [6 * 6 * width, 64] matrix of a matmul over NHWC features."""
    ws = [torch.from_numpy(np.asarray(layer["weight"]).astype(np.float32)).contiguous(
        memory_format=torch.channels_last) for layer in net.layers]
    ws[-1] = ws[-1].permute(0, 2, 3, 1).reshape(64, -1).t().contiguous()
    return ws


def forward_float(net: IntegerNet, x_int: np.ndarray, dtype: torch.dtype = torch.float32,
                  reference: bool = False, head: bool = True) -> np.ndarray:
    """``net(x_int, head=head)`` computed with PyTorch convolutions in
    ``dtype`` (float32, exact below 2**24, or float64) and the C core's
    requantizer, or with ``reference=True`` the requantization rule written
    out in float64 torch.  Every one of them gives the C kernel's bits."""
    x_int = np.asarray(x_int)
    layers = net.layers
    weights = _torch_weights(net)
    n_blocks = len(x_int)
    # oneDNN builds (JIT-compiles) a kernel for every new batch size, about
    # 1 s for the ~250 sizes an image's wavefronts have: pad the batch to
    # one of a few sizes instead.  Blocks never interact, so the padding
    # rows change nothing.
    n = _batch_bucket(n_blocks)
    if n != n_blocks:
        x_int = np.concatenate([x_int, np.zeros((n - n_blocks,) + x_int.shape[1:], x_int.dtype)])
    exact32 = dtype is torch.float32
    requant = _requant_reference if reference else _requant
    inputs = []                       # inputs[i]: the activation layer i reads
    with torch.no_grad():
        # The NCHW input goes in as it is: oneDNN's own reorder to its
        # channels-last output is cheaper than transposing it here.
        a = torch.from_numpy(np.ascontiguousarray(x_int)).to(dtype)
        for i, layer in enumerate(layers):
            inputs.append(a)
            last = i == len(layers) - 1
            if last and not head:
                return a.reshape(n, -1).numpy()[:n_blocks].astype(np.int8)
            if not exact32:
                a = a.to(dtype)
            w = weights[i] if exact32 else weights[i].to(dtype)
            if last:   # fully connected head: one matmul over the NHWC features
                acc = a.reshape(n, -1) @ w
            else:
                stride, pad = net.strides[i]
                acc = F.conv2d(a if i == 0 else a.permute(0, 3, 1, 2), w, None, stride, pad)
                acc = acc.permute(0, 2, 3, 1)
            skip = inputs[i - 1] if i in net.residual else None
            a = requant(acc, layer, skip, relu=not last, lo=-255 if last else -ACT_MAX,
                        hi=255 if last else ACT_MAX)
    base = x_int[:n_blocks, PLANAR, 8:16, 8:16].reshape(n_blocks, 64).astype(np.int16) + 128
    corr = a.reshape(n, 64).numpy()[:n_blocks].astype(np.int16)
    return np.clip(base + corr, 0, 255).astype(np.uint8)


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
