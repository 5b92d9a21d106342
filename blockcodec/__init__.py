"""blockcodec: a block-predictive image codec.

    >>> import blockcodec
    >>> data = blockcodec.encode(rgb_array, quality=75)      # bytes
    >>> rgb = blockcodec.decode(data)                        # numpy uint8 HxWx3

Every bad input raises ``blockcodec.BlockcodecError`` (a ValueError).
``blockcodec.Codec`` exposes predictions, residuals, coefficients and bit
counts per stage for experiments.
"""
from __future__ import annotations

import numpy as np

from . import postfilter as postfilters, predictors
from .codec import Codec, CodecConfig, Result, decode_result
from . import bitstream
from .bitstream import MAX_PIXELS
from .errors import BlockcodecError
from .images import ConversionWarning, as_image_array
from .metadata import Metadata, MetadataWarning, resolve as _resolve_metadata
from .quantization import Rounding
from .rdoq import DEFAULT_EFFORT

__version__ = "0.2.0"


def encode(image, quality: int = 75, *, subsampling: str = "420", predictor: str = predictors.DEFAULT,
           dc_prediction: bool | None = None, postfilter: str = postfilters.DEFAULT,
           effort: int = DEFAULT_EFFORT, max_pixels: int = MAX_PIXELS, metadata: bool | Metadata = True) -> bytes:
    """Compress a uint8 image (numpy H x W or H x W x 3, or a PIL image) to bytes.
    ``predictor`` is a name from ``blockcodec.predictors.REGISTRY`` (default: the
    shipped BlockCNN); ``postfilter`` is the restoration network the stream asks
    its decoder to apply, a name from ``blockcodec.postfilters.NAMES`` or "none"
    (it does not change the coded bits).  ``effort`` 0..3 trades encode time
    for size (rate-distortion optimized quantization from 1 up; decoding speed
    does not depend on it).  Images over ``max_pixels`` pixels (at
    most the format's 2^27) are refused before any work.  ``metadata``: True
    (default) keeps the ICC profile, EXIF and XMP of a PIL image, False strips
    them, a ``blockcodec.Metadata`` is carried as given.  EXIF orientation
    stays a tag: the pixels are coded as stored."""
    cfg = CodecConfig(quality=quality, subsampling=subsampling, predictor=predictor,
                      dc_prediction=dc_prediction, postfilter=postfilter, effort=effort)
    carried = _resolve_metadata(image, metadata)   # from the PIL image, before it becomes an array
    return Codec(cfg).encode(as_image_array(image, max_pixels), keep_trace=False, metadata=carried).data


def decode(data, *, postfilter: str | None = None, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decompress bytes to a uint8 numpy array (H x W for gray, H x W x 3 for colour).
    ``postfilter``: None runs the post-filter the stream records; a name from
    ``blockcodec.postfilters.NAMES`` or "none" overrides it.  A stream announcing
    more than ``max_pixels`` pixels (default and most: the format's 2^27) is
    refused from its header, before any work."""
    return decode_result(data, postfilter_choice=postfilter, max_pixels=max_pixels).image


def read_metadata(data) -> Metadata:
    """The ICC profile, EXIF and XMP a stream carries, without decoding it
    (the container is checked as for decoding: header, CRC, chunks)."""
    return bitstream.unpack_with_metadata(data)[2]


def register_pillow() -> None:
    """Let Pillow open and save .bkc files (format "BKC"), in the style of
    ``pillow_heif.register_heif_opener()``: after this, ``Image.open("a.bkc")``
    and ``im.save("a.bkc", quality=60)`` work.  See ``blockcodec.pillow_plugin``."""
    from .pillow_plugin import register_pillow as register  # Pillow's plugin machinery loads only when asked

    register()


__all__ = ["encode", "decode", "read_metadata", "register_pillow", "postfilters", "Codec", "CodecConfig", "Result",
           "Rounding", "Metadata", "BlockcodecError", "ConversionWarning", "MetadataWarning", "__version__"]
