"""Round trips through the public API, and what inputs are accepted or refused.

Specification:
  * ``decode(encode(x))`` returns an image of x's shape (HxW gray, HxWx3
    colour) and dtype uint8, in every mode, for every size, quality,
    predictor and DC-prediction setting;
  * the encoder's reconstruction *is* the decoded image before any
    post-filter: ``decode(Codec(cfg).encode(x).data, postfilter="none") ==
    Codec(cfg).encode(x).image`` bit for bit (the post-filter, outside the
    coding loop, is specified in test_postfilter.py);
  * accepted inputs are 8-bit gray/RGB arrays and PIL images; lossy
    conversions (alpha dropped, 16 -> 8 bits) emit ``ConversionWarning``;
  * everything else raises ``BlockcodecError``, a ``ValueError``.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

import blockcodec
from blockcodec import BlockcodecError, Codec, CodecConfig, ConversionWarning, bitstream, predictors, quantization
from conftest import noise_image, psnr, smooth_image, textured_image

PREDICTORS = sorted(predictors.REGISTRY)
MODES = {  # name -> (channels, subsampling, header mode)
    "gray": (1, "420", bitstream.GRAY),
    "rgb420": (3, "420", bitstream.YCBCR420),
    "rgb444": (3, "444", bitstream.YCBCR444),
}


def roundtrip(img, **cfg):
    """Encode with a Codec, decode the bytes without post-filter; check the
    encoder's reconstruction equals the decoded image exactly and return both."""
    res = Codec(CodecConfig(**cfg)).encode(img)
    out = blockcodec.decode(res.data, postfilter="none")
    assert out.dtype == np.uint8
    assert out.shape == res.image.shape
    np.testing.assert_array_equal(out, res.image)
    return res, out


def expected_shape(img: np.ndarray) -> tuple[int, ...]:
    return img.shape[:2] if img.ndim == 2 else img.shape[:2] + (3,)


# ----------------------------------------------------------------- round trips

@pytest.mark.parametrize("dc_prediction", [None, False, True], ids=["dc-auto", "dc-off", "dc-on"])
@pytest.mark.parametrize("predictor", PREDICTORS)
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("quality", [1, 37, 75, 100])
def test_decoded_equals_encoder_reconstruction(mode, predictor, dc_prediction, quality):
    channels, subsampling, header_mode = MODES[mode]
    img = textured_image(27, 42, channels, seed=quality)
    res, out = roundtrip(img, quality=quality, subsampling=subsampling, predictor=predictor,
                         dc_prediction=dc_prediction)
    assert out.shape == img.shape
    # The header records what the decoder needs.
    h = blockcodec.decode_result(res.data).header
    assert h == res.header
    assert (h.width, h.height, h.mode, h.quality) == (42, 27, header_mode, quality)
    assert h.predictor_id == predictors.id_of(predictor)
    auto = not predictors.get(predictor).causal
    assert h.dc_prediction == (auto if dc_prediction is None else dc_prediction)
    # The one-call API produces the same bytes as the Codec object.
    assert blockcodec.encode(img, quality, subsampling=subsampling, predictor=predictor,
                             dc_prediction=dc_prediction) == res.data
    # And Codec.decode agrees with blockcodec.decode.
    np.testing.assert_array_equal(Codec().decode(res.data, postfilter="none").image, out)


@pytest.mark.parametrize("mode", list(MODES))
def test_odd_sizes(mode, odd_size):
    channels, subsampling, _ = MODES[mode]
    h, w = odd_size
    for quality in (1, 60, 100):
        img = textured_image(h, w, channels, seed=h * 100 + w)
        _, out = roundtrip(img, quality=quality, subsampling=subsampling)
        assert out.shape == img.shape
        assert out.dtype == np.uint8


@pytest.mark.parametrize("predictor", PREDICTORS)
def test_odd_sizes_every_predictor(predictor, odd_size):
    h, w = odd_size
    img = noise_image(h, w, 3, seed=7)
    _, out = roundtrip(img, quality=50, predictor=predictor)
    assert out.shape == (h, w, 3)


@pytest.mark.parametrize("quality", [1, 2, 10, 49, 50, 51, 90, 99, 100])
def test_every_quality_region(quality, textured_rgb):
    _, out = roundtrip(textured_rgb, quality=quality)
    assert out.shape == textured_rgb.shape


def test_longest_side_allowed():
    """A side of exactly MAX_DIMENSION pixels is accepted."""
    img = noise_image(1, bitstream.MAX_DIMENSION, 1, seed=3)
    _, out = roundtrip(img, quality=50)
    assert out.shape == img.shape


