"""blockcodec compare: one picture with the original, blockcodec and a JPEG of the same size."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from blockcodec import cli, compare
from conftest import textured_image


def test_the_jpeg_is_the_one_nearest_in_size():
    image = textured_image(48, 64, 3, seed=1)
    for target in (900, 2500, 6000):
        data, q = compare.jpeg_of_size(image, target)
        others = [len(compare.jpeg_encode(image, k)) for k in range(1, 101)]
        assert abs(len(data) - target) == min(abs(n - target) for n in others)
        assert len(data) == others[q - 1]


@pytest.mark.parametrize("spec, box", [
    (None, (22, 0, 256, 200)),               # a centred 256 square, clipped to the image
    ("100x50", (100, 75, 100, 50)),          # centred
    ("100x50+10+20", (10, 20, 100, 50)),
    ("500x500+250+150", (250, 150, 50, 50)),  # clipped at the right and bottom
])
def test_crop_geometry(spec, box):
    assert compare.parse_crop(spec, 300, 200) == box


@pytest.mark.parametrize("spec", ["100", "0x10", "10x10+300+0", "axb"])
def test_bad_crops_are_refused(spec):
    with pytest.raises(ValueError):
        compare.parse_crop(spec, 300, 200)


def test_sheet_shows_the_three_crops_enlarged_with_labels(tmp_path, capsys):
    image = textured_image(64, 96, 3, seed=2)
    src = tmp_path / "photo.png"
    Image.fromarray(image).save(src)
    out = tmp_path / "sheet.png"
    assert cli.main(["compare", str(src), "-q", "40", "-o", str(out), "--crop", "40x32+8+16", "--zoom", "3"]) == 0
    assert capsys.readouterr().err == ""
    sheet = np.asarray(Image.open(out).convert("RGB"))
    gap, w, h = compare.GAP, 40 * 3, 32 * 3
    first = sheet[gap:gap + h, gap:gap + w]
    expected = np.asarray(Image.fromarray(image[16:48, 8:48]).resize((w, h), Image.NEAREST))
    assert np.array_equal(first, expected)                     # the original, pixel for pixel
    labels = sheet[gap + h + gap:]
    assert (labels < 128).any()                                 # text under the panels
    _, panels = compare.compare(image, 40, crop="40x32+8+16", zoom=3)
    assert [p.title.split()[0] for p in panels] == ["original", "blockcodec", "JPEG"]
    ours, jpeg = panels[1], panels[2]
    data, _ = compare.jpeg_of_size(image, ours.size)
    assert jpeg.size == len(data) and 0 < ours.psnr < 99 and 0 < jpeg.psnr < 99


def test_default_output_name_and_one_line_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Image.fromarray(textured_image(40, 40, 1, seed=3)).save("gray.png")
    assert cli.main(["compare", "gray.png", "-q", "50"]) == 0
    assert Image.open("gray-compare.png").format == "PNG"
    assert cli.main(["compare", "gray.png", "-q", "50"]) == 1          # never overwrites without -f
    assert cli.main(["compare", "gray.png", "-q", "50", "--crop", "big"]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2 and all(line.startswith("blockcodec: error: ") for line in errors)
    assert "already exists" in errors[0] and "crop" in errors[1]
