"""A picture to judge by: the original, blockcodec and JPEG at the same size.

``blockcodec compare photo.png -q 50`` codes the whole image with blockcodec
(decoded as users see it, post-filter included), then JPEG (libjpeg-turbo,
4:2:0) at the quality whose file is nearest in size, and lays out the same
crop of the three side by side, enlarged without smoothing so that blocking
and ringing stay visible.  Under each panel: the file size in bytes, bits per
pixel and PSNR over the whole image.
"""
from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

import numpy as np

from .errors import BlockcodecError

DEFAULT_CROP = 256     # a centred square of this side when no --crop is given
GAP = 12               # pixels between panels and around the labels


@dataclass
class Panel:
    title: str
    pixels: np.ndarray          # the whole decoded image
    size: int | None = None     # file bytes; None for the original
    psnr: float | None = None


def parse_crop(spec: str | None, width: int, height: int) -> tuple[int, int, int, int]:
    """(x, y, w, h) from 'WxH+X+Y' or 'WxH' (centred), clipped to the image;
    None: a centred DEFAULT_CROP square."""
    if spec is None:
        w, h = min(width, DEFAULT_CROP), min(height, DEFAULT_CROP)
        return (width - w) // 2, (height - h) // 2, w, h
    m = re.fullmatch(r"(\d+)x(\d+)(?:\+(\d+)\+(\d+))?", spec.strip())
    if not m or int(m[1]) < 1 or int(m[2]) < 1:
        raise BlockcodecError(f"crop must be WxH or WxH+X+Y (e.g. 256x256+100+50), got {spec!r}")
    w, h = int(m[1]), int(m[2])
    if m[3] is None:
        x, y = max(0, (width - w) // 2), max(0, (height - h) // 2)
    else:
        x, y = int(m[3]), int(m[4])
    if x >= width or y >= height:
        raise BlockcodecError(f"crop {spec!r} starts outside the {width}x{height} image")
    return x, y, min(w, width - x), min(h, height - y)


def jpeg_encode(image: np.ndarray, quality: int) -> bytes:
    import simplejpeg

    if image.ndim == 2:
        return simplejpeg.encode_jpeg(np.ascontiguousarray(image[..., None]), quality, colorspace="GRAY")
    return simplejpeg.encode_jpeg(np.ascontiguousarray(image), quality, colorspace="RGB", colorsubsampling="420")


def jpeg_decode(data: bytes, gray: bool) -> np.ndarray:
    import simplejpeg

    pixels = simplejpeg.decode_jpeg(data, colorspace="GRAY" if gray else "RGB")
    return pixels[..., 0] if gray else pixels


def jpeg_of_size(image: np.ndarray, nbytes: int) -> tuple[bytes, int]:
    """(JPEG, quality) with the file size nearest to ``nbytes``.  JPEG's size
    grows with its quality, so bisect for the last quality at or under the
    size, then take it or the next one, whichever is nearer."""
    at = functools.cache(lambda q: jpeg_encode(image, q))
    lo, hi = 1, 100
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(at(mid)) <= nbytes:
            lo = mid
        else:
            hi = mid - 1
    best = min((q for q in (lo, lo + 1) if q <= 100), key=lambda q: abs(len(at(q)) - nbytes))
    return at(best), best


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)   # scalable when Pillow has FreeType
    except TypeError:   # older Pillow: the fixed bitmap font
        return ImageFont.load_default()


def render(panels: list[Panel], crop: tuple[int, int, int, int], zoom: int) -> "Image.Image":
    """The panels' crops side by side, each with a title and its numbers below."""
    from PIL import Image, ImageDraw

    x, y, w, h = crop
    height, width = panels[0].pixels.shape[:2]
    font = _font(max(12, min(18, w * zoom // 24)))
    lines = []
    for p in panels:
        if p.size is None:
            stats = f"{width}x{height}, crop {w}x{h}+{x}+{y}, x{zoom}"
        else:
            db = "inf" if math.isinf(p.psnr) else f"{p.psnr:.2f}"
            stats = f"{p.size:,} bytes, {p.size * 8 / (width * height):.3f} bpp, PSNR {db} dB"
        lines.append((p.title, stats))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_height = max(probe.textbbox((0, 0), "Hg", font=font)[3], 10) + 4
    text_width = max(probe.textbbox((0, 0), s, font=font)[2] for pair in lines for s in pair)
    panel_width = max(w * zoom, text_width)
    sheet = Image.new("RGB", (GAP + len(panels) * (panel_width + GAP), GAP + h * zoom + GAP + 2 * line_height + GAP),
                      "white")
    draw = ImageDraw.Draw(sheet)
    for i, (p, (title, stats)) in enumerate(zip(panels, lines)):
        left = GAP + i * (panel_width + GAP)
        tile = Image.fromarray(np.ascontiguousarray(p.pixels[y:y + h, x:x + w])).convert("RGB")
        sheet.paste(tile.resize((w * zoom, h * zoom), Image.NEAREST), (left, GAP))
        top = GAP + h * zoom + GAP
        draw.text((left, top), title, fill="black", font=font)
        draw.text((left, top + line_height), stats, fill=(60, 60, 60), font=font)
    return sheet


def compare(image: np.ndarray, quality: int, *, crop: str | None = None, zoom: int = 2,
            subsampling: str = "420", predictor: str | None = None, postfilter: str | None = None):
    """The comparison sheet (a PIL image) and its panels."""
    from . import decode, encode, postfilter as postfilters, predictors
    from .cli import psnr

    predictor = predictor or predictors.DEFAULT
    postfilter = postfilter or postfilters.DEFAULT
    box = parse_crop(crop, image.shape[1], image.shape[0])
    data = encode(image, quality, subsampling=subsampling, predictor=predictor, postfilter=postfilter)
    ours = decode(data)
    jpeg, jpeg_quality = jpeg_of_size(image, len(data))
    theirs = jpeg_decode(jpeg, image.ndim == 2)
    panels = [
        Panel("original", image),
        Panel(f"blockcodec q{quality} ({predictor}, post-filter {postfilter})", ours, len(data), psnr(image, ours)),
        Panel(f"JPEG q{jpeg_quality} (libjpeg-turbo, nearest size)", theirs, len(jpeg), psnr(image, theirs)),
    ]
    return render(panels, box, zoom), panels