def test_numpy_integer_quality_accepted(smooth_gray):
    assert blockcodec.encode(smooth_gray, np.int64(60)) == blockcodec.encode(smooth_gray, 60)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("predictor", PREDICTORS)
def test_quality_100_is_high_fidelity(mode, predictor):
    channels, subsampling, _ = MODES[mode]
    img = smooth_image(37, 53, channels, seed=11)
    _, out = roundtrip(img, quality=100, subsampling=subsampling, predictor=predictor)
    assert psnr(img, out) > 40


def test_quality_100_gray_is_near_lossless(smooth_gray):
    _, out = roundtrip(smooth_gray, quality=100)
    assert np.abs(out.astype(int) - smooth_gray).max() <= 3


@pytest.mark.parametrize("mode", list(MODES))
def test_quality_trades_size_for_fidelity(mode):
    channels, subsampling, _ = MODES[mode]
    img = textured_image(40, 48, channels, seed=5)
    lo, out_lo = roundtrip(img, quality=5, subsampling=subsampling)
    hi, out_hi = roundtrip(img, quality=95, subsampling=subsampling)
    assert len(lo.data) < len(hi.data)
    assert psnr(img, out_lo) < psnr(img, out_hi)


@pytest.mark.parametrize("predictor", PREDICTORS)
def test_constant_images_roundtrip_closely(predictor):
    # The classical predictors reproduce a flat image to within one gray level
    # (two in RGB).  A BlockCNN adds a small learned correction to the flat
    # prediction, which the quantizer may leave in place: that error stays
    # within one luma step (4 at q90; measured: 2 gray, 3-4 RGB).
    step = int(quantization.qtable(90, chroma=False)[0])
    learned = predictor.startswith("blockcnn")
    for value in (0, 1, 127, 128, 254, 255):
        gray = np.full((19, 23), value, np.uint8)
        _, out = roundtrip(gray, quality=90, predictor=predictor)
        assert np.abs(out.astype(int) - value).max() <= (step if learned else 1)
        rgb = np.full((19, 23, 3), value, np.uint8)
        _, out = roundtrip(rgb, quality=90, predictor=predictor)
        assert np.abs(out.astype(int) - value).max() <= (step if learned else 2)


def test_gray_stays_gray_and_rgb_stays_rgb(smooth_gray, smooth_rgb):
    assert blockcodec.decode(blockcodec.encode(smooth_gray)).ndim == 2
    assert blockcodec.decode(blockcodec.encode(smooth_rgb)).shape == smooth_rgb.shape


def test_result_reports_bits_and_bpp(textured_rgb):
    res = Codec(quality=50).encode(textured_rgb)
    h, w = textured_rgb.shape[:2]
    assert res.bpp == pytest.approx(len(res.data) * 8 / (h * w))
    assert all(v >= 0 for v in res.bits.values())
    # The per-stage bits account for the whole stream (up to word padding).
    assert abs(sum(res.bits.values()) - 8 * len(res.data)) <= 64
    assert len(res.planes) == 3
    for tr in res.planes:
        n_blocks = tr.recon.size // 64
        assert tr.coefs.shape == (n_blocks, 64) and tr.coefs.dtype == np.int16
        assert tr.prediction.shape == (n_blocks, 64) and tr.prediction.dtype == np.uint8
        assert tr.residual.shape == (n_blocks, 64) and tr.residual.dtype == np.int16


def test_decoder_trace_matches_encoder_trace(textured_rgb):
    codec = Codec(quality=70)
    enc = codec.encode(textured_rgb, keep_trace=True)
    dec = codec.decode(enc.data, keep_trace=True)
    for te, td in zip(enc.planes, dec.planes):
        np.testing.assert_array_equal(te.coefs, td.coefs)
        np.testing.assert_array_equal(te.prediction, td.prediction)
        np.testing.assert_array_equal(te.recon, td.recon)


def test_keep_trace_does_not_change_the_stream(textured_rgb):
    codec = Codec(quality=70)
    assert codec.encode(textured_rgb, keep_trace=True).data == codec.encode(textured_rgb, keep_trace=False).data


def test_decode_accepts_bytes_like(textured_gray):
    data = blockcodec.encode(textured_gray)
    ref = blockcodec.decode(data)
    np.testing.assert_array_equal(blockcodec.decode(bytearray(data)), ref)
    np.testing.assert_array_equal(blockcodec.decode(memoryview(data)), ref)


