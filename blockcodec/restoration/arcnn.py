"""AR-CNN (Dong, Deng, Loy, Tang, ICCV 2015): four convolutions.

Feature extraction 9x9 x 64, feature enhancement 7x7 x 32, mapping 1x1 x 16,
reconstruction 5x5, ReLU between them, trained with MSE.  The paper's
network outputs the restored image itself; ``residual`` (off by default)
adds the input back instead, which trains faster on small budgets.  Its
easy-to-hard transfer - initialising a low-quality model from one trained at
a higher quality - is a training option (``--init-from``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .base import NetConfig, RestorationNet


@dataclass(frozen=True)
class ARCNNConfig(NetConfig):
    widths: tuple[int, int, int] = (64, 32, 16)
    kernels: tuple[int, int, int, int] = (9, 7, 1, 5)
    residual: bool = False
    centered: bool = True


class ARCNN(RestorationNet):
    def __init__(self, config: ARCNNConfig = ARCNNConfig()):
        super().__init__(config)
        c = config.channels
        ins = (c + 1,) + tuple(config.widths)
        outs = tuple(config.widths) + (c,)
        layers = []
        for i, (a, b, k) in enumerate(zip(ins, outs, config.kernels)):
            layers.append(nn.Conv2d(a, b, k, padding=k // 2))
            if i < 3:
                layers.append(nn.ReLU())
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        y = self.body(self.with_quality(x, q))
        if self.config.residual:
            return x + y
        return y + 0.5 if self.config.centered else y     # the plain design outputs the image itself
