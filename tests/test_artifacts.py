"""Fast checks of the JPEG artifact-removal benchmark (kodak_eval.artifacts) and of
the grayscale SSIM / PSNR-B it uses. Only the last test reads ../shared data, and
it is skipped when that folder is absent."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import smooth_image, textured_image
from PIL import Image

from blockcodec import color
from kodak_eval import artifacts as art
from kodak_eval import metrics

REPO_ROOT = Path(__file__).resolve().parents[1]

# ITU-T T.81 Table K.1 typed in again here (not imported), natural order, so a
# mistake in the module's copy cannot make the test agree with itself.
ANNEX_K_LUMA = [
    [16, 11, 10, 16, 24, 40, 51, 61],
    [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77],
    [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101],
    [72, 92, 95, 98, 112, 100, 103, 99],
]


# --- IJG quality scaling -------------------------------------------------------

@pytest.mark.parametrize("q, scale", [(1, 5000), (10, 500), (25, 200), (49, 102), (50, 100),
                                      (75, 50), (90, 20), (100, 0), (0, 5000), (150, 0)])
def test_ijg_quality_scaling(q, scale):
    assert art.ijg_quality_scaling(q) == scale


def test_ijg_table_q50_is_annex_k():
    t = art.ijg_luma_table(50)
    assert t.dtype == np.uint16 and t.shape == (64,)
    assert t.reshape(8, 8).tolist() == ANNEX_K_LUMA
    # natural, not zigzag, order: the second stored entry is row 0 column 1 (11),
    # where zigzag order would put row 1 column 0 (12) second.
    assert t[1] == 11 and t[8] == 12


def test_ijg_table_spot_values():
    q10 = art.ijg_luma_table(10).reshape(8, 8)
    # 5x the table, rounded, capped at 255 for baseline
    assert q10[0].tolist() == [80, 55, 50, 80, 120, 200, 255, 255]
    assert q10[1, 0] == 60 and q10[7, 7] == 255
    q90 = art.ijg_luma_table(90).reshape(8, 8)
    # 0.2x the table: (base * 20 + 50) // 100, e.g. 16 -> 3, 11 -> 2, 61 -> 12
    assert q90[0].tolist() == [3, 2, 2, 3, 5, 8, 10, 12]
    assert q90[7, 7] == 20 and q90[6, 5] == 24
    assert art.ijg_luma_table(100).tolist() == [1] * 64   # 0% scale, floored at 1
    assert art.ijg_luma_table(1).tolist() == [255] * 64   # 50x, capped at 255
    assert art.ijg_luma_table(1, force_baseline=False)[0] == 800


@pytest.mark.parametrize("q", [5, 10, 20, 30, 40, 50, 75, 90, 100])
def test_pillow_writes_ijg_tables(q):
    img = textured_image(40, 56, 1, seed=q)
    decoded, table, nbytes = art.jpeg_roundtrip(img, q)
    assert table.dtype == np.uint16 and table.shape == (64,)
    np.testing.assert_array_equal(table, art.ijg_luma_table(q))
    assert decoded.dtype == np.uint8 and decoded.shape == img.shape and nbytes > 0


def test_jpeg_roundtrip_refuses_other_tables(monkeypatch):
    # If the file's table were not the IJG one, the benchmark must stop.
    monkeypatch.setattr(art, "ijg_luma_table", lambda q: np.full(64, 7, np.uint16))
    with pytest.raises(RuntimeError, match="non-IJG table"):
        art.jpeg_roundtrip(smooth_image(16, 16, 1), 50)


# --- Luma and loading --------------------------------------------------------------

def test_load_gray_modes(tmp_path):
    g = textured_image(20, 24, 1)
    Image.fromarray(g).save(tmp_path / "g.png")
    np.testing.assert_array_equal(art.load_gray(tmp_path / "g.png"), g)
    rgb = textured_image(20, 24, 3)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    np.testing.assert_array_equal(art.load_gray(tmp_path / "c.png"), color.rgb_to_studio_luma(rgb))
    Image.fromarray(g.astype(np.uint16) * 200).save(tmp_path / "w.png")  # 16-bit gray
    with pytest.raises(ValueError, match="unsupported image mode"):
        art.load_gray(tmp_path / "w.png")


# --- PSNR-B --------------------------------------------------------------------------

def test_bef_stripes_known_value():
    # 16 rows x 21 columns, 8-wide vertical stripes 100 / 100+a / 100: every
    # horizontal pair across a block boundary (columns 7|8 and 15|16, 16 rows
    # each = 32 pairs) differs by a, the 21 vertical pairs across rows 7|8 by 0,
    # and nothing differs inside blocks. D_B = 32 a^2 / 53, D_B^c = 0,
    # eta = log2(8) / log2(16) = 3/4.
    a = 10.0
    y = 100 + a * ((np.arange(21) // 8) % 2)
    img = np.tile(y, (16, 1)).astype(np.uint8)
    assert metrics.blocking_effect_factor(img) == pytest.approx(0.75 * 32 / 53 * a * a, rel=1e-12)
    # Transposing swaps the roles of H and V but not the value.
    assert metrics.blocking_effect_factor(img.T) == pytest.approx(0.75 * 32 / 53 * a * a, rel=1e-12)


def test_bef_checkerboard_known_value():
    # 16x16 of four 8x8 constant blocks in a checkerboard: all 32 boundary pairs
    # differ by a, none inside: BEF = 3/4 a^2. PSNR-B then follows by hand.
    a = 12
    blocks = np.array([[0, a], [a, 0]]) + 90
    img = np.kron(blocks, np.ones((8, 8))).astype(np.uint8)
    assert metrics.blocking_effect_factor(img) == pytest.approx(0.75 * a * a)
    ref = np.full_like(img, 90)
    mse = a * a / 2                                   # half the pixels are off by a
    expected = 10 * math.log10(255 ** 2 / (mse + 0.75 * a * a))
    assert metrics.psnr_b(ref, img) == pytest.approx(expected, rel=1e-12)
    assert metrics.psnr(ref, img) == pytest.approx(10 * math.log10(255 ** 2 / mse))


def test_psnr_b_equals_psnr_without_boundary_steps():
    # BEF depends only on the test image, and is 0 whenever neighbour differences
    # across 8x8 boundaries are on average no larger than inside blocks. Make a
    # textured image whose boundary pairs are exactly equal (copy column 8k-1 into
    # 8k and row 8k-1 into 8k): D_B = 0 <= D_B^c, so PSNR-B == PSNR for any reference.
    y = textured_image(40, 45, 1, seed=7).copy()
    for k in range(8, 45, 8):
        y[:, k] = y[:, k - 1]
    for k in range(8, 40, 8):
        y[k, :] = y[k - 1, :]
    assert metrics.blocking_effect_factor(y) == 0.0
    ref = textured_image(40, 45, 1, seed=8)
    assert metrics.psnr_b(ref, y) == metrics.psnr(ref, y)
    # A ramp with equal steps everywhere has D_B == D_B^c: BEF 0 as well.
    ramp = np.add.outer(np.arange(24), np.arange(32)).astype(np.uint8)
    assert metrics.blocking_effect_factor(ramp) == 0.0


@pytest.mark.parametrize("q", [5, 10, 30])
def test_psnr_b_below_psnr_for_jpeg(q):
    # JPEG of a smooth image is blocky: BEF > 0, so PSNR-B is strictly lower.
    img = smooth_image(64, 72, 1, seed=3)
    decoded, _, _ = art.jpeg_roundtrip(img, q)
    assert metrics.blocking_effect_factor(decoded) > 0
    assert metrics.psnr_b(img, decoded) < metrics.psnr(img, decoded)
    # and it is the *test* image's blockiness that counts, not the reference's
    assert metrics.psnr_b(img, decoded) != pytest.approx(metrics.psnr_b(decoded, img))


def test_bef_needs_two_pixels():
    with pytest.raises(ValueError):
        metrics.blocking_effect_factor(np.zeros((1, 20), np.uint8))
    # sides <= 8 hold no block boundary at all: nothing to penalise
    assert metrics.blocking_effect_factor(np.arange(48).reshape(6, 8).astype(np.uint8)) == 0.0


# --- SSIM ------------------------------------------------------------------------------

def _ssim_bruteforce(x, y, win=11, sigma=1.5):
    """Direct transcription of Wang et al.: every valid 11x11 window, Gaussian
    weighted population moments, mean of the map. Loops, no filtering tricks."""
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    r = np.arange(win) - (win - 1) / 2
    w = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma ** 2))
    w /= w.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for i in range(x.shape[0] - win + 1):
        for j in range(x.shape[1] - win + 1):
            px, py = x[i:i + win, j:j + win], y[i:i + win, j:j + win]
            mx, my = (w * px).sum(), (w * py).sum()
            vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
            cxy = (w * (px - mx) * (py - my)).sum()
            vals.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2)))
    return float(np.mean(vals))


def test_ssim_identity_and_symmetry():
    x = textured_image(30, 37, 1, seed=1)
    y = textured_image(30, 37, 1, seed=2)
    assert metrics.ssim(x, x) == pytest.approx(1.0, abs=1e-12)
    assert metrics.ssim(x, y) == pytest.approx(metrics.ssim(y, x), abs=1e-12)
    assert metrics.ssim(x, y) < 0.99


def test_ssim_constant_images_by_hand():
    # Two flat images 100 and 110: no variance, so every window gives the
    # luminance term alone, (2*100*110 + C1) / (100^2 + 110^2 + C1), C1 = 2.55^2.
    c1 = 2.55 ** 2
    expected = (22000 + c1) / (22100 + c1)             # 0.99547...
    a = np.full((11, 11), 100, np.uint8)
    b = np.full((11, 11), 110, np.uint8)
    assert metrics.ssim(a, b) == pytest.approx(expected, abs=1e-12)
    assert metrics.ssim(np.full((20, 30), 100, np.uint8), np.full((20, 30), 110, np.uint8)) \
        == pytest.approx(expected, abs=1e-12)


def test_ssim_matches_bruteforce_valid_windows():
    x = textured_image(17, 23, 1, seed=5)
    y = np.clip(x.astype(int) + np.random.default_rng(0).integers(-20, 21, x.shape), 0, 255).astype(np.uint8)
    assert metrics.ssim(x, y) == pytest.approx(_ssim_bruteforce(x, y), abs=1e-10)


def test_ssim_rejects_images_smaller_than_window():
    with pytest.raises(ValueError, match="smaller than"):
        metrics.ssim(np.zeros((10, 40), np.uint8), np.zeros((10, 40), np.uint8))


# --- evaluate() and the restorer API ------------------------------------------------

def _make_data(root: Path) -> dict[str, list[np.ndarray]]:
    """A tiny stand-in for ../shared/data/eval: odd sizes on purpose."""
    imgs = {"live1": [textured_image(37, 45, 1, seed=1), smooth_image(40, 48, 1, seed=2)],
            "classic5": [textured_image(32, 32, 1, seed=3)]}
    for s, lst in imgs.items():
        d = root / art.SETS[s]
        d.mkdir(parents=True)
        for i, g in enumerate(lst):
            Image.fromarray(g).save(d / f"img{i}.png")
    return imgs


def test_evaluate_calls_restorer_with_decoded_image_and_table(tmp_path):
    imgs = _make_data(tmp_path)
    calls = []

    def vandal(decoded, table):
        decoded[:] = 0          # in-place damage must not leak to other methods
        return decoded

    def recorder(decoded, table):
        calls.append((decoded.copy(), table.copy()))
        return decoded

    rows = art.evaluate({"vandal": vandal, "rec": recorder}, sets=("live1",),
                        qualities=(10, 40), data_dir=tmp_path)
    assert len(calls) == 2 * 2
    expected = [(q, g) for q in (10, 40) for g in imgs["live1"]]
    for (decoded, table), (q, g) in zip(calls, expected):
        assert table.dtype == np.uint16 and table.shape == (64,)
        np.testing.assert_array_equal(table, art.ijg_luma_table(q))
        assert decoded.dtype == np.uint8
        np.testing.assert_array_equal(decoded, art.jpeg_roundtrip(g, q)[0])

    by = {(r["quality"], r["method"]): r for r in rows}
    assert set(by) == {(q, m) for q in (10, 40) for m in ("jpeg", "vandal", "rec")}
    for q in (10, 40):
        jpeg = by[(q, "jpeg")]
        # mean of per-image values, computed here directly
        dec = [art.jpeg_roundtrip(g, q)[0] for g in imgs["live1"]]
        assert jpeg["psnr"] == pytest.approx(np.mean([metrics.psnr(g, d) for g, d in zip(imgs["live1"], dec)]))
        assert jpeg["ssim"] == pytest.approx(np.mean([metrics.ssim(g, d) for g, d in zip(imgs["live1"], dec)]))
        assert jpeg["psnr_b"] == pytest.approx(np.mean([metrics.psnr_b(g, d) for g, d in zip(imgs["live1"], dec)]))
        assert jpeg["n_images"] == 2 and jpeg["set"] == "live1"
        assert by[(q, "rec")]["psnr"] == jpeg["psnr"]          # identity == jpeg
        assert by[(q, "vandal")]["psnr"] < 10                  # scored on its output
    assert by[(10, "jpeg")]["psnr"] < by[(40, "jpeg")]["psnr"]


def test_evaluate_rejects_bad_restorers(tmp_path):
    _make_data(tmp_path)
    with pytest.raises(ValueError, match="uint8"):
        art.evaluate({"float": lambda d, t: d.astype(np.float32)}, sets=("classic5",),
                     qualities=(10,), data_dir=tmp_path)
    with pytest.raises(ValueError, match="uint8"):
        art.evaluate({"crop": lambda d, t: d[:-1]}, sets=("classic5",), qualities=(10,), data_dir=tmp_path)
    with pytest.raises(ValueError, match="reserved|built-in"):
        art.evaluate({"jpeg": lambda d, t: d}, sets=("classic5",), qualities=(10,), data_dir=tmp_path)


def test_evaluate_missing_set_fails_before_work(tmp_path):
    (tmp_path / "classic5").mkdir()
    Image.fromarray(smooth_image(16, 16, 1)).save(tmp_path / "classic5" / "a.png")
    called = []
    with pytest.raises(FileNotFoundError, match="LIVE1"):
        art.evaluate({"x": lambda d, t: called.append(1) or d}, sets=("classic5", "live1"),
                     qualities=(10,), data_dir=tmp_path)
    assert not called


def test_reproduction_check():
    rows = [{"set": "live1", "quality": 10, "method": "jpeg", "psnr": 27.80},
            {"set": "classic5", "quality": 10, "method": "jpeg", "psnr": 27.90},
            {"set": "live1", "quality": 20, "method": "jpeg", "psnr": 30.0},   # nothing published
            {"set": "live1", "quality": 10, "method": "net", "psnr": 29.0}]
    checks = {(c["set"], c["quality"]): c for c in art.reproduction_check(rows)}
    assert set(checks) == {("live1", 10), ("classic5", 10)}
    assert checks[("live1", 10)]["ok"] and checks[("live1", 10)]["diff"] == pytest.approx(0.03)
    assert not checks[("classic5", 10)]["ok"]


# --- CLI ---------------------------------------------------------------------------------

def test_cli_missing_data_dir(tmp_path, capsys):
    rc = art.main(["--data-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "a.md")])
    err = capsys.readouterr().err
    assert rc != 0
    assert err.startswith("error: ") and err.count("\n") == 1 and "nope" in err
    assert not (tmp_path / "a.md").exists()


def test_cli_missing_data_dir_subprocess(tmp_path):
    # The real entry point: non-zero exit and one line, no traceback.
    p = subprocess.run([sys.executable, "-m", "kodak_eval.artifacts", "--data-dir", str(tmp_path / "nope")],
                       cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode != 0
    assert "Traceback" not in p.stderr
    assert p.stderr.strip().count("\n") == 0 and p.stderr.startswith("error:")


def test_cli_writes_markdown_and_csv(tmp_path, capsys):
    _make_data(tmp_path / "data")
    out = tmp_path / "res" / "art.md"
    rc = art.main(["--data-dir", str(tmp_path / "data"), "--qualities", "10,20",
                   "--sets", "classic5", "--out", str(out), "--no-progress"])
    assert rc == 0
    md = out.read_text()
    assert "| Classic5 | 10 | jpeg | measured |" in md
    assert "| Classic5 | 10 | FBCNN | published | 30.12 |" in md
    assert "| LIVE1 |" not in md                                 # only the requested set
    lines = out.with_suffix(".csv").read_text().splitlines()
    assert lines[0] == ",".join(art.CSV_FIELDS)
    assert sum(",measured," in ln for ln in lines) == 2          # q10 and q20 jpeg
    assert sum(",published," in ln for ln in lines) == 5         # q10 Classic5 rows
    assert "NOT reproduced" in capsys.readouterr().out           # synthetic images != Classic5


# --- The real benchmark (needs ../shared/data/eval) ------------------------------------

_DATA = art.default_data_dir()


@pytest.mark.skipif(not all((_DATA / d).is_dir() for d in art.SETS.values()),
                    reason="benchmark data (../shared/data/eval) not available")
def test_reproduces_published_jpeg_q10():
    rows = art.evaluate({}, sets=("live1", "classic5"), qualities=(10,))
    got = {r["set"]: r for r in rows}
    assert got["live1"]["n_images"] == 29 and got["classic5"]["n_images"] == 5
    assert got["live1"]["psnr"] == pytest.approx(27.77, abs=art.REPRO_TOL_DB)
    assert got["classic5"]["psnr"] == pytest.approx(27.82, abs=art.REPRO_TOL_DB)