def test_non_contiguous_inputs(textured_rgb):
    big = textured_image(60, 70, 3, seed=9)
    view = big[::2, 1::2]                      # strided view
    assert not view.flags.c_contiguous
    assert blockcodec.encode(view) == blockcodec.encode(np.ascontiguousarray(view))
    fortran = np.asfortranarray(textured_rgb)
    assert blockcodec.encode(fortran) == blockcodec.encode(textured_rgb)
    flipped = textured_rgb[::-1, ::-1]
    assert blockcodec.encode(flipped) == blockcodec.encode(flipped.copy())


def test_input_array_not_modified(textured_rgb):
    before = textured_rgb.copy()
    blockcodec.encode(textured_rgb)
    np.testing.assert_array_equal(textured_rgb, before)


# ------------------------------------------------------------ accepted inputs

def test_pil_gray_and_rgb(textured_gray, textured_rgb):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConversionWarning)
        assert blockcodec.encode(Image.fromarray(textured_gray, "L")) == blockcodec.encode(textured_gray)
        assert blockcodec.encode(Image.fromarray(textured_rgb, "RGB")) == blockcodec.encode(textured_rgb)


def test_pil_rgba_warns_and_drops_alpha(textured_rgb):
    alpha = np.linspace(0, 255, textured_rgb.shape[0] * textured_rgb.shape[1]).astype(np.uint8)
    rgba = np.dstack([textured_rgb, alpha.reshape(textured_rgb.shape[:2])])
    with pytest.warns(ConversionWarning, match="alpha"):
        data = blockcodec.encode(Image.fromarray(rgba, "RGBA"))
    assert data == blockcodec.encode(textured_rgb)
    assert blockcodec.decode(data).shape == textured_rgb.shape


def test_pil_palette(textured_rgb):
    pal = Image.fromarray(textured_rgb, "RGB").quantize(colors=64)
    assert pal.mode == "P"
    data = blockcodec.encode(pal)
    assert data == blockcodec.encode(np.asarray(pal.convert("RGB")))
    assert blockcodec.decode(data).shape == textured_rgb.shape


def test_pil_palette_with_transparency_warns(textured_rgb):
    pal = Image.fromarray(textured_rgb, "RGB").quantize(colors=16)
    pal.info["transparency"] = 0
    with pytest.warns(ConversionWarning):
        data = blockcodec.encode(pal)
    assert blockcodec.decode(data).shape == textured_rgb.shape


def test_pil_16_bit_warns_and_rounds_to_8_bits():
    rng = np.random.default_rng(3)
    a16 = rng.integers(0, 65536, (21, 26), dtype=np.uint16)
    img = Image.fromarray(a16)
    assert img.mode.startswith("I;16")
    with pytest.warns(ConversionWarning, match="16-bit"):
        data = blockcodec.encode(img, 80)
    expected8 = np.rint(a16 / 257.0).astype(np.uint8)
    assert data == blockcodec.encode(expected8, 80)
    assert blockcodec.decode(data).shape == (21, 26)


def test_pil_bilevel():
    bits = (np.indices((16, 20)).sum(0) % 2).astype(bool)
    img = Image.fromarray(bits)
    assert img.mode == "1"
    data = blockcodec.encode(img)
    assert data == blockcodec.encode(bits.astype(np.uint8) * 255)


def _pil(mode: str, rgb: np.ndarray) -> Image.Image:
    """A PIL image of the given mode made from an RGB array."""
    base = Image.fromarray(rgb, "RGB")
    via = {"PA": "P", "La": "LA", "RGBa": "RGBA"}
    if mode in via:
        return base.convert(via[mode]).convert(mode)
    return base.convert(mode)


@pytest.mark.parametrize("mode, channels", [("LA", 1), ("PA", 3), ("RGBa", 3)])
def test_pil_modes_with_alpha_warn(mode, channels, textured_rgb):
    img = _pil(mode, textured_rgb)
    with pytest.warns(ConversionWarning, match="alpha"):
        out = blockcodec.decode(blockcodec.encode(img))
    assert out.shape == textured_rgb.shape[:2] + ((3,) if channels == 3 else ())


def test_pil_la_premultiplied_warns_and_drops_alpha(textured_gray):
    img = Image.fromarray(textured_gray, "L").convert("LA").convert("La")
    with pytest.warns(ConversionWarning, match="alpha"):
        out = blockcodec.decode(blockcodec.encode(img))
    assert out.shape == textured_gray.shape


