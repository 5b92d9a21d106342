"""Multi-scale reshuffling network (Tang and Luo 2018), built for low compute.

The image is taken down three times by lossless space-to-depth reshuffling
(each 2x2 patch becomes four channels), so most convolutions run at 1/8,
1/4 and 1/2 resolution.  At each scale a dense block - layers of a 1x1
convolution with ELU then a 3x3 convolution, every layer's output
concatenated to its input - processes the features; coarse features come
back up by depth-to-space reshuffling, stage by stage, joining the next
finer scale.  The last stage reshuffles to full resolution as a residual
added to the input.  Trained with L1.  Each dense block also adds its input
to its output (local residual learning, as in residual dense networks).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import NetConfig, RestorationNet


@dataclass(frozen=True)
class ReshuffleConfig(NetConfig):
    width: int = 32            # channels entering each dense block
    growth: int = 16           # channels each dense layer adds
    layers: int = 4            # dense layers per block
    scales: int = 3            # space-to-depth steps
    # Two training aids, measured on this CPU: without them the network sits
    # on a plateau for thousands of steps (+0.01 dB after 150 steps of a
    # 40-patch overfit test, against +0.81 dB with both after 400).
    local_residual: bool = True    # each dense block adds its input to its output
    centered: bool = True


class _DenseBlock(nn.Module):
    def __init__(self, width: int, growth: int, layers: int):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width + i * growth, growth * 2, 1), nn.ELU(),
                          nn.Conv2d(growth * 2, growth, 3, padding=1))
            for i in range(layers))
        self.fuse = nn.Conv2d(width + layers * growth, width, 1)

    def forward(self, x):
        for layer in self.layers:
            x = torch.cat([x, layer(x)], 1)
        return self.fuse(x)


class Reshuffle(RestorationNet):
    loss = "l1"

    def __init__(self, config: ReshuffleConfig = ReshuffleConfig()):
        super().__init__(config)
        c, w, s = config.channels, config.width, config.scales
        self.multiple = 2 ** s
        # Stage k (k = s .. 1) works at 1/2^k: its input is the image reshuffled
        # k times, plus (below the coarsest) the upshuffled coarser features.
        self.enter = nn.ModuleList(
            nn.Conv2d((c + 1) * 4 ** k + (0 if k == s else w), w, 3, padding=1) for k in range(s, 0, -1))
        self.dense = nn.ModuleList(_DenseBlock(w, config.growth, config.layers) for _ in range(s))
        self.leave = nn.ModuleList(nn.Conv2d(w, 4 * w, 3, padding=1) for _ in range(s - 1))
        self.out = nn.Conv2d(w, 4 * c, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        s = self.config.scales
        levels = [self.with_quality(x, q)]
        for _ in range(s):
            levels.append(F.pixel_unshuffle(levels[-1], 2))
        f = None
        for i, k in enumerate(range(s, 0, -1)):
            inp = levels[k] if f is None else torch.cat([levels[k], f], 1)
            f = self.enter[i](inp)
            f = f + self.dense[i](f) if self.config.local_residual else self.dense[i](f)
            if i < s - 1:
                f = F.pixel_shuffle(self.leave[i](f), 2)
        return x + F.pixel_shuffle(self.out(f), 2)
