"""End-to-end check of kodak_eval.postfilter_report on two small synthetic
images (not Kodak): every filter is scored on the same streams, against no
post-filter, with a BD-rate, a timing and the network's size."""
from __future__ import annotations

import csv

import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from conftest import synthetic_kodak  # noqa: E402
from kodak_eval import postfilter_report as report  # noqa: E402


def test_report_end_to_end(tmp_path):
    images = synthetic_kodak(tmp_path / "images")
    out = tmp_path / "out"
    argv = ["--kodak-dir", str(images), "--filters", "reshuffle,arcnn", "--qualities", "20,40,60,80",
            "--out", str(out), "--quiet"]
    assert report.main(argv) == 0

    with (out / "postfilter.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 4 * 2               # (none + 2 filters) x qualities x images
    by_key = {(r["filter"], r["quality"], r["image"]): r for r in rows}
    for (name, q, image), r in by_key.items():   # same stream, so the same rate for every filter
        assert r["bpp"] == by_key[("none", q, image)]["bpp"]
    md = (out / "postfilter.md").read_text()
    for name in ("reshuffle", "arcnn"):
        line = next(line for line in md.splitlines() if line.startswith(f"| {name} | "))
        assert "%" in line and line.count("|") == 11      # 10 columns
    assert (out / "postfilter.png").stat().st_size > 10_000


def test_unknown_filter_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        report.main(["--filters", "sharpen", "--out", str(tmp_path)])
    assert exc.value.code == 2 and "sharpen" in capsys.readouterr().err
