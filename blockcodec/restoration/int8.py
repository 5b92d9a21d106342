"""WDSR with int8 residual blocks: the decoder's fast post-filter.

Almost all of WDSR's work (99 % of its multiply-adds) is in the wide residual
blocks, conv 3x3 (w -> w*e) - ReLU - conv 3x3 (w*e -> w).  Run as int8
convolutions (PyTorch's quantized CPU kernels: int8 weights per output
channel, uint8 activations with one scale per tensor, int32 accumulation)
they are about four times faster than float32 on this 2-core CPU.  The head,
the tail, the global skip and the residual sums stay in float32: they are
cheap, and the residual stream keeps full precision between blocks.

The activation scales are calibrated once, on codec decodes of training
images (``calibrate``), and shipped beside the float weights
(``blockcodec/data/restore_wdsr.int8.json``).  The float weights stay the
reference: ``blockcodec restore`` and the artifact benchmarks run them, and
this network is measured against them (kodak_eval/results/postfilter.md).
The post-filter is outside the coding loop, so the rounding of int8
inference changes only the picture shown, never the decoder's
reconstruction.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from .inference import InferenceNet
from .wdsr import WDSR

# Activations are clipped at a high percentile rather than the maximum, so a
# few outliers do not coarsen every other value's step.
PERCENTILE = 0.99995


@dataclass(frozen=True)
class BlockScales:
    """Quantizer steps of one residual block (float units per integer step)."""

    input: float     # the block input, int8 around zero (uint8 with zero point 128)
    hidden: float    # the ReLU output, uint8
    output: float    # the second conv's output, int8 around zero


@dataclass(frozen=True)
class Calibration:
    weights_sha256: str          # the float weights the scales were measured for
    blocks: tuple[BlockScales, ...]
    data: str = ""               # what they were measured on

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"

    @staticmethod
    def from_json(text: str) -> "Calibration":
        d = json.loads(text)
        blocks = tuple(BlockScales(**{k: float(v) for k, v in b.items()}) for b in d["blocks"])
        if not blocks or any(not (s > 0 and np.isfinite(s)) for b in blocks for s in asdict(b).values()):
            raise ValueError("int8 calibration: every scale must be a positive number")
        return Calibration(str(d["weights_sha256"]), blocks, str(d.get("data", "")))


def _plain(net: WDSR) -> WDSR:
    """A copy with weight norm folded into plain convolution weights.  (A
    fresh network, not a deep copy: a copied parametrized module shares its
    generated class with the original, and removing the parametrization from
    one would break the other.)"""
    plain = type(net)(net.config).eval()
    for m in plain.modules():
        if hasattr(m, "parametrizations"):
            for name in list(m.parametrizations):
                parametrize.remove_parametrizations(m, name)
    source = dict(net.named_modules())
    with torch.no_grad():
        for name, m in plain.named_modules():
            if isinstance(m, nn.Conv2d):
                m.weight.copy_(source[name].weight)
                m.bias.copy_(source[name].bias)
    return plain


@torch.no_grad()
def calibrate(net: WDSR, planes, features, weights_sha256: str, data: str = "") -> Calibration:
    """Scales from the float network's activations on ``planes`` (uint8
    decoded planes) with their quality ``features``."""
    plain = _plain(net)
    peaks: dict[tuple[int, str], float] = {}

    def record(i, kind, t):
        v = t.abs().flatten()
        # The exact order statistic k = floor(p (n - 1)) + 1 (nearest rank, lower), any size.
        k = int(PERCENTILE * (len(v) - 1)) + 1
        key = (i, kind)
        peaks[key] = max(peaks.get(key, 0.0), float(torch.kthvalue(v, k).values))

    for plane, q in zip(planes, features):
        x = torch.from_numpy(np.ascontiguousarray(plane)).float().div_(255)[None, None]
        h = plain.head(plain.with_quality(x, torch.tensor([q], dtype=torch.float32)))
        for i, blk in enumerate(plain.body):
            record(i, "input", h)
            r = F.relu(blk.body[0](h))
            record(i, "hidden", r)
            o = blk.body[2](r)
            record(i, "output", o)
            h = h + o
    blocks = tuple(BlockScales(input=max(peaks[(i, "input")], 1e-6) / 127,
                               hidden=max(peaks[(i, "hidden")], 1e-6) / 255,
                               output=max(peaks[(i, "output")], 1e-6) / 127) for i in range(len(plain.body)))
    return Calibration(weights_sha256, blocks, data)


def _quantized_weight(w: torch.Tensor) -> torch.Tensor:
    step = w.abs().flatten(1).amax(1).clamp_min(1e-12) / 127
    return torch.quantize_per_channel(w, step, torch.zeros(len(w), dtype=torch.long), 0, torch.qint8)


class Int8WDSR(InferenceNet):
    """WDSR with its residual blocks in int8, for ``tiling.restore``.  Raises
    RuntimeError at construction where this torch build has no quantized CPU
    kernels."""

    def __init__(self, net: WDSR, calibration: Calibration):
        import torch.ao.nn.intrinsic.quantized as nniq
        import torch.ao.nn.quantized as nnq

        if len(calibration.blocks) != len(net.body):
            raise ValueError(f"int8 calibration has {len(calibration.blocks)} blocks, the network {len(net.body)}")
        super().__init__(net)
        self.plain = _plain(net)
        self.blocks = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")        # quantized tensors carry deprecation notices
            for blk, s in zip(self.plain.body, calibration.blocks):
                expand, shrink = blk.body[0], blk.body[2]
                a = nniq.ConvReLU2d(expand.in_channels, expand.out_channels, 3, padding=1)
                a.set_weight_bias(_quantized_weight(expand.weight.detach()), expand.bias.detach())
                a.scale, a.zero_point = s.hidden, 0
                b = nnq.Conv2d(shrink.in_channels, shrink.out_channels, 3, padding=1)
                b.set_weight_bias(_quantized_weight(shrink.weight.detach()), shrink.bias.detach())
                b.scale, b.zero_point = s.output, 128
                self.blocks.append((s.input, a, b))
            self(torch.zeros(1, net.config.channels, 16, 16), torch.zeros(1))   # fails here if unsupported

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        p = self.plain
        xq = p.with_quality(x, q)
        # Channels-last: the layout the int8 kernels work in.
        h = p.head(xq).contiguous(memory_format=torch.channels_last)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for step, expand, shrink in self.blocks:
                hq = torch.quantize_per_tensor(h, step, 128, torch.quint8)
                h = h + shrink(expand(hq)).dequantize()
        return p.tail(h) + p.skip(xq)
