"""blockcodec as a Pillow plugin, used through Pillow's own API only."""
from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from PIL import Image

import blockcodec
from conftest import psnr, smooth_image, textured_image

blockcodec.register_pillow()


def _bkc(image: np.ndarray, **params) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="BKC", **params)
    return buf.getvalue()


def test_registration_names_the_format_and_its_extension():
    assert Image.registered_extensions()[".bkc"] == "BKC"
    assert "BKC" in Image.OPEN and "BKC" in Image.SAVE
    blockcodec.register_pillow()   # a second call changes nothing
    assert Image.registered_extensions()[".bkc"] == "BKC"


def test_open_identifies_by_magic_bytes_not_by_name(tmp_path):
    path = tmp_path / "misnamed.dat"
    path.write_bytes(_bkc(smooth_image(24, 40), postfilter="none"))
    with Image.open(path) as im:
        assert (im.format, im.mode, im.size) == ("BKC", "RGB", (40, 24))


def test_open_reads_the_header_only_and_load_decodes(tmp_path, monkeypatch):
    from blockcodec import codec
    calls = []
    real = codec.decode_result
    monkeypatch.setattr(codec, "decode_result", lambda *a, **k: calls.append(1) or real(*a, **k))
    path = tmp_path / "a.bkc"
    path.write_bytes(_bkc(smooth_image(24, 40), postfilter="none"))
    with Image.open(path) as im:
        assert calls == []
        im.load()
        assert calls == [1]


def test_decoded_pixels_are_blockcodecs(tmp_path):
    rgb = textured_image(33, 47)
    data = _bkc(rgb, quality=80, postfilter="none")
    (tmp_path / "a.bkc").write_bytes(data)
    with Image.open(tmp_path / "a.bkc") as im:
        assert np.array_equal(np.asarray(im), blockcodec.decode(data))


def test_gray_streams_open_as_mode_L():
    data = _bkc(smooth_image(16, 16, channels=1), postfilter="none")
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "L"
        assert np.asarray(im).shape == (16, 16)


def test_save_by_extension_with_codec_options(tmp_path):
    rgb = textured_image(40, 48)
    Image.fromarray(rgb).save(tmp_path / "a.bkc", quality=90, subsampling="4:4:4", predictor="planar",
                              postfilter="none")
    data = (tmp_path / "a.bkc").read_bytes()
    assert data[:4] == b"BKCD"
    assert data == blockcodec.encode(rgb, quality=90, subsampling="444", predictor="planar",
                                     postfilter="none")
    with Image.open(tmp_path / "a.bkc") as im:
        assert psnr(np.asarray(im), rgb) > 35


def test_save_refuses_an_unknown_subsampling():
    with pytest.raises(ValueError, match="subsampling"):
        _bkc(smooth_image(8, 8), subsampling="411")


def test_decompression_bomb_check_applies_before_decoding(monkeypatch):
    data = _bkc(smooth_image(40, 40), postfilter="none")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(data))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(Image.DecompressionBombWarning):
            Image.open(io.BytesIO(data))


def test_a_corrupt_stream_is_an_oserror_not_a_crash():
    data = bytearray(_bkc(smooth_image(16, 16), postfilter="none"))
    data[-1] ^= 0xFF   # the CRC no longer matches
    with pytest.raises(OSError, match="CRC"):
        Image.open(io.BytesIO(bytes(data)))


def test_other_formats_are_not_claimed():
    buf = io.BytesIO()
    Image.fromarray(smooth_image(8, 8)).save(buf, format="PNG")
    with Image.open(buf) as im:
        assert im.format == "PNG"