@pytest.mark.parametrize("mode", ["CMYK", "YCbCr", "HSV", "LAB", "RGBX"])
def test_pil_other_colour_modes_warn_and_become_rgb(mode, textured_rgb):
    img = _pil(mode, textured_rgb)
    with pytest.warns(ConversionWarning, match=mode):
        data = blockcodec.encode(img)
    # Pixels as Pillow converts them, and no ICC profile of the original colour space.
    assert data == blockcodec.encode(np.asarray(img.convert("RGB")))


def test_pil_32_bit_int_within_8_bits_is_exact(textured_gray):
    img = Image.fromarray(textured_gray.astype(np.int32), "I")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConversionWarning)
        assert blockcodec.encode(img) == blockcodec.encode(textured_gray)


def test_pil_any_mode_gives_an_image_or_blockcodec_error(textured_rgb):
    """No PIL mode makes encode() fail with anything but BlockcodecError."""
    for mode in ("1", "L", "P", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "I", "F",
                 "LA", "PA", "RGBa", "I;16", "I;16B", "I;16L"):
        try:
            img = _pil(mode, textured_rgb) if not mode.startswith("I;16") else Image.new(mode, (9, 7))
        except (ValueError, OSError):
            continue   # Pillow cannot make this mode from RGB
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConversionWarning)
            try:
                out = blockcodec.decode(blockcodec.encode(img))
            except BlockcodecError:
                continue
        assert out.shape[:2] == (img.height, img.width), mode


def test_numpy_hxwx1_is_gray(textured_gray):
    assert blockcodec.encode(textured_gray[:, :, None]) == blockcodec.encode(textured_gray)
    assert blockcodec.decode(blockcodec.encode(textured_gray[:, :, None])).shape == textured_gray.shape


def test_numpy_hxwx4_warns_and_drops_alpha(textured_rgb):
    rgba = np.dstack([textured_rgb, np.full(textured_rgb.shape[:2], 7, np.uint8)])
    with pytest.warns(ConversionWarning, match="alpha"):
        data = blockcodec.encode(rgba)
    assert data == blockcodec.encode(textured_rgb)


def test_numpy_hxwx2_is_gray_plus_alpha(textured_gray):
    ga = np.dstack([textured_gray, np.zeros_like(textured_gray)])
    with pytest.warns(ConversionWarning, match="alpha"):
        data = blockcodec.encode(ga)
    assert data == blockcodec.encode(textured_gray)


def test_numpy_uint16_warns_and_rounds_to_8_bits():
    rng = np.random.default_rng(4)
    a16 = rng.integers(0, 65536, (18, 22, 3), dtype=np.uint16)
    with pytest.warns(ConversionWarning, match="16-bit"):
        data = blockcodec.encode(a16)
    assert data == blockcodec.encode(np.rint(a16 / 257.0).astype(np.uint8))
    # The extremes map to the extremes.
    with pytest.warns(ConversionWarning):
        ext = blockcodec.encode(np.array([[0, 65535]], np.uint16), 100)
    np.testing.assert_array_equal(blockcodec.decode(ext, postfilter="none"), [[0, 255]])


def test_numpy_big_endian_uint16_is_the_same_image():
    a16 = np.random.default_rng(5).integers(0, 65536, (9, 14, 3), dtype=np.uint16)
    with pytest.warns(ConversionWarning, match="16-bit"):
        assert blockcodec.encode(a16.astype(">u2")) == blockcodec.encode(a16)


def test_numpy_bool_is_black_and_white():
    bits = np.eye(12, 15, dtype=bool)
    assert blockcodec.encode(bits) == blockcodec.encode(bits.astype(np.uint8) * 255)


def test_uint8_inputs_do_not_warn(textured_gray, textured_rgb):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        blockcodec.encode(textured_gray)
        blockcodec.encode(textured_rgb)
        blockcodec.encode(textured_gray[:, :, None])


# ------------------------------------------------------------- refused inputs

def test_blockcodec_error_is_a_value_error():
    assert issubclass(BlockcodecError, ValueError)


