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
def restore(net: RestorationNet, image: np.ndarray, q: float, tile: int = 256, overlap: int | None = None,
            ensemble: bool = False) -> np.ndarray:
    """Restore a uint8 image (H x W, or H x W x C with C = net channels) with
    quality feature ``q``; returns uint8 of the same shape.  ``overlap``
    defaults to the network's ``margin``.

    ``ensemble``: average the network over the 8 rotations and flips of the
    image (self-ensemble, 8x the time).  The image is first padded to whole
    8x8 blocks, so every transform keeps the coding grid where it was."""
    squeeze = image.ndim == 2
    img = image[:, :, None] if squeeze else image
    h, w, c = img.shape
    if c != net.config.channels:
        raise ValueError(f"the network restores {net.config.channels}-channel images, got {c}")
    overlap = net.margin if overlap is None else overlap
    x = torch.from_numpy(np.array(img.transpose(2, 0, 1))).float().div_(255)[None]   # a writable copy
    if ensemble:
        x = torch.nn.functional.pad(x, (0, _round_up(w, 8) - w, 0, _round_up(h, 8) - h), mode="replicate")
        acc = torch.zeros_like(x)
        for k in range(4):
            for flip in (False, True):
                t = torch.rot90(x, k, (2, 3))
                t = t.flip(3) if flip else t
                y = _restore(net, t, q, tile, overlap)
                y = y.flip(3) if flip else y
                acc += torch.rot90(y, -k, (2, 3))
        out = acc.div_(8)[:, :, :h, :w]
    else:
        out = _restore(net, x, q, tile, overlap)
    res = out[0].mul_(255).round_().clamp_(0, 255).to(torch.uint8).numpy().transpose(1, 2, 0)
    return res[:, :, 0] if squeeze else res


def _restore(net, x: torch.Tensor, q: float, tile: int, overlap: int) -> torch.Tensor:
    """The network over a [1, C, H, W] float image, tile by tile; float output."""
    _, c, h, w = x.shape
    # Tiles keep the 8x8 block grid; the margin need only keep the network's
    # own down-sampling grid (a shift by a multiple of it is an exact symmetry).
    m = int(np.lcm(net.multiple, 8))
    tile, overlap = _round_up(tile, m), _round_up(overlap, net.multiple)
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
    return out[:, :, :h, :w]
