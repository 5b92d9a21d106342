"""--target-bpp: the highest quality within the target, for about three full encodes."""
from __future__ import annotations

import numpy as np
import pytest

import blockcodec
from blockcodec import cli, ratecontrol
from conftest import textured_image


class FakeEncoding:
    def __init__(self, quality, bpp):
        self.quality = quality
        self.result = type("R", (), {"bpp": bpp})()


def full_curve(q: int) -> float:
    return 0.08 * np.exp(q / 22.0)          # rises with quality like a real codec's


def counting_encoder():
    """A fake full encoder following full_curve, and the list of qualities it was asked for."""
    asked = []

    def encode_at(q):
        asked.append(q)
        return FakeEncoding(q, full_curve(q))

    return encode_at, asked


@pytest.mark.parametrize("target", [0.1, 0.3, 0.75, 1.4, 3.0, 8.0])
@pytest.mark.parametrize("error", [0.8, 1.0, 1.3])    # the estimate's level is off by this factor
def test_finds_the_exact_quality_in_at_most_three_full_encodes(target, error):
    encode_at, encodes = counting_encoder()
    enc, reached = ratecontrol.find_quality(encode_at, target, lambda q: error * full_curve(q))
    best = max(q for q in range(1, 101) if full_curve(q) <= target)
    assert reached and enc.quality == best
    assert len(encodes) <= 3


@pytest.mark.parametrize("target", [0.2, 0.75, 2.0, 5.0])
def test_an_estimate_of_the_wrong_shape_still_meets_the_target(target):
    encode_at, encodes = counting_encoder()
    wobbly = lambda q: 1.2 * full_curve(q) * (1 + 0.06 * np.sin(q / 5))   # noqa: E731
    enc, reached = ratecontrol.find_quality(encode_at, target, wobbly)
    best = max(q for q in range(1, 101) if full_curve(q) <= target)
    assert reached and enc.result.bpp <= target and enc.quality >= best - 2
    assert len(encodes) <= 3


def test_search_without_an_estimate_is_exact():
    enc, reached = ratecontrol.find_quality(lambda q: FakeEncoding(q, full_curve(q)), 1.0)
    assert reached and enc.quality == max(q for q in range(1, 101) if full_curve(q) <= 1.0)


@pytest.mark.parametrize("estimate", [None, full_curve])
@pytest.mark.parametrize("target, quality, reached", [(0.01, 1, False), (1e6, 100, True)],
                         ids=["unreachable: quality 1", "above quality 100: 100"])
def test_targets_beyond_the_quality_range(estimate, target, quality, reached):
    enc, ok = ratecontrol.find_quality(lambda q: FakeEncoding(q, full_curve(q)), target, estimate)
    assert (enc.quality, ok) == (quality, reached)


def test_mosaic_samples_a_small_share_of_a_large_image_in_whole_tiles():
    image = textured_image(1088, 1536, 3, seed=1)
    sample = ratecontrol.mosaic(image)
    tiles = sample.shape[0] // ratecontrol.TILE * (sample.shape[1] // ratecontrol.TILE)
    assert sample.shape[0] % ratecontrol.TILE == 0 and sample.shape[1] % ratecontrol.TILE == 0
    assert ratecontrol.MIN_TILES <= tiles
    assert image.size / 64 < sample.size <= image.size / ratecontrol.MAX_SHARE * 1.25
    corner = sample[:ratecontrol.TILE, :ratecontrol.TILE]   # every tile is a piece of the image
    hits = [(y, x) for y in range(0, 1088 - 63, 16) for x in range(0, 1536 - 63, 16)
            if np.array_equal(image[y:y + 64, x:x + 64], corner)]
    assert hits


def test_small_images_have_no_mosaic():
    assert ratecontrol.mosaic(textured_image(400, 600, 3)) is None


def test_a_24_megapixel_mosaic_is_a_thirty_second_of_it():
    image = np.zeros((4000, 6000, 3), np.uint8)
    assert ratecontrol.mosaic(image).size == pytest.approx(image.size / 32, rel=0.1)


def test_cli_target_bpp_on_a_megapixel_image_costs_at_most_three_full_encodes(tmp_path, monkeypatch, capsys):
    from PIL import Image
    image = textured_image(1088, 1024, 3, seed=2)
    src = tmp_path / "big.png"
    Image.fromarray(image).save(src)
    full = []
    real = cli._encode_at

    def counting(img, q, args, **kw):
        if img.shape == image.shape:
            full.append(q)
        return real(img, q, args, **kw)

    monkeypatch.setattr(cli, "_encode_at", counting)
    out = tmp_path / "big.bkc"
    target = 2.0
    assert cli.main(["encode", str(src), "-o", str(out), "--target-bpp", str(target), "--predictor", "planar",
                     "--postfilter", "none", "-v"]) == 0
    assert len(full) <= 3, full
    assert f"(target 2, {len(full)} full encodes)" in capsys.readouterr().err
    data = out.read_bytes()
    q = bitstream_quality(data)
    pixels = image.shape[0] * image.shape[1]
    assert len(data) * 8 / pixels <= target
    above = blockcodec.encode(image, q + 1, predictor="planar", postfilter="none")
    assert len(above) * 8 / pixels > target          # the highest such quality


def bitstream_quality(data: bytes) -> int:
    from blockcodec import bitstream
    return bitstream.unpack(data)[0].quality


def test_the_estimator_codes_the_mosaic_and_corrects_for_its_seams():
    image = textured_image(1088, 1024, 3, seed=4)
    seen = []
    estimate = ratecontrol.estimator(image, lambda sample, q: seen.append(sample.shape) or 1.0)
    assert estimate(50) == pytest.approx(ratecontrol.seam_correction(50))
    assert seen == [ratecontrol.mosaic(image).shape]
    assert 0.7 < ratecontrol.seam_correction(1) < ratecontrol.seam_correction(100) < 1
    assert ratecontrol.estimator(textured_image(64, 64, 3), lambda sample, q: 1.0) is None
