"""Fast checks of the Kodak evaluation harness (no Kodak images needed)."""

import math

import numpy as np
import pytest

from kodak_eval import bdrate, codecs, metrics

# A typical-looking RD curve: bpp and PSNR of a mid-range codec.
RATES = np.array([0.12, 0.2, 0.33, 0.5, 0.75, 1.1, 1.6, 2.2])
PSNRS = np.array([26.0, 27.6, 29.3, 31.0, 32.9, 34.8, 36.9, 38.8])


def _test_image(h=48, w=64, seed=0):
    # Smooth gradients plus texture, so codecs see something image-like.
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255.0 / w, y * 255.0 / h, (x + y) * 127.0 / (h + w) + 64], axis=-1)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


# --- BD-rate ---------------------------------------------------------------

def test_bd_rate_self_is_zero():
    assert bdrate.bd_rate(RATES, PSNRS, RATES, PSNRS) == pytest.approx(0.0, abs=1e-9)
    assert bdrate.bd_psnr(RATES, PSNRS, RATES, PSNRS) == pytest.approx(0.0, abs=1e-9)


def test_bd_rate_scaled_rates():
    assert bdrate.bd_rate(RATES, PSNRS, 0.8 * RATES, PSNRS) == pytest.approx(-20.0, abs=0.1)
    # and symmetric in the expected way: the anchor needs 25% more than the test
    assert bdrate.bd_rate(0.8 * RATES, PSNRS, RATES, PSNRS) == pytest.approx(25.0, abs=0.1)


def test_bd_psnr_shifted_quality():
    # A uniform +0.5 dB at every rate is a BD-PSNR of +0.5 dB and a negative BD-rate.
    assert bdrate.bd_psnr(RATES, PSNRS, RATES, PSNRS + 0.5) == pytest.approx(0.5, abs=1e-6)
    assert bdrate.bd_rate(RATES, PSNRS, RATES, PSNRS + 0.5) < 0


def test_bd_rate_unsorted_points_and_partial_overlap():
    order = np.random.default_rng(1).permutation(RATES.size)
    # Test curve covers only the upper half of the anchor's quality range.
    r = bdrate.bd_rate_result(RATES[order], PSNRS[order], 0.9 * RATES[3:], PSNRS[3:])
    assert r.value == pytest.approx(-10.0, abs=0.1)
    assert r.overlap == pytest.approx((PSNRS[3], PSNRS[-1]))


def test_bd_rate_no_overlap_is_nan_with_note():
    r = bdrate.bd_rate_result(RATES, PSNRS, RATES, PSNRS + 20.0)
    assert math.isnan(r.value) and "overlap" in r.note
    assert math.isnan(bdrate.bd_psnr(RATES, PSNRS, RATES * 100, PSNRS))
    assert math.isnan(bdrate.bd_rate(RATES[:1], PSNRS[:1], RATES, PSNRS))


def test_bd_rate_ignores_infinite_psnr():
    p = PSNRS.copy()
    p[-1] = np.inf  # a lossless point must not poison the fit
    assert math.isfinite(bdrate.bd_rate(RATES, PSNRS, RATES, p))


# --- metrics ---------------------------------------------------------------

def test_psnr_identical_is_inf():
    a = _test_image()
    assert metrics.psnr(a, a) == math.inf


def test_psnr_known_perturbation():
    a = np.clip(_test_image(), 10, 240)
    b = a.copy()
    b[::2, :, 0] += 3  # 1/2 of the rows, 1/3 of the channels: MSE = 9 / 6 = 1.5
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(255 ** 2 / 1.5), abs=1e-9)
    assert metrics.psnr(a, b) == pytest.approx(metrics.psnr(b, a))


def test_ms_ssim_identical_is_one():
    a = _test_image(192, 256)
    assert metrics.ms_ssim(a, a) == pytest.approx(1.0, abs=1e-6)
    assert metrics.msssim_db(1.0) == math.inf


def test_ms_ssim_decreases_with_noise():
    a = _test_image(192, 256)
    rng = np.random.default_rng(3)
    vals = []
    for sigma in (2, 8, 25):
        noisy = np.clip(a + rng.normal(0, sigma, a.shape), 0, 255).astype(np.uint8)
        vals.append(metrics.ms_ssim(a, noisy))
    assert 1.0 > vals[0] > vals[1] > vals[2] > 0.0


