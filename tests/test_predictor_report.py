"""End-to-end check of kodak_eval.predictor_report on one small synthetic image.

A synthetic image (not Kodak) keeps the test fast and runnable without the
data set; its size is not a multiple of 16, so the figure's cropping of the
padded planes is exercised too.
"""
from __future__ import annotations

import csv
import sys

import pytest

pytest.importorskip("matplotlib")   # the figure

from PIL import Image  # noqa: E402

from blockcodec import engine, predictors  # noqa: E402
from conftest import textured_image  # noqa: E402
from kodak_eval import predictor_report as pr  # noqa: E402


def _synthetic_kodak(tmp_path, h, w, seed):
    """A one-image stand-in for the Kodak folder, and an output folder."""
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(textured_image(h, w, 3, seed=seed)).save(images / "synthetic.png")
    return images, tmp_path / "out"


def test_report_end_to_end(tmp_path):
    images, out = _synthetic_kodak(tmp_path, 72, 104, seed=7)
    registry_before = dict(predictors.REGISTRY)
    torch = sys.modules.get("torch")   # the report pins torch's threads only where it is loaded
    torch_before = torch.get_num_threads() if torch is not None else None
    saved = engine.set_threads(3)      # the caller's setting, which the report must restore

    argv = ["--kodak-dir", str(images), "--images", "1", "--qualities", "30,50",
            "--out", str(out), "--figure-image", "synthetic", "--quiet"]
    try:
        assert pr.main(argv) == 0
        # The report pins the threads, then restores them.
        assert engine.threads() == 3
    finally:
        engine.set_threads(saved)
    if torch is not None:
        assert torch.get_num_threads() == torch_before

    # The temporary variants are gone again, instances included.
    assert predictors.REGISTRY == registry_before
    assert not set(getattr(predictors, "_instances", {})) - set(registry_before)

    md = (out / "ablation.md").read_text()
    assert md.startswith("Command: `python -m kodak_eval.predictor_report --kodak-dir")
    assert "Date: " in md and "no post-filter" in md
    for name in pr.VARIANT_NAMES:   # one row per variant in the BD table
        assert sum(line.startswith(f"| {name} |") for line in md.splitlines()) == 1, name
    assert "## Bits per stage at quality 50" in md and "| encode s/img |" in md

    with (out / "ablation.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(pr.VARIANT_NAMES) * 2
    assert {r["variant"] for r in rows} == set(pr.VARIANT_NAMES)
    ids = {r["variant"]: int(r["predictor_id"]) for r in rows}
    assert ids["blockcnn-luma-only"] >= 200 and ids["blockcnn-chroma-only"] >= 200
    assert all(float(r["bpp"]) > 0 and float(r["psnr_rgb"]) > 20 for r in rows)

    assert (out / "prediction_synthetic.png").stat().st_size > 10_000


def test_blind_chroma_network_never_sees_its_guides():
    """The chroma-from-luma ablation runs its network with the guide windows
    at 128 (zero input), as it was trained, whatever the decoded luma is."""
    import numpy as np
    from blockcodec import quantization, zoo
    from blockcodec.predictors import PlaneInfo

    blind = pr.GuideBlind(str(zoo.path("blockcnn")))
    rng = np.random.default_rng(0)
    ctx = rng.integers(0, 256, (5, 24, 24)).astype(np.uint8)
    avail = np.ones((5, 4), np.uint8)
    info = PlaneInfo(2, True, 50, quantization.qtable(50, True))
    a, b = (rng.integers(0, 256, (5, 2, 24, 24)).astype(np.uint8) for _ in range(2))
    grey = np.full_like(a, 128)
    np.testing.assert_array_equal(blind.predict(ctx, avail, info, a), blind.predict(ctx, avail, info, b))
    np.testing.assert_array_equal(blind.predict(ctx, avail, info, a),
                                  predictors.get("blockcnn").predict(ctx, avail, info, grey))
    assert not np.array_equal(predictors.get("blockcnn").predict(ctx, avail, info, a),
                              predictors.get("blockcnn").predict(ctx, avail, info, grey))


def test_report_with_the_no_cfl_variant(tmp_path):
    from blockcodec import zoo

    images, out = _synthetic_kodak(tmp_path, 40, 56, seed=3)
    registry_before = dict(predictors.REGISTRY)
    argv = ["--kodak-dir", str(images), "--qualities", "30,50", "--out", str(out), "--no-figure",
            "--quiet", "--no-cfl-weights", str(zoo.path("blockcnn"))]
    assert pr.main(argv) == 0
    assert predictors.REGISTRY == registry_before and pr.variants() == pr.VARIANTS
    md = (out / "ablation.md").read_text()
    assert sum(line.startswith("| blockcnn-no-cfl |") for line in md.splitlines()) == 1
    assert "- blockcnn vs blockcnn-no-cfl:" in md
    with (out / "ablation.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["variant"] == "blockcnn-no-cfl"]
    assert len(rows) == 2 and all(int(r["predictor_id"]) >= 200 for r in rows)
