"""One small adapter per codec: encode 8-bit RGB to bytes, decode back to 8-bit RGB.

Every third-party import is done lazily inside the adapter, so a missing optional
library only removes its own curve. Adapters are plain picklable objects, so the
process pool can ship them to workers.

Timing policy: every anchor is pinned to one thread (AVIF max_threads=1, JPEG XL
numthreads=1, x265 pools=1/frame-threads=1, libde265 1 decode thread; libjpeg-turbo,
libwebp and OpenJPEG-through-Pillow are single-threaded anyway). Per-image times are
then comparable across codecs, and --jobs N scales the run instead of N codecs
fighting over two cores.
"""

from __future__ import annotations

import io
from typing import Callable

import numpy as np


class CodecUnavailable(RuntimeError):
    """The library behind an adapter is missing or unusable; the curve is skipped."""


class Codec:
    name: str = ""            # curve label and cache namespace
    param_name: str = ""      # what the sweep varies, for the table and CSV
    sweep: tuple = ()         # default parameter points, low rate to high rate
    cacheable: bool = True    # anchors only; blockcodec changes under our feet
    library: str = ""         # human-readable provenance for the table

    def check(self) -> None:
        """Raise CodecUnavailable with a one-line reason if this codec cannot run."""

    def version(self) -> str:
        """Versions of everything that can change the bitstream; part of the cache key."""
        return ""

    def settings(self) -> str:
        """Fixed (non-swept) encoder settings; part of the cache key and the table."""
        return ""

    def encode(self, rgb: np.ndarray, param) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes) -> np.ndarray:
        raise NotImplementedError


def _require(module: str, pip_name: str):
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise CodecUnavailable(f"{module} not importable ({exc}); install it with `pip install {pip_name}`") from None


def _pil_save(rgb: np.ndarray, fmt: str, **opts) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, fmt, **opts)
    return buf.getvalue()


def _pil_load(data: bytes) -> np.ndarray:
    from PIL import Image
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


class JPEG(Codec):
    name = "jpeg"
    param_name = "quality"
    # q5 is about the lowest rate libjpeg reaches (~0.23 bpp on Kodak); q85 ~2 bpp.
    sweep = (5, 10, 15, 20, 30, 40, 50, 60, 75, 85)
    library = "simplejpeg (libjpeg-turbo)"

    def check(self):
        _require("simplejpeg", "simplejpeg")

    def version(self):
        import simplejpeg
        return f"simplejpeg {simplejpeg.__version__}"

    def settings(self):
        return "4:2:0, standard quant tables + Huffman tables, accurate integer DCT, fancy upsampling"

    def encode(self, rgb, q):
        import simplejpeg
        # fastdct=False: the accurate islow DCT is what a quality comparison should use.
        return simplejpeg.encode_jpeg(np.ascontiguousarray(rgb), quality=int(q), colorspace="RGB",
                                      colorsubsampling="420", fastdct=False)

    def decode(self, data):
        import simplejpeg
        return simplejpeg.decode_jpeg(data, colorspace="RGB", fastdct=False, fastupsample=False)


class WebP(Codec):
    name = "webp"
    param_name = "quality"
    sweep = (0, 5, 15, 30, 45, 60, 75, 85, 90)
    library = "Pillow (libwebp)"

    def check(self):
        from PIL import features
        if not features.check("webp"):
            raise CodecUnavailable("this Pillow build has no WebP support")

    def version(self):
        import PIL
        from PIL import features
        return f"Pillow {PIL.__version__}, libwebp {features.version('webp')}"

    def settings(self):
        return "lossy, method=6, default sns/filter (4:2:0)"

    def encode(self, rgb, q):
        return _pil_save(rgb, "WEBP", quality=int(q), method=6, lossless=False)

    def decode(self, data):
        return _pil_load(data)


