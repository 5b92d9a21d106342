"""The container: a fixed header, the range-coded payload, an optional
metadata section (ICC, EXIF, XMP chunks; metadata.py) and a CRC32.

See docs/FORMAT.md for the normative description.  Everything the header
claims is checked before anything is allocated from it.
"""
from __future__ import annotations

import numbers
import struct
import zlib
from dataclasses import dataclass

from . import metadata as _metadata
from .errors import BlockcodecError

MAGIC = b"BKCD"
VERSION = 2
# Version 1 (blockcodec 0.1) coded with other entropy contexts and static
# tables; its streams are refused with a message rather than misdecoded.
OLD_VERSIONS = {1: "blockcodec 0.1"}

# Colour modes.
GRAY, YCBCR420, YCBCR444 = 0, 1, 2
MODE_NAMES = {GRAY: "gray", YCBCR420: "ycbcr420", YCBCR444: "ycbcr444"}

FLAG_DC_PREDICTION = 0x01
# A metadata section follows the payload.  It frames the stream rather than
# configuring the decoder, so pack() and unpack() own it and Header.flags
# never carries it.
FLAG_METADATA = 0x02
_FLAGS = FLAG_DC_PREDICTION | FLAG_METADATA

# Guard against decompression bombs: like Pillow's limit, checked before allocation.
MAX_DIMENSION = 1 << 16
MAX_PIXELS = 1 << 27   # 134 MP; Pillow refuses past 179 MP by default

# magic, version, mode, flags, width, height, quality, predictor id, predictor
# hash, postfilter id, postfilter hash, entropy tables hash, payload length
_HEADER = struct.Struct("<4sBBBIIBB4sB4s4sI")
HEADER_SIZE = _HEADER.size
CRC_SIZE = 4


@dataclass(frozen=True)
class Header:
    width: int
    height: int
    mode: int
    quality: int
    predictor_id: int
    predictor_hash: bytes
    postfilter_id: int = 0
    postfilter_hash: bytes = bytes(4)
    tables_hash: bytes = bytes(4)
    flags: int = 0

    @property
    def dc_prediction(self) -> bool:
        return bool(self.flags & FLAG_DC_PREDICTION)


def check_dimensions(width: int, height: int, max_pixels: int = MAX_PIXELS) -> None:
    """The format's limits, then the caller's own ``max_pixels`` (at most MAX_PIXELS)."""
    if not (1 <= width <= MAX_DIMENSION and 1 <= height <= MAX_DIMENSION):
        raise BlockcodecError(f"image size {width}x{height} outside 1..{MAX_DIMENSION} per side")
    if width * height > MAX_PIXELS:
        raise BlockcodecError(f"image of {width * height} pixels exceeds the limit of {MAX_PIXELS}")
    if width * height > check_pixel_limit(max_pixels):
        raise BlockcodecError(f"image of {width * height} pixels exceeds the limit of {max_pixels} "
                              f"set by max_pixels (--max-pixels)")


def check_pixel_limit(max_pixels) -> int:
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, numbers.Integral) \
            or not 1 <= max_pixels <= MAX_PIXELS:
        raise BlockcodecError(f"max_pixels must be an integer 1..{MAX_PIXELS} (the format's limit), "
                              f"got {max_pixels!r}")
    return int(max_pixels)


def pack(header: Header, payload: bytes, metadata: _metadata.Metadata | None = None) -> bytes:
    """The stream; without metadata it has no metadata section and no flag."""
    check_dimensions(header.width, header.height)
    section = _metadata.pack(metadata) if metadata else b""
    flags = (header.flags & ~FLAG_METADATA) | (FLAG_METADATA if section else 0)
    head = _HEADER.pack(
        MAGIC, VERSION, header.mode, flags, header.width, header.height, header.quality,
        header.predictor_id, header.predictor_hash, header.postfilter_id, header.postfilter_hash,
        header.tables_hash, len(payload),
    )
    body = head + payload + section
    return body + struct.pack("<I", zlib.crc32(body))


def unpack(data: bytes) -> tuple[Header, bytes]:
    """Parse and validate a stream (its metadata section included); returns
    the header and the payload."""
    header, payload, _ = unpack_with_metadata(data)
    return header, payload


def unpack_with_metadata(data: bytes) -> tuple[Header, bytes, _metadata.Metadata]:
    """Parse and validate a stream; returns the header, the payload and the metadata."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BlockcodecError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < 4 or data[:4] != MAGIC:
        raise BlockcodecError("not a blockcodec stream (bad magic number)")
    if len(data) < HEADER_SIZE + CRC_SIZE:
        raise BlockcodecError("truncated stream: incomplete header")
    (_, version, mode, flags, width, height, quality, pid, phash, fid, fhash, thash,
     length) = _HEADER.unpack_from(data)
    if version in OLD_VERSIONS:
        raise BlockcodecError(f"stream version {version} was written by {OLD_VERSIONS[version]}; this decoder "
                              f"reads version {VERSION} only (decode it with {OLD_VERSIONS[version]}, or re-encode "
                              f"the original)")
    if version != VERSION:
        raise BlockcodecError(f"unsupported stream version {version} (this decoder reads version {VERSION})")
    if mode not in MODE_NAMES:
        raise BlockcodecError(f"corrupt stream: unknown colour mode {mode}")
    if flags & ~_FLAGS:
        raise BlockcodecError(f"corrupt stream: unknown flags 0x{flags:02x}")
    if not 1 <= quality <= 100:
        raise BlockcodecError(f"corrupt stream: quality {quality} outside 1..100")
    try:
        check_dimensions(width, height)
    except BlockcodecError as exc:
        raise BlockcodecError(f"corrupt stream: {exc}") from None
    expected = HEADER_SIZE + length + CRC_SIZE
    if len(data) < expected:
        raise BlockcodecError(f"truncated stream: {len(data)} bytes, header announces {expected}")
    if len(data) > expected and not flags & FLAG_METADATA:
        raise BlockcodecError(f"corrupt stream: {len(data) - expected} unexpected bytes after the end")
    end = len(data) - CRC_SIZE            # the metadata section, if any, fills [HEADER_SIZE + length, end)
    (crc,) = struct.unpack_from("<I", data, end)
    if zlib.crc32(memoryview(data)[:end]) != crc:
        raise BlockcodecError("corrupt stream: CRC32 mismatch")
    metadata = _metadata.Metadata()
    if flags & FLAG_METADATA:
        metadata = _metadata.unpack(memoryview(data)[HEADER_SIZE + length: end])
    header = Header(width, height, mode, quality, pid, phash, fid, fhash, thash, flags & ~FLAG_METADATA)
    return header, data[HEADER_SIZE: HEADER_SIZE + length], metadata
