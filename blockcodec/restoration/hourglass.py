"""Stacked hourglasses with multi-context channel-wise attention (Li, Liang,
Wang 2019), for JPEG artifact removal.

A convolution and a residual block make the front end.  Then ``stacks``
hourglasses: each halves the resolution ``levels`` times (max pooling) and
comes back up with bilinear upsampling, adding the skip features of each
level, and predicts a residual map - the network's output after that stack
is the input plus the map.  Multi-context channel attention weighs the output
features of each hourglass by channel: the features at each lower resolution
(8, 16 and 32 pixels wide for a 64-pixel patch) are pooled globally, passed
through a linear layer, a ReLU and a softmax over channels, and the three
weightings are summed.  Progressive supervision trains the intermediate
outputs toward the same image coded at higher qualities (``forward_all``
returns them; the trainer supplies the targets).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import NetConfig, RestorationNet


@dataclass(frozen=True)
class HourglassConfig(NetConfig):
    width: int = 64
    stacks: int = 4
    levels: int = 3
    centered: bool = True


class _Residual(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        # Batch norm as in the stacked-hourglass residual module: without it the
        # features of four stacked hourglasses grow without bound (a first
        # training loss of 93 against 0.005) and the network settles on the identity.
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU(), nn.Conv2d(width, width, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(width))

    def forward(self, x):
        return F.relu(x + self.body(x))


class MultiContextAttention(nn.Module):
    """Channel weights from globally pooled features of several resolutions."""

    def __init__(self, width: int, contexts: int):
        super().__init__()
        self.fc = nn.ModuleList(nn.Linear(width, width) for _ in range(contexts))

    def forward(self, x: torch.Tensor, contexts: list[torch.Tensor]) -> torch.Tensor:
        weights = sum(torch.softmax(F.relu(fc(f.mean((2, 3)))), 1) for fc, f in zip(self.fc, contexts))
        # A softmax averages 1/C per channel: rescale so the mean weight is 1.
        scale = x.shape[1] / len(contexts)
        return x * (weights * scale)[:, :, None, None]


class _Hourglass(nn.Module):
    def __init__(self, width: int, levels: int):
        super().__init__()
        self.down = nn.ModuleList(_Residual(width) for _ in range(levels))
        self.skip = nn.ModuleList(_Residual(width) for _ in range(levels))
        self.bottom = _Residual(width)
        self.up = nn.ModuleList(_Residual(width) for _ in range(levels))
        self.attention = MultiContextAttention(width, levels)

    def forward(self, x):
        skips, contexts = [], []
        for down, skip in zip(self.down, self.skip):
            skips.append(skip(x))
            x = F.max_pool2d(down(x), 2)
        x = self.bottom(x)
        for up, s in zip(self.up, reversed(skips)):
            contexts.append(x)           # the lower-resolution features: 8, 16, 32 wide for 64
            x = up(F.interpolate(x, size=s.shape[2:], mode="bilinear", align_corners=False) + s)
        return self.attention(x, contexts)


class Hourglass(RestorationNet):
    def __init__(self, config: HourglassConfig = HourglassConfig()):
        super().__init__(config)
        c, w = config.channels, config.width
        self.multiple = 2 ** config.levels
        self.front = nn.Sequential(nn.Conv2d(c + 1, w, 3, padding=1), nn.ReLU(), _Residual(w))
        self.glasses = nn.ModuleList(_Hourglass(w, config.levels) for _ in range(config.stacks))
        self.to_residual = nn.ModuleList(nn.Conv2d(w, c, 3, padding=1) for _ in range(config.stacks))
        self.from_residual = nn.ModuleList(nn.Conv2d(c, w, 1) for _ in range(config.stacks - 1))
        for conv in self.to_residual:      # every stack starts by passing its input through
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward_all(self, x: torch.Tensor, q: torch.Tensor) -> list[torch.Tensor]:
        """The output after every stack, the last being the network's output."""
        f = self.front(self.with_quality(x, q))
        outs = []
        for i, glass in enumerate(self.glasses):
            # Residual scaling (as in EDSR): an hourglass's output is ~10x its
            # input in magnitude; unscaled, the first Adam steps on the heads
            # sent the training loss from 0.002 to 100.
            g = glass(f) * 0.1
            r = self.to_residual[i](g)
            outs.append(x + r)
            if i < len(self.from_residual):
                f = f + g + self.from_residual[i](r)
        return outs

    def forward(self, x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return self.forward_all(x, q)[-1]
