"""Many files per command (-d OUTDIR, --jobs), progress bars, --quiet."""
from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

import numpy as np
import pytest
from PIL import Image

import blockcodec
from blockcodec import cli, codec
from conftest import textured_image

FAST = ["--predictor", "planar", "--postfilter", "none"]


@pytest.fixture
def pngs(tmp_path):
    """Three small PNGs, a.png b.png c.png, and their pixels."""
    images = {}
    for i, name in enumerate("abc"):
        images[name] = textured_image(24 + 8 * i, 40, 3, seed=i)
        Image.fromarray(images[name]).save(tmp_path / f"{name}.png")
    return images


def call(argv, capsys):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_encode_names_outputs_after_the_input_stems(tmp_path, pngs, capsys):
    rc, out, err = call(["encode", *(tmp_path / f"{n}.png" for n in "abc"), "-d", tmp_path / "out", *FAST], capsys)
    assert (rc, out, err) == (0, "", "")
    assert sorted(os.listdir(tmp_path / "out")) == ["a.bkc", "b.bkc", "c.bkc"]
    for name, image in pngs.items():
        data = (tmp_path / "out" / f"{name}.bkc").read_bytes()
        assert data == blockcodec.encode(image, predictor="planar", postfilter="none")


def test_decode_writes_png_by_default_or_the_format_asked_for(tmp_path, pngs, capsys):
    streams = []
    for name, image in pngs.items():
        streams.append(tmp_path / f"{name}.bkc")
        streams[-1].write_bytes(blockcodec.encode(image, predictor="planar", postfilter="none"))
    assert call(["decode", *streams, "-d", tmp_path / "png"], capsys)[0] == 0
    assert call(["decode", *streams, "-d", tmp_path / "tif", "--format", "TIF"], capsys)[0] == 0
    for name in pngs:
        with Image.open(tmp_path / "png" / f"{name}.png") as im:
            assert im.format == "PNG"
            assert np.array_equal(np.asarray(im), blockcodec.decode((tmp_path / f"{name}.bkc").read_bytes()))
        with Image.open(tmp_path / "tif" / f"{name}.tif") as im:
            assert im.format == "TIFF"


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_bad_file_is_one_line_and_the_others_still_run(tmp_path, pngs, jobs):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    inputs = [tmp_path / "a.png", tmp_path / "bad.png", tmp_path / "missing.png", tmp_path / "c.png"]
    proc = subprocess.run([sys.executable, "-m", "blockcodec", "encode", *map(str, inputs), "-d",
                           str(tmp_path / "out"), "--jobs", str(jobs), *FAST],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert proc.returncode == 1
    assert sorted(os.listdir(tmp_path / "out")) == ["a.bkc", "c.bkc"]
    lines = proc.stderr.splitlines()
    assert "Traceback" not in proc.stderr
    assert sorted(lines[:-1]) == sorted([
        f"blockcodec: error: {tmp_path / 'bad.png'}: cannot read {str(tmp_path / 'bad.png')!r}: "
        f"not an image format Pillow can read",
        f"blockcodec: error: {tmp_path / 'missing.png'}: cannot read {str(tmp_path / 'missing.png')!r}: "
        f"no such file"])
    assert lines[-1] == "blockcodec: 2 of 4 files failed"


def test_an_existing_output_fails_that_file_only(tmp_path, pngs, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "b.bkc").write_bytes(b"keep")
    rc, _, err = call(["encode", *(tmp_path / f"{n}.png" for n in "abc"), "-d", tmp_path / "out", *FAST], capsys)
    assert rc == 1 and "already exists" in err
    assert (tmp_path / "out" / "b.bkc").read_bytes() == b"keep"
    assert (tmp_path / "out" / "c.bkc").exists()


@pytest.mark.parametrize("argv, message", [
    (["encode", "a.png", "b.png", "-o", "x.bkc"], "need -d OUTDIR"),
    (["encode", "-", "-d", "out"], "standard input"),
    (["encode", "a.png", "sub/a.png", "-d", "out"], "distinct names"),
    (["decode", "a.bkc", "-d", "out", "--format", "nope"], "cannot write that format"),
    (["encode", "a.png"], "one of the arguments -o/--output -d/--output-dir is required"),
    (["encode", "a.png", "-d", "out", "--jobs", "0"], "must be at least 1"),
])
def test_usage_errors(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rc, out, err = call(argv, capsys)
    assert rc == 2 and out == ""
    line, = err.splitlines()
    assert line.startswith("blockcodec: error: ") and message in line
    assert not (tmp_path / "out").exists()


def test_quiet_drops_warnings_but_not_errors(tmp_path, capsys):
    Image.fromarray(np.dstack([textured_image(16, 16, 3)] + [np.full((16, 16), 9, np.uint8)])).save(
        tmp_path / "rgba.png")
    argv = ["encode", tmp_path / "rgba.png", tmp_path / "missing.png", "-d", tmp_path / "out", *FAST]
    rc, _, err = call(argv, capsys)
    assert rc == 1 and "blockcodec: warning: " in err and "alpha" in err
    rc, _, err = call(argv + ["--quiet", "-f"], capsys)
    assert rc == 1 and "blockcodec: warning: " not in err and "missing.png" in err
    rc, _, err = call(["encode", tmp_path / "rgba.png", "-o", tmp_path / "one.bkc", "--quiet", *FAST], capsys)
    assert (rc, err) == (0, "")


def _on_a_terminal(argv) -> tuple[int, str]:
    """Run the CLI with standard error on a pseudo-terminal; returns (status, what it showed)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))   # a 0-column terminal shows no bar
    proc = subprocess.Popen([sys.executable, "-m", "blockcodec", *map(str, argv)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:   # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    return proc.wait(timeout=120), shown.decode(errors="replace")


def test_a_batch_shows_a_bar_over_files_on_a_terminal(tmp_path, pngs):
    rc, shown = _on_a_terminal(["encode", *(tmp_path / f"{n}.png" for n in "abc"), "-d", tmp_path / "out",
                                "--jobs", "2", *FAST])
    assert rc == 0 and "/3 [" in shown and "file/s" in shown


def test_one_image_shows_a_bar_over_blocks_on_a_terminal(tmp_path):
    Image.fromarray(textured_image(256, 256, 3)).save(tmp_path / "big.png")
    rc, shown = _on_a_terminal(["encode", tmp_path / "big.png", "-o", tmp_path / "big.bkc", *FAST])
    assert rc == 0 and "block" in shown
    rc, shown = _on_a_terminal(["encode", tmp_path / "big.png", "-o", tmp_path / "q.bkc", "--quiet", *FAST])
    assert rc == 0 and shown == ""


def test_decoding_one_image_shows_its_blocks_then_the_post_filter(tmp_path):
    (tmp_path / "big.bkc").write_bytes(blockcodec.encode(textured_image(256, 256, 3), predictor="planar"))
    rc, shown = _on_a_terminal(["decode", tmp_path / "big.bkc", "-o", tmp_path / "big.png"])
    assert rc == 0 and "block" in shown and "post-filter" in shown


def test_no_bar_when_standard_error_is_not_a_terminal(tmp_path, pngs):
    proc = subprocess.run([sys.executable, "-m", "blockcodec", "encode", str(tmp_path / "a.png"), "-o",
                           str(tmp_path / "a.bkc"), *FAST], capture_output=True, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0 and proc.stderr == b""


@pytest.mark.parametrize("shape, subsampling", [((40, 56, 3), "420"), ((33, 17, 3), "444"), ((20, 9), "420")])
def test_the_coding_loop_reports_every_block_once(shape, subsampling):
    image = textured_image(shape[0], shape[1], 3 if len(shape) == 3 else 1)
    cfg = codec.CodecConfig(subsampling=subsampling, predictor="blockcnn", postfilter="none")
    geom = codec.Geometry(shape[1], shape[0], codec.bitstream.GRAY if len(shape) == 2
                          else codec.SUBSAMPLINGS[subsampling])
    blocks = sum(h * w // 64 for h, w in geom.plane_shapes)
    steps = []
    data = codec.Codec(cfg).encode(image, keep_trace=False, progress=steps.append).data
    assert sum(steps) == blocks and len(steps) > 1
    steps.clear()
    codec.decode_result(data, progress=steps.append)
    assert sum(steps) == blocks


def test_workers_share_the_cores_instead_of_each_taking_all():
    """The worker initializer sets the codec's own thread count (the BlockCNN
    kernel) without importing torch, and torch, imported later, follows."""
    code = ("import sys; from blockcodec import batch, engine; batch._share_cores(1); "
            "print(engine.threads(), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["1", "False"]
    pytest.importorskip("torch")
    code = "from blockcodec import batch; batch._share_cores(1); import torch; print(torch.get_num_threads())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "1"
