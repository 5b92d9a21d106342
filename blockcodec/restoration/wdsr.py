"""WDSR, wide-activation residual network (Yu, Fan, Yang, Xu, Wang, Wang,
Huang 2018), without its upsampling, as an artifact remover.

Residual blocks expand the features before the ReLU (``width`` ->
``width * expansion``) and shrink them after, so more information passes the
non-linearity at the same cost; every convolution is weight-normalised; the
input reaches the output through one 5x5 convolution (the global skip).
Trained with L1.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from .base import NetConfig, RestorationNet


@dataclass(frozen=True)
class WDSRConfig(NetConfig):
    width: int = 32
    expansion: int = 4
    blocks: int = 8


def _conv(a: int, b: int, k: int) -> nn.Module:
    return weight_norm(nn.Conv2d(a, b, k, padding=k // 2))


class _WideBlock(nn.Module):
    def __init__(self, width: int, expansion: int):
        super().__init__()
        self.body = nn.Sequential(_conv(width, width * expansion, 3), nn.ReLU(),
                                  _conv(width * expansion, width, 3))

    def forward(self, x):
        return x + self.body(x)


class WDSR(RestorationNet):
    loss = "l1"

    def __init__(self, config: WDSRConfig = WDSRConfig()):
        super().__init__(config)
        c, w = config.channels, config.width
        self.head = _conv(c + 1, w, 3)
        self.body = nn.Sequential(*[_WideBlock(w, config.expansion) for _ in range(config.blocks)])
        tail = nn.Conv2d(w, c, 3, padding=1)
        nn.init.zeros_(tail.weight)   # with the identity skip below, start as the identity
        nn.init.zeros_(tail.bias)
        self.tail = tail
        self.skip = nn.Conv2d(c + 1, c, 5, padding=2)
        with torch.no_grad():   # start the global skip as the identity on the image channels
            self.skip.weight.zero_()
            self.skip.bias.zero_()
            for i in range(c):
                self.skip.weight[i, i, 2, 2] = 1.0
        self.skip = weight_norm(self.skip)
        # Receptive-field radius: one pixel per 3x3 convolution (head, two per
        # block, tail); the 5x5 skip reaches 2.  Tiles with this margin match a
        # whole-image pass.
        self.margin = 2 * config.blocks + 2

    def forward(self, x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        xq = self.with_quality(x, q)
        return self.tail(self.body(self.head(xq))) + self.skip(xq)
