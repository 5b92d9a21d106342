"""What every restoration network shares: its calling convention and the
quality input that lets one model serve every quantizer.

A network maps a decoded image ``x`` (float [N, C, H, W], pixels / 255) and a
quality feature ``q`` (float [N]) to the restored image.  The quality feature
is log2 of the mean quantizer step, scaled to about [0, 1]
(``quality_feature``); it enters as one constant extra input channel, so any
architecture can be conditioned without changing its paper structure.
Networks with down-sampling need H and W to be multiples of ``multiple``;
``tiling.restore`` pads for them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


def quality_feature(qtable) -> float:
    """log2(mean step) / 8: about 0 for near-lossless tables (step 1), 0.6
    for JPEG q10 luminance, 1 for the coarsest (step 255)."""
    mean = float(np.mean(np.asarray(qtable, dtype=np.float64)))
    return math.log2(max(mean, 1.0)) / 8.0


@dataclass(frozen=True)
class NetConfig:
    """Fields every architecture's config has."""

    channels: int = 1          # image channels the network restores
    # Feed the network pixels - 0.5 instead of pixels in [0, 1].  Zero-mean
    # input shortens the early training plateau (measured for WDSR and the
    # reshuffling network on a 40-patch overfit test); the design is unchanged.
    centered: bool = False


class RestorationNet(nn.Module):
    """Base class: ``forward(x, q)`` with the quality channel appended."""

    multiple: int = 1          # H and W must be multiples of this
    # Context kept around each tile in tiled inference: at least the
    # receptive-field radius where it is finite and small, so tiles then
    # match a whole-image pass; 32 for the multi-scale designs.
    margin: int = 32
    loss: str = "l2"           # the training loss its paper uses: "l2" (MSE) or "l1"

    def __init__(self, config: NetConfig):
        super().__init__()
        self.config = config

    def with_quality(self, x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """The network's input: the image (centred if configured) and the quality channel."""
        qmap = q.to(x.dtype).view(-1, 1, 1, 1).expand(x.shape[0], 1, x.shape[2], x.shape[3])
        return torch.cat([x - 0.5 if self.config.centered else x, qmap], 1)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def macs_per_pixel(self, size: int = 64) -> float:
        """Multiply-adds per output pixel, counted with forward hooks on the
        convolutions and linear layers over one size x size input."""
        macs = [0]

        def conv_hook(m, inp, out):
            k = m.weight[0].numel()                      # (C_in / groups) * kh * kw
            macs[0] += out.numel() * k

        def linear_hook(m, inp, out):
            macs[0] += out.numel() * m.in_features

        hooks = []
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                hooks.append(m.register_forward_hook(conv_hook))
            elif isinstance(m, nn.Linear):
                hooks.append(m.register_forward_hook(linear_hook))
        size = -(-size // self.multiple) * self.multiple
        was_training = self.training
        self.eval()
        with torch.no_grad():
            self(torch.zeros(1, self.config.channels, size, size), torch.zeros(1))
        self.train(was_training)
        for h in hooks:
            h.remove()
        return macs[0] / (size * size)
