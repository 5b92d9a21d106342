"""End-to-end check of kodak_eval.encoder_report on small synthetic images
(not Kodak): every variant codes the same images, decoded as users get them,
and gets BD-rates against the first row and the previous one."""
from __future__ import annotations

import csv

import pytest

pytest.importorskip("torch")

from conftest import synthetic_kodak  # noqa: E402
from kodak_eval import encoder_report as report  # noqa: E402


def test_variants_are_parsed_into_codec_fields():
    assert report.parse_variants("a:;b:effort=0,predictor=planar;c:lambda_scale=0.05,adapt=False") == (
        ("a", ()), ("b", (("effort", 0), ("predictor", "planar"))),
        ("c", (("lambda_scale", 0.05), ("adapt", False))))


def test_report_end_to_end(tmp_path):
    images = synthetic_kodak(tmp_path / "images")
    out = tmp_path / "out"
    argv = ["--kodak-dir", str(images), "--variants", "base:effort=0;rdoq:effort=2;static:adapt=False",
            "--qualities", "20,40,60,80", "--out", str(out), "--quiet"]
    assert report.main(argv) == 0
    with (out / "encoder.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 4 * 2               # variants x qualities x images
    md = (out / "encoder.md").read_text()
    for name in ("rdoq", "static"):
        line = next(line for line in md.splitlines() if line.startswith(f"| {name} | "))
        assert line.count("%") >= 3              # vs first, vs previous, MS-SSIM vs first (+ anchors)
    # Lossy at every quality of these textured images: finite PSNRs, before and after the post-filter.
    assert all(float(r["psnr"]) < 99 and float(r["psnr_loop"]) < 99 for r in rows)