class JPEG2000(Codec):
    name = "jpeg2000"
    param_name = "target_bpp"
    # Rate-controlled, so the sweep is the rate itself.
    sweep = (0.1, 0.15, 0.25, 0.375, 0.5, 0.75, 1.0, 1.5, 2.0)
    library = "Pillow (OpenJPEG)"

    def check(self):
        from PIL import features
        if not features.check("jpg_2000"):
            raise CodecUnavailable("this Pillow build has no JPEG 2000 (OpenJPEG) support")

    def version(self):
        import PIL
        from PIL import features
        return f"Pillow {PIL.__version__}, OpenJPEG {features.version('jpg_2000')}"

    def settings(self):
        return ("J2K codestream, irreversible 9/7 DWT, MCT (RGB->YCbCr) on, "
                "one quality layer at the target rate, OpenJPEG defaults otherwise")

    def encode(self, rgb, target_bpp):
        # OpenJPEG's "rates" are compression ratios against the raw 24 bpp image.
        # irreversible=True matters: Pillow's default is the lossless 5/3 wavelet,
        # which is noticeably worse when truncated to a lossy rate.
        return _pil_save(rgb, "JPEG2000", no_jp2=True, irreversible=True, mct=1,
                         quality_mode="rates", quality_layers=[24.0 / float(target_bpp)])

    def decode(self, data):
        return _pil_load(data)


class HEIC(Codec):
    name = "heic"
    param_name = "quality"
    sweep = (10, 18, 25, 30, 35, 40, 45, 50, 55)
    library = "pillow-heif (libheif + x265, libde265 decoder)"
    # Threading only: x265 produces the same bitstream with one thread.
    _enc_params = {"x265:pools": "1", "x265:frame-threads": "1"}

    def check(self):
        ph = _require("pillow_heif", "pillow-heif")
        if "x265" not in str(ph.libheif_info().get("encoders", {})):
            raise CodecUnavailable("pillow-heif has no x265 HEVC encoder")

    def version(self):
        import pillow_heif
        info = pillow_heif.libheif_info()
        return (f"pillow-heif {pillow_heif.__version__}, libheif {info.get('libheif')}, "
                f"{info.get('HEIF')}, decoder {info.get('decoders', {}).get('libde265', '?')}")

    def settings(self):
        return ("libheif defaults: 4:2:0, x265 preset slow, tune ssim, BT.601 full range; "
                "single-threaded")

    def encode(self, rgb, q):
        import pillow_heif
        rgb = np.ascontiguousarray(rgb)
        heif = pillow_heif.from_bytes("RGB", (rgb.shape[1], rgb.shape[0]), rgb.tobytes())
        buf = io.BytesIO()
        heif.save(buf, quality=int(q), enc_params=dict(self._enc_params))
        return buf.getvalue()

    def decode(self, data):
        import pillow_heif
        pillow_heif.options.DECODE_THREADS = 1
        heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True)
        return np.asarray(heif.to_pillow().convert("RGB"))


class AVIF(Codec):
    name = "avif"
    param_name = "quality"
    sweep = (10, 20, 30, 40, 50, 60, 70, 80, 85)
    library = "Pillow (libavif: aom encoder, dav1d decoder)"
    speed = 6  # libavif's default; ~0.35 s/image single-threaded here

    def check(self):
        from PIL import features
        if not features.check("avif"):
            raise CodecUnavailable("this Pillow build has no AVIF support")

    def version(self):
        import PIL
        from PIL import _avif
        return f"Pillow {PIL.__version__}, libavif {_avif.libavif_version}, {_avif.codec_versions()}"

    def settings(self):
        return f"aom speed {self.speed}, 4:2:0, full range, single-threaded"

    def encode(self, rgb, q):
        return _pil_save(rgb, "AVIF", quality=int(q), speed=self.speed, subsampling="4:2:0",
                         max_threads=1)

    def decode(self, data):
        # The decoder's thread count is only settable through this module global.
        from PIL import AvifImagePlugin
        AvifImagePlugin.DEFAULT_MAX_THREADS = 1
        return _pil_load(data)


