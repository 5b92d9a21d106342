"""BlockCNN artifact removal (Maleki, Nadalian, Derakhshani, Sadeghi, CVPR-W 2018).

Each 8x8 block is restored from a 24x24 window - the block and its eight
neighbours - and only its centre 8x8 comes out: the output's 64 values per
block are separate outputs of the network, so it can learn that blocking and
ringing depend on where a pixel sits inside its block.  Residual learning: the
network predicts the correction added to the decoded block.  The body is
convolutions and residual blocks (conv - batch norm - leaky ReLU), as in the
paper; a fully connected layer maps the features to the 8x8 output.

``downsample`` (the small configuration) runs the residual blocks at 6x6
after two stride-2 convolutions instead of at 24x24, 16x fewer multiply-adds.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import NetConfig, RestorationNet

BLOCK, WINDOW = 8, 24


@dataclass(frozen=True)
class BlockCNNARConfig(NetConfig):
    width: int = 32
    depth: int = 2             # residual blocks
    downsample: bool = True    # residual blocks at 6x6 (small) or 24x24 (paper size)


class _ResidualBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.LeakyReLU(0.1),
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width))

    def forward(self, x):
        return F.leaky_relu(x + self.body(x), 0.1)


class BlockCNNAR(RestorationNet):
    multiple = BLOCK

    def __init__(self, config: BlockCNNARConfig = BlockCNNARConfig()):
        super().__init__(config)
        c, w = config.channels, config.width
        if config.downsample:
            stem = [nn.Conv2d(c + 1, w // 2, 4, 2, 1), nn.LeakyReLU(0.1),
                    nn.Conv2d(w // 2, w, 3, 2, 1), nn.LeakyReLU(0.1)]
            side = WINDOW // 4
        else:
            stem = [nn.Conv2d(c + 1, w, 3, padding=1), nn.LeakyReLU(0.1)]
            side = WINDOW
        self.stem = nn.Sequential(*stem)
        self.blocks = nn.Sequential(*[_ResidualBlock(w) for _ in range(config.depth)])
        self.head = nn.Linear(w * side * side, c * BLOCK * BLOCK)
        nn.init.zeros_(self.head.weight)   # start as the identity: no correction
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        rows, cols = h // BLOCK, w // BLOCK
        # The windows: every 8x8 block with its neighbours, edges replicated.
        padded = F.pad(self.with_quality(x, q), (BLOCK,) * 4, mode="replicate")
        win = F.unfold(padded, WINDOW, stride=BLOCK)                    # [n, (c+1)*576, rows*cols]
        win = win.transpose(1, 2).reshape(n * rows * cols, c + 1, WINDOW, WINDOW)
        corr = self.head(self.blocks(self.stem(win)).flatten(1))        # [n*rows*cols, c*64]
        corr = corr.view(n, rows, cols, c, BLOCK, BLOCK).permute(0, 3, 1, 4, 2, 5).reshape(n, c, h, w)
        return x + corr
