"""Restoration networks prepared for fast CPU inference.

Eager PyTorch runs these small convolutions at a fraction of the machine's
speed.  Tracing the network once, freezing its weights (weight norm and
batch norm fold into the convolutions) and letting torch.jit's inference
pass fuse convolutions with their activations and keep oneDNN's blocked
layouts between layers makes them 1.5-3.5x faster on this 2-core CPU
(measured per design; see docs/DESIGN.md).  The traced graph does not depend
on the input size.  The result agrees with the eager network to float
rounding; the post-filter is outside the coding loop, so that is all it must
do.  torch.jit is deprecated in favour of torch.compile, which needs a C
compiler and tens of seconds at run time; the pin below torch 2.14 keeps
torch.jit available, and any failure falls back to the eager network.
"""
from __future__ import annotations

import copy
import warnings

import torch

from .base import RestorationNet


class InferenceNet:
    """A trained network prepared for inference: a callable ``(x, q) -> y``
    with the network's ``config``, ``multiple`` and ``margin``, for
    ``tiling.restore``; ``eager`` is the network itself."""

    def __init__(self, net: RestorationNet):
        self.config, self.multiple, self.margin = net.config, net.multiple, net.margin
        self.eager = net.eval()

    def eval(self) -> "InferenceNet":
        return self

    def parameter_count(self) -> int:
        return self.eager.parameter_count()

    def macs_per_pixel(self, size: int = 64) -> float:
        return self.eager.macs_per_pixel(size)


class FrozenNet(InferenceNet):
    """The network traced and frozen by torch.jit (the eager one where that fails)."""

    def __init__(self, net: RestorationNet):
        super().__init__(net)
        self.module = _freeze(net)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return (self.module or self.eager)(x, q)


def _freeze(net: RestorationNet):
    m = max(net.multiple, 8)
    example = (torch.zeros(1, net.config.channels, 4 * m, 4 * m), torch.zeros(1))
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")          # torch.jit's deprecation notices
            traced = torch.jit.trace(copy.deepcopy(net).eval(), example, check_trace=False)
            return torch.jit.optimize_for_inference(torch.jit.freeze(traced))
    except Exception:   # an unsupported torch build: the eager network still works
        return None


def frozen(net: RestorationNet) -> FrozenNet:
    return FrozenNet(net)
