"""End-to-end check of kodak_eval.predictor_report on one small synthetic image.

A synthetic image (not Kodak) keeps the test fast and runnable without the
data set; its size is not a multiple of 16, so the figure's cropping of the
padded planes is exercised too.
"""
from __future__ import annotations

import csv

import pytest

torch = pytest.importorskip("torch")   # BlockCNN
pytest.importorskip("matplotlib")   # the figure

from PIL import Image  # noqa: E402

from blockcodec import predictors  # noqa: E402
from conftest import textured_image  # noqa: E402
from kodak_eval import predictor_report as pr  # noqa: E402


def test_report_end_to_end(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(textured_image(72, 104, 3, seed=7)).save(images / "synthetic.png")
    out = tmp_path / "out"
    registry_before = dict(predictors.REGISTRY)
    threads_before = torch.get_num_threads()

    argv = ["--kodak-dir", str(images), "--images", "1", "--qualities", "30,50",
            "--out", str(out), "--figure-image", "synthetic", "--quiet"]
    assert pr.main(argv) == 0

    # The temporary variants are gone again, instances included.
    assert predictors.REGISTRY == registry_before
    assert not set(getattr(predictors, "_instances", {})) - set(registry_before)
    assert torch.get_num_threads() == threads_before   # the report pins, then restores

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
