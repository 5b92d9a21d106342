"""Turning what users hand us (numpy arrays, PIL images, files) into the 8-bit
gray or RGB arrays the codec codes.

Policy (documented in the README): 8-bit gray and RGB are coded as they are;
alpha is dropped, 16-bit samples are reduced to 8 bits, palette and other modes
are converted to RGB (or gray), each with a warning naming what was lost.
Floating-point arrays, empty images and other shapes are refused.
"""
from __future__ import annotations

import re
import warnings

import numpy as np

from .bitstream import MAX_PIXELS, check_dimensions
from .errors import BlockcodecError


class ConversionWarning(UserWarning):
    """An input was converted to 8-bit gray or RGB with loss."""


def source_bits_per_sample(img) -> int:
    """Bits per sample of the file a PIL image was read from.  Pillow opens
    16-bit RGB(A) PNGs, TIFFs and PPMs as 8-bit "RGB"/"RGBA", so the mode alone
    hides that it dropped the low byte; the file still tells."""
    for tile in getattr(img, "tile", None) or ():   # until load(), the raw mode names the depth
        rawmode = tile.args if isinstance(tile.args, str) else (tile.args or ("",))[0]
        if isinstance(rawmode, str) and ";16" in rawmode:
            return 16
        if tile.codec_name in ("ppm", "ppm_plain") and tile.args[1:] and tile.args[1] > 255:   # PPM's maxval
            return 16
    if img.format == "TIFF":
        bits = img.tag_v2.get(258, 8)   # BitsPerSample, one value per sample
        return max(bits) if isinstance(bits, tuple) else int(bits)
    head = _file_head(img, 512)   # after load(), read from a named file again
    if img.format == "PNG" and head[12:16] == b"IHDR":
        return head[24]
    if img.format == "PPM":
        fields = re.sub(rb"#[^\r\n]*", b" ", head).split()   # magic, width, height, maxval
        if len(fields) > 3 and fields[0] in (b"P3", b"P6") and fields[3].isdigit() and int(fields[3]) > 255:
            return 16
    return 8


def _file_head(img, n: int) -> bytes:
    name = getattr(img, "filename", None)
    if not name:
        return b""
    try:
        with open(name, "rb") as f:
            return f.read(n)
    except OSError:
        return b""


def _from_pil(img) -> np.ndarray:
    mode = img.mode
    bits = source_bits_per_sample(img) if mode in ("RGB", "RGBA") else 8
    if bits > 8:
        warnings.warn(f"{bits}-bit image reduced to 8 bits per sample", ConversionWarning, stacklevel=3)
    if mode in ("L", "RGB"):
        return np.asarray(img)
    if mode == "1":
        return np.asarray(img.convert("L"))
    if mode in ("LA", "La"):
        warnings.warn(f"{mode} image: the alpha channel is dropped", ConversionWarning, stacklevel=3)
        return np.asarray(img.getchannel("L"))
    if mode in ("RGBA", "PA", "RGBa") or (mode == "P" and "transparency" in img.info):
        warnings.warn(f"{mode} image: the alpha channel is dropped", ConversionWarning, stacklevel=3)
        return np.asarray(img.convert("RGBA").convert("RGB") if mode == "RGBa" else img.convert("RGB"))
    if mode == "P":
        return np.asarray(img.convert("RGB"))
    if mode.startswith("I;16") or mode == "I":
        a = np.asarray(img)
        if mode == "I" and a.size and (int(a.min()) < 0 or int(a.max()) > 65535):
            # 32-bit signed samples: without clipping, the uint32 cast and the
            # uint8 cast below would wrap them around silently.
            warnings.warn(f"{mode} image: samples outside 0..65535 clipped", ConversionWarning, stacklevel=3)
            a = np.clip(a, 0, 65535)
        return _reduce_depth(a.astype(np.uint32), int(a.max(initial=0)) > 255 or mode.startswith("I;16"))
    if mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        warnings.warn(f"{mode} image converted to RGB", ConversionWarning, stacklevel=3)
        return np.asarray(img.convert("RGB"))
    raise BlockcodecError(f"unsupported image mode {mode!r}")


def _reduce_depth(a: np.ndarray, sixteen_bit: bool) -> np.ndarray:
    if sixteen_bit:
        warnings.warn("16-bit image reduced to 8 bits per sample", ConversionWarning, stacklevel=4)
        return ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    return a.astype(np.uint8)


def as_image_array(image, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Return a uint8 array H x W (gray) or H x W x 3 (RGB), C-contiguous.
    Images over ``max_pixels`` (at most the format's MAX_PIXELS) are refused
    before anything is converted."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        check_dimensions(max(image.width, 1), max(image.height, 1), max_pixels)  # empty: refused below
        a = _from_pil(image)
    elif isinstance(image, np.ndarray):
        a = image
        if a.ndim in (2, 3) and a.shape[0] and a.shape[1]:
            check_dimensions(a.shape[1], a.shape[0], max_pixels)   # before converting anything
    else:
        raise BlockcodecError(f"expected a numpy array or PIL image, got {type(image).__name__}")

    if a.dtype.kind == "u" and a.dtype.itemsize == 2:   # either byte order
        a = _reduce_depth(a, True)
    elif a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif a.dtype != np.uint8:
        raise BlockcodecError(f"unsupported array dtype {a.dtype} (expected uint8 or uint16)")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 3 and a.shape[2] in (2, 4):
        warnings.warn("the alpha channel is dropped", ConversionWarning, stacklevel=2)
        a = a[:, :, 0] if a.shape[2] == 2 else a[:, :, :3]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)):
        raise BlockcodecError(f"unsupported image shape {a.shape} (expected HxW or HxWx3)")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise BlockcodecError(f"empty image ({a.shape[1]}x{a.shape[0]})")
    return np.ascontiguousarray(a)
