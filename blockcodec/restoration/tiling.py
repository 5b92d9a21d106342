"""Tiled inference: any image size in bounded memory.

The image is cut into tiles of ``tile`` pixels (a multiple of the network's
``multiple`` and of 8, so tiles keep the 8x8 block grid), each run with a
margin of ``overlap`` pixels of real context on every side, and only its
centre is kept: away from the image edges every output pixel sees the same
neighbourhood as in a whole-image pass, as far as the network's receptive
field fits in the margin.  Edges are padded by replication.
"""
from __future__ import annotations

import numpy as np
import torch

from .base import RestorationNet


def _round_up(v: int, m: int) -> int:
    return -(-v // m) * m


@torch.no_grad()
def restore(net: RestorationNet, image: np.ndarray, q: float, tile: int = 256, overlap: int = 32) -> np.ndarray:
    """Restore a uint8 image (H x W, or H x W x C with C = net channels) with
    quality feature ``q``; returns uint8 of the same shape."""
    squeeze = image.ndim == 2
    img = image[:, :, None] if squeeze else image
    h, w, c = img.shape
    if c != net.config.channels:
        raise ValueError(f"the network restores {net.config.channels}-channel images, got {c}")
    m = int(np.lcm(net.multiple, 8))
    tile, overlap = _round_up(tile, m), _round_up(overlap, m)
    x = torch.from_numpy(np.array(img.transpose(2, 0, 1))).float().div_(255)[None]   # a writable copy
    ph, pw = _round_up(h, m), _round_up(w, m)
    x = torch.nn.functional.pad(x, (overlap, overlap + pw - w, overlap, overlap + ph - h), mode="replicate")
    out = torch.empty(1, c, ph, pw)
    qt = torch.tensor([q], dtype=torch.float32)
    net.eval()
    for y0 in range(0, ph, tile):
        for x0 in range(0, pw, tile):
            th, tw = min(tile, ph - y0), min(tile, pw - x0)
            patch = x[:, :, y0:y0 + th + 2 * overlap, x0:x0 + tw + 2 * overlap]
            res = net(patch, qt)
            out[:, :, y0:y0 + th, x0:x0 + tw] = res[:, :, overlap:overlap + th, overlap:overlap + tw]
    res = out[0, :, :h, :w].mul_(255).round_().clamp_(0, 255).to(torch.uint8).numpy().transpose(1, 2, 0)
    return res[:, :, 0] if squeeze else res
