"""Restoration networks: post-filters for the codec and JPEG artifact removers.

Five designs, each a small nn.Module in its own file, registered here with a
small configuration (trains on a 2-core CPU in about an hour or two) and the
paper-size one:

    blockcnn-ar   BlockCNN artifact removal (Maleki et al. 2018)
    arcnn         AR-CNN (Dong et al. 2015)
    hourglass     stacked hourglasses with multi-context channel attention (Li et al. 2019)
    reshuffle     multi-scale reshuffling network (Tang and Luo 2018)
    wdsr          wide-activation residual network (Yu, Fan et al. 2018)
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from .arcnn import ARCNN, ARCNNConfig
from .base import NetConfig, RestorationNet, quality_feature
from .blockcnn_ar import BlockCNNAR, BlockCNNARConfig
from .hourglass import Hourglass, HourglassConfig
from .reshuffle import Reshuffle, ReshuffleConfig
from .wdsr import WDSR, WDSRConfig


@dataclass(frozen=True)
class Architecture:
    model: type
    small: NetConfig
    full: NetConfig
    paper: str


ARCHITECTURES: dict[str, Architecture] = {
    "blockcnn-ar": Architecture(BlockCNNAR, BlockCNNARConfig(width=32, depth=2, downsample=True),
                                BlockCNNARConfig(width=64, depth=4, downsample=False),
                                "Maleki et al., BlockCNN, CVPR-W 2018"),
    "arcnn": Architecture(ARCNN, ARCNNConfig(widths=(32, 16, 16)), ARCNNConfig(),
                          "Dong et al., AR-CNN, ICCV 2015"),
    "hourglass": Architecture(Hourglass, HourglassConfig(width=16, stacks=4), HourglassConfig(),
                              "Li, Liang, Wang 2019, multi-context channel-wise attention hourglass"),
    "reshuffle": Architecture(Reshuffle, ReshuffleConfig(width=32, growth=16, layers=4),
                              ReshuffleConfig(width=64, growth=32, layers=6),
                              "Tang and Luo 2018, multi-scale reshuffling network"),
    "wdsr": Architecture(WDSR, WDSRConfig(width=16, expansion=4, blocks=4), WDSRConfig(width=32, blocks=16),
                         "Yu, Fan et al. 2018, WDSR"),
}


def build(name: str, size: str = "small", **overrides) -> RestorationNet:
    """A fresh network of the named architecture ('small' or 'full' size,
    any config field overridden)."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown restoration architecture {name!r}; known: {', '.join(ARCHITECTURES)}")
    if size not in ("small", "full"):
        raise ValueError(f"size must be 'small' or 'full', got {size!r}")
    arch = ARCHITECTURES[name]
    return arch.model(replace(getattr(arch, size), **overrides))


__all__ = ["ARCHITECTURES", "Architecture", "RestorationNet", "build", "quality_feature"]
