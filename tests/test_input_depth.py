"""16-bit colour inputs warn that they were reduced to 8 bits, as 16-bit gray does.

Pillow opens 16-bit RGB(A) PNGs and TIFFs as 8-bit "RGB"/"RGBA" without a word,
so blockcodec reads the depth from the file itself (PNG IHDR, TIFF
BitsPerSample).  The files are written by hand: Pillow cannot write them.
"""
from __future__ import annotations

import struct
import subprocess
import sys
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

import blockcodec
from blockcodec import ConversionWarning, cli


def png16(array: np.ndarray) -> bytes:
    """A 16-bit RGB (3 channels) or RGBA (4) PNG."""
    h, w, c = array.shape

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(b"\0" + array[y].astype(">u2").tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, {3: 2, 4: 6}[c], 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def tiff16(array: np.ndarray) -> bytes:
    """An uncompressed little-endian 16-bit RGB(A) TIFF."""
    h, w, c = array.shape
    pixels = array.astype("<u2").tobytes()
    bits_at = 8
    pixels_at = bits_at + 2 * c
    ifd_at = pixels_at + len(pixels)
    short, long_ = 3, 4
    tags = [(256, long_, 1, w), (257, long_, 1, h), (258, short, c, bits_at), (259, short, 1, 1),
            (262, short, 1, 2), (273, long_, 1, pixels_at), (277, short, 1, c), (278, long_, 1, h),
            (279, long_, 1, len(pixels)), (284, short, 1, 1)]
    if c == 4:
        tags.append((338, short, 1, 2))   # ExtraSamples: unassociated alpha
    tags.sort()
    ifd = struct.pack("<H", len(tags)) + b"".join(
        struct.pack("<HHI", tag, kind, count) + (struct.pack("<HH", value, 0) if kind == short and count == 1
                                                 else struct.pack("<I", value))
        for tag, kind, count, value in tags) + struct.pack("<I", 0)
    return b"II*\0" + struct.pack("<I", ifd_at) + struct.pack(f"<{c}H", *[16] * c) + pixels + ifd


def ppm16(array: np.ndarray) -> bytes:
    """A 16-bit binary PPM (maxval 65535); Pillow reads it as RGB without the low bytes."""
    h, w, _ = array.shape
    return f"P6\n{w} {h}\n65535\n".encode() + array.astype(">u2").tobytes()


def _image16(channels: int) -> np.ndarray:
    return np.random.default_rng(channels).integers(0, 65536, (12, 20, channels)).astype(np.uint16)


FILES = {"png-rgb": (png16, 3), "png-rgba": (png16, 4), "tiff-rgb": (tiff16, 3), "tiff-rgba": (tiff16, 4),
         "ppm-rgb": (ppm16, 3)}
EXTENSIONS = {png16: ".png", tiff16: ".tif", ppm16: ".ppm"}


@pytest.fixture(params=list(FILES))
def sixteen_bit_file(request, tmp_path):
    write, channels = FILES[request.param]
    path = tmp_path / ("img" + EXTENSIONS[write])
    path.write_bytes(write(_image16(channels)))
    return path


def _depth_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, ConversionWarning)
            and "16-bit" in str(w.message)]


def test_pillow_really_hides_the_depth(sixteen_bit_file):
    with Image.open(sixteen_bit_file) as im:
        assert im.mode in ("RGB", "RGBA")


@pytest.mark.parametrize("loaded", [False, True], ids=["opened", "loaded"])
def test_encoding_a_16_bit_colour_image_warns(sixteen_bit_file, loaded):
    with Image.open(sixteen_bit_file) as im:
        if loaded:
            im.load()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            blockcodec.encode(im, postfilter="none", predictor="planar")
    assert _depth_warnings(caught) == ["16-bit image reduced to 8 bits per sample"]


def test_8_bit_colour_files_do_not_warn(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(_image16(3).astype(np.uint8)).save(path)
    with Image.open(path) as im, warnings.catch_warnings():
        warnings.simplefilter("error", ConversionWarning)
        blockcodec.encode(im, postfilter="none", predictor="planar")


def test_cli_warns_for_a_file_and_for_stdin(sixteen_bit_file, tmp_path, capsys):
    assert cli.main(["encode", str(sixteen_bit_file), "-o", str(tmp_path / "o.bkc"),
                     "--predictor", "planar"]) == 0
    assert "16-bit image reduced to 8 bits per sample" in capsys.readouterr().err
    proc = subprocess.run([sys.executable, "-m", "blockcodec", "encode", "-", "-o", "-", "--predictor", "planar"],
                          input=sixteen_bit_file.read_bytes(), capture_output=True)
    assert proc.returncode == 0 and proc.stdout[:4] == b"BKCD"
    assert "blockcodec: warning: <stdin>: 16-bit image reduced to 8 bits per sample" in proc.stderr.decode()
