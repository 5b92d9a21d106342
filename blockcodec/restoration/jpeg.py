"""Standalone JPEG artifact removal: restore a JPEG file's decoded image.

The conditioning comes from the file itself: Pillow exposes the JPEG's
quantization tables, and each plane is restored with the quality feature of
its own table (table 0 for luminance, table 1 for chroma when present).
Colour JPEGs are decoded to YCbCr without Pillow's RGB conversion, so the
network sees the planes the JPEG decoder produced; the result is converted
to RGB once, at the end.
"""
from __future__ import annotations

import io

import numpy as np

from ..bitstream import MAX_PIXELS, check_dimensions
from ..errors import BlockcodecError
from .base import RestorationNet, quality_feature
from .tiling import restore


def restore_jpeg(data: bytes, net: RestorationNet, ensemble: bool = False,
                 max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """uint8 HxW (grayscale JPEG) or HxWx3 RGB: the restored image
    (``ensemble``: the 8-transform self-ensemble of ``tiling.restore``).  A
    JPEG of more than ``max_pixels`` is refused from its header."""
    from PIL import Image, UnidentifiedImageError

    try:
        im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise BlockcodecError(f"refusing the JPEG: {exc}") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise BlockcodecError(f"not an image Pillow can read ({exc})") from None
    check_dimensions(im.width, im.height, max_pixels)   # before any pixel is decoded
    if im.format != "JPEG":
        raise BlockcodecError(f"not a JPEG file (Pillow reads it as {im.format or 'unknown'})")
    tables = getattr(im, "quantization", None) or {}
    if 0 not in tables:
        raise BlockcodecError("JPEG file without a luminance quantization table")
    if im.mode == "L":
        planes, ids = [im], [0]
    elif im.mode == "RGB":
        im.draft("YCbCr", im.size)       # decode to YCbCr, no colour conversion
        try:
            planes = list(im.convert("YCbCr").split()) if im.mode != "YCbCr" else list(im.split())
        except OSError as exc:
            raise BlockcodecError(f"corrupt JPEG: {exc}") from None
        ids = [0, 1 if 1 in tables else 0, 1 if 1 in tables else 0]
    else:
        raise BlockcodecError(f"JPEG colour mode {im.mode} is not supported (grayscale and YCbCr are)")
    out = []
    for plane, table in zip(planes, ids):
        try:
            arr = np.asarray(plane)
        except OSError as exc:
            raise BlockcodecError(f"corrupt JPEG: {exc}") from None
        out.append(restore(net, arr, quality_feature(np.asarray(tables[table])), ensemble=ensemble))
    if len(out) == 1:
        return out[0]
    ycc = Image.merge("YCbCr", [Image.fromarray(p) for p in out])
    return np.asarray(ycc.convert("RGB"))