def test_ms_ssim_float32_matches_float64():
    a = _test_image(192, 256)
    b = np.clip(a + np.random.default_rng(4).normal(0, 6, a.shape), 0, 255).astype(np.uint8)
    assert metrics.ms_ssim(a, b) == pytest.approx(metrics.ms_ssim(a, b, dtype=np.float64), abs=1e-6)


def test_ms_ssim_tiny_image_does_not_crash():
    a = _test_image()  # 64x48: smaller than the window at the coarse scales
    b = np.clip(a.astype(int) + 5, 0, 255).astype(np.uint8)
    v = metrics.ms_ssim(a, b)
    assert 0.0 < v < 1.0 and metrics.ms_ssim(a, a) == pytest.approx(1.0, abs=1e-6)


# --- anchor adapters ---------------------------------------------------------

@pytest.mark.parametrize("name", list(codecs.ANCHORS))
def test_anchor_round_trip(name):
    codec = codecs.ANCHORS[name]()
    try:
        codec.check()
    except codecs.CodecUnavailable as exc:
        pytest.skip(str(exc))
    img = _test_image()
    # A mid-sweep point: a real lossy setting, not an extreme.
    param = codec.sweep[len(codec.sweep) // 2]
    data = codec.encode(img, param)
    assert isinstance(data, (bytes, bytearray)) and len(data) > 0
    out = np.asarray(codec.decode(data))
    assert out.shape == img.shape and out.dtype == np.uint8
    assert math.isfinite(metrics.psnr(img, out))
    assert metrics.psnr(img, out) > 15  # decoded the right image, not garbage
    assert codec.version()  # feeds the cache key


def test_cache_round_trip(tmp_path):
    from kodak_eval.evaluate import ImageRef, ResultCache, Task
    jpeg = codecs.JPEG()
    task = Task(jpeg, 50, ImageRef("img", "unused", "abc"))
    cache = ResultCache(tmp_path)
    assert cache.get(task, "v1") is None
    cache.put(task, "v1", {"image": "img", "bpp": 1.0})
    assert cache.get(task, "v1") == {"image": "img", "bpp": 1.0}
    assert cache.get(task, "v2") is None  # a library upgrade invalidates
    # blockcodec is never cached
    bc = Task(codecs.BlockCodec("planar"), 50, ImageRef("img", "unused", "abc"))
    cache.put(bc, "v1", {"image": "img"})
    assert cache.get(bc, "v1") is None


def test_blockcodec_import_failure_is_unavailable(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "blockcodec", None)  # makes `import blockcodec` fail
    with pytest.raises(codecs.CodecUnavailable):
        codecs.BlockCodec("planar").check()


def test_cli_end_to_end_on_tiny_images(tmp_path):
    from PIL import Image
    from kodak_eval.__main__ import main
    kodak = tmp_path / "kodak"
    kodak.mkdir()
    for i in range(2):
        Image.fromarray(_test_image(96, 128, seed=i)).save(kodak / f"kodim{i + 1:02d}.png")
    out = tmp_path / "out"
    args = ["--kodak-dir", str(kodak), "--out", str(out), "--codecs", "jpeg,jpeg2000",
            "--cache-dir", str(tmp_path / "cache"), "--quiet"]
    assert main(args) == 0
    for f in ("results.json", "results.csv", "rd_psnr.png", "table.md"):
        assert (out / f).stat().st_size > 0
    import json
    blob = json.loads((out / "results.json").read_text())
    assert blob["bd"]["jpeg"]["jpeg"]["bd_rate_psnr"] == pytest.approx(0.0, abs=1e-9)
    # second run is served from the cache
    assert main(args) == 0
    assert json.loads((out / "results.json").read_text())["meta"]["computed"] == 0


def test_default_blockcodec_curve_is_the_codecs_default_configuration():
    # The curve kodak_eval draws when asked for nothing in particular is the codec
    # users get from `blockcodec encode` with no options: BlockCNN with its post-filter.
    import blockcodec
    from blockcodec import postfilter, predictors
    from kodak_eval.__main__ import parse_args, select_codecs
    (bc,), _ = select_codecs(parse_args(["--codecs", "blockcodec"]), [])
    assert (bc.predictor, bc.postfilter) == (predictors.DEFAULT, postfilter.DEFAULT)
    img = _test_image(16, 24)
    assert bc.encode(img, 50) == blockcodec.encode(img, quality=50)