@pytest.mark.parametrize(
    "image",
    [
        pytest.param(np.zeros((8, 8), np.float32), id="float32"),
        pytest.param(np.zeros((8, 8, 3), np.float64), id="float64"),
        pytest.param(np.zeros((8, 8), np.int32), id="int32"),
        pytest.param(np.zeros((8, 8), np.int8), id="int8"),
        pytest.param(np.zeros((8, 8), np.complex64), id="complex"),
        pytest.param(np.zeros((8, 8), object), id="object"),
        pytest.param(np.zeros((0, 8), np.uint8), id="0xN"),
        pytest.param(np.zeros((8, 0), np.uint8), id="Nx0"),
        pytest.param(np.zeros((0, 0, 3), np.uint8), id="0x0x3"),
        pytest.param(np.zeros((8, 8, 0), np.uint8), id="8x8x0"),
        pytest.param(np.zeros((2, 8, 8, 3), np.uint8), id="4-D"),
        pytest.param(np.zeros(64, np.uint8), id="1-D"),
        pytest.param(np.zeros((), np.uint8), id="0-D"),
        pytest.param(np.zeros((8, 8, 5), np.uint8), id="5-channels"),
        pytest.param(np.zeros((1, bitstream.MAX_DIMENSION + 1), np.uint8), id="too-wide"),
        pytest.param([[0, 1], [2, 3]], id="list"),
        pytest.param(None, id="None"),
        pytest.param(b"\x00" * 64, id="bytes"),
        pytest.param("image.png", id="str"),
        pytest.param(42, id="int"),
    ],
)
def test_refused_images(image):
    with pytest.raises(BlockcodecError):
        blockcodec.encode(image)
    with pytest.raises(ValueError):
        Codec().encode(image)


def test_refused_pil_mode():
    img = Image.new("F", (8, 8))
    with pytest.raises(BlockcodecError):
        blockcodec.encode(img)


@pytest.mark.parametrize("quality", [0, 101, -1, 1000, 1.5, 75.0, "75", None, True, False])
def test_refused_quality(quality, smooth_gray):
    with pytest.raises(BlockcodecError):
        blockcodec.encode(smooth_gray, quality)
    with pytest.raises(BlockcodecError):
        CodecConfig(quality=quality)


@pytest.mark.parametrize("predictor", ["", "Planar", "nonexistent", None, 2, ["planar"], {}])
def test_refused_predictor(predictor, smooth_gray):
    with pytest.raises(BlockcodecError):
        blockcodec.encode(smooth_gray, predictor=predictor)


@pytest.mark.parametrize("subsampling", ["422", "411", 420, "4:2:0", None, "", ["420"], {"420": 1}])
def test_refused_subsampling(subsampling, smooth_rgb):
    with pytest.raises(BlockcodecError):
        blockcodec.encode(smooth_rgb, subsampling=subsampling)


@pytest.mark.parametrize("kwargs", [
    {"postfilter": ["wdsr"]}, {"postfilter": {}}, {"postfilter": None}, {"quality": [75]},
    {"quality": {75: 1}}, {"dc_prediction": "yes"}, {"dc_prediction": [True]},
])
def test_refused_argument_types(kwargs, smooth_gray):
    """Unhashable or mistyped arguments are bad input like any other: a
    BlockcodecError, never a TypeError from inside the codec."""
    with pytest.raises(BlockcodecError):
        blockcodec.encode(smooth_gray, **kwargs)
    with pytest.raises(BlockcodecError):
        Codec(**kwargs)


@pytest.mark.parametrize("kwargs", [{"rounding": (128, 84)}, {"rounding": None}])
def test_refused_rounding(kwargs):
    with pytest.raises(BlockcodecError, match="rounding"):
        CodecConfig(**kwargs)


@pytest.mark.parametrize("config", ["planar", {"quality": 50}, 75])
def test_refused_config(config):
    with pytest.raises(BlockcodecError, match="CodecConfig"):
        Codec(config)


@pytest.mark.parametrize("choice", [["none"], {"none": 1}, 0, b"none", "nonexistent"])
def test_decode_refuses_bad_postfilter_choice(choice, smooth_gray):
    data = blockcodec.encode(smooth_gray, predictor="planar", postfilter="none")
    for bad_stream in (data, b"junk"):   # the argument is checked first, whatever the stream
        with pytest.raises(BlockcodecError, match="post-filter"):
            blockcodec.decode(bad_stream, postfilter=choice)
        with pytest.raises(BlockcodecError, match="post-filter"):
            Codec().decode(bad_stream, postfilter=choice)


def test_unknown_predictor_message_lists_available():
    with pytest.raises(BlockcodecError, match="planar"):
        CodecConfig(predictor="nope")


@pytest.mark.parametrize("data", [None, "BKCD", 12345, [1, 2, 3], np.zeros(10, np.uint8)])
def test_decode_refuses_non_bytes(data):
    with pytest.raises(BlockcodecError):
        blockcodec.decode(data)