class JPEGXL(Codec):
    name = "jxl"
    param_name = "distance"
    # Butteraugli distance: larger = fewer bits. Beyond ~15 libjxl switches to
    # downsampled encoding and gets ~4x slower, so the sweep stops there (~0.19 bpp).
    sweep = (15.0, 10.0, 7.0, 5.0, 3.5, 2.5, 1.8, 1.3, 1.0)
    library = "imagecodecs (libjxl)"
    effort = 7  # libjxl's default; ~0.25 s/image single-threaded here

    def check(self):
        ic = _require("imagecodecs", "imagecodecs")
        if not getattr(ic, "JPEGXL", None) or not ic.JPEGXL.available:
            raise CodecUnavailable("this imagecodecs build has no JPEG XL support")

    def version(self):
        import imagecodecs
        return f"imagecodecs {imagecodecs.__version__}, {imagecodecs.jpegxl_version()}"

    def settings(self):
        return f"lossy (VarDCT, XYB), effort {self.effort}, single-threaded"

    def encode(self, rgb, distance):
        import imagecodecs
        return imagecodecs.jpegxl_encode(np.ascontiguousarray(rgb), effort=self.effort,
                                         distance=float(distance), lossless=False, numthreads=1)

    def decode(self, data):
        import imagecodecs
        return imagecodecs.jpegxl_decode(data, numthreads=1)


def _default_variant() -> str:
    """The codec's default configuration, as a variant name."""
    try:
        from blockcodec import postfilter, predictors
        return f"{predictors.DEFAULT}+{postfilter.DEFAULT}"
    except Exception:  # check() reports why blockcodec is unusable
        return "default"


class BlockCodec(Codec):
    param_name = "quality"
    sweep = (10, 20, 30, 40, 50, 60, 70, 80, 90)
    cacheable = False
    library = "blockcodec (this repo)"

    def __init__(self, predictor: str = "default", subsampling: str = "420", qualities=None):
        # "PREDICTOR" or "PREDICTOR+POSTFILTER": a bare name is the codec without post-filter;
        # "default" is what `blockcodec encode` does with no options.
        if predictor == "default":
            predictor = _default_variant()
        self.predictor, _, postfilter = predictor.partition("+")
        self.postfilter = postfilter or "none"
        self.subsampling = subsampling
        self.name = f"blockcodec-{predictor}"
        if qualities:
            self.sweep = tuple(int(q) for q in qualities)

    def check(self):
        try:
            import blockcodec
        except Exception as exc:  # a half-written package can fail with anything
            raise CodecUnavailable(f"`import blockcodec` failed: {type(exc).__name__}: {exc}") from None
        # Until its __init__.py exists, blockcodec/ imports as an empty namespace package.
        if not (callable(getattr(blockcodec, "encode", None)) and callable(getattr(blockcodec, "decode", None))):
            raise CodecUnavailable("blockcodec has no encode()/decode() yet")

    def version(self):
        import blockcodec
        return f"blockcodec {getattr(blockcodec, '__version__', '?')}"

    def settings(self):
        return f"predictor={self.predictor}, subsampling={self.subsampling}, post-filter={self.postfilter}"

    def encode(self, rgb, q):
        import blockcodec
        return bytes(blockcodec.encode(rgb, quality=int(q), predictor=self.predictor,
                                       subsampling=self.subsampling, postfilter=self.postfilter))

    def decode(self, data):
        import blockcodec
        return blockcodec.decode(data)


ANCHORS: dict[str, Callable[[], Codec]] = {
    "jpeg": JPEG,
    "webp": WebP,
    "jpeg2000": JPEG2000,
    "heic": HEIC,
    "avif": AVIF,
    "jxl": JPEGXL,
}

# Accepted spellings on the command line.
ALIASES = {"jpg": "jpeg", "j2k": "jpeg2000", "jp2": "jpeg2000", "heif": "heic", "jpegxl": "jxl"}

ALL_CODECS = list(ANCHORS) + ["blockcodec"]
