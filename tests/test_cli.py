"""The command line, read as its specification.

Runs ``python -m blockcodec`` in a subprocess where the process boundary matters
(exit status, stdin/stdout, "no traceback"), and ``blockcodec.cli.main(argv)`` in
process where that is faster or where a failure has to be injected.
"""
from __future__ import annotations

import io
import os
import re
import stat
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import blockcodec
from blockcodec import bitstream, cli, postfilter

W, H = 40, 24


# --------------------------------------------------------------------------- fixtures and helpers
def _rgb_array() -> np.ndarray:
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:H, 0:W]
    base = np.stack([x * 6, y * 10, (x + y) * 3], -1) + rng.normal(0, 12, (H, W, 3))
    return np.clip(base, 0, 255).astype(np.uint8)


@pytest.fixture
def rgb_array():
    return _rgb_array()


@pytest.fixture
def rgb_png(tmp_path, rgb_array):
    path = tmp_path / "rgb.png"
    Image.fromarray(rgb_array).save(path)
    return path


@pytest.fixture
def gray_png(tmp_path, rgb_array):
    path = tmp_path / "gray.png"
    Image.fromarray(rgb_array[..., 1]).save(path)
    return path


@pytest.fixture
def rgb_bkc(tmp_path, rgb_array):
    path = tmp_path / "rgb.bkc"
    path.write_bytes(blockcodec.encode(rgb_array, 75))
    return path


def run_cli(*args, stdin: bytes | None = None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "blockcodec", *map(str, args)], input=stdin,
                          stdin=None if stdin is not None else subprocess.DEVNULL,
                          capture_output=True, cwd=cwd, timeout=60)


def assert_one_line_error(proc: subprocess.CompletedProcess, status: int = 1) -> str:
    err = proc.stderr.decode()
    assert proc.returncode == status, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("blockcodec: error: "), err
    assert proc.stdout == b""
    return lines[0]


def call(argv, capsys) -> tuple[int, str, str]:
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def header_of(path) -> bitstream.Header:
    return bitstream.unpack(open(path, "rb").read())[0]


# --------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("kind", ["rgb", "gray"])
def test_roundtrip_via_files(kind, tmp_path, rgb_png, gray_png):
    src = rgb_png if kind == "rgb" else gray_png
    bkc, png = tmp_path / "x.bkc", tmp_path / "x.png"
    enc = run_cli("encode", src, "-o", bkc, "-q", 80)
    assert enc.returncode == 0, enc.stderr
    assert enc.stderr == b"" and enc.stdout == b""
    original = np.asarray(Image.open(src))
    assert bkc.read_bytes() == blockcodec.encode(original, 80)   # a thin layer over the API

    dec = run_cli("decode", bkc, "-o", png)
    assert dec.returncode == 0, dec.stderr
    with Image.open(png) as im:
        assert im.format == "PNG"
        assert im.mode == ("RGB" if kind == "rgb" else "L")
        assert im.size == (W, H)
        np.testing.assert_array_equal(np.asarray(im), blockcodec.decode(bkc.read_bytes()))


@pytest.mark.parametrize("kind", ["rgb", "gray"])
def test_roundtrip_via_stdin_stdout(kind, rgb_png, gray_png):
    src = rgb_png if kind == "rgb" else gray_png
    enc = run_cli("encode", "-", "-o", "-", stdin=src.read_bytes())
    assert enc.returncode == 0, enc.stderr
    original = np.asarray(Image.open(src))
    assert enc.stdout == blockcodec.encode(original, 75)         # default quality 75

    dec = run_cli("decode", "-", "-o", "-", stdin=enc.stdout)
    assert dec.returncode == 0, dec.stderr
    with Image.open(io.BytesIO(dec.stdout)) as im:               # '-' writes PNG
        assert im.format == "PNG"
        assert im.mode == ("RGB" if kind == "rgb" else "L")
        np.testing.assert_array_equal(np.asarray(im), blockcodec.decode(enc.stdout))


def test_options_reach_the_stream(tmp_path, rgb_png, capsys):
    out = tmp_path / "x.bkc"
    rc, _, err = call(["encode", rgb_png, "-o", out, "--quality", 33, "--subsampling", "444",
                       "--predictor", "dc"], capsys)
    assert rc == 0, err
    h = header_of(out)
    assert (h.quality, h.mode) == (33, bitstream.YCBCR444)
    assert h.predictor_id == blockcodec.predictors.id_of("dc")


def test_threads_option_never_changes_the_output(tmp_path, rgb_png, capsys):
    from blockcodec import engine
    outs = {}
    try:
        for n in (1, 2, 3):
            bkc, png = tmp_path / f"t{n}.bkc", tmp_path / f"t{n}.png"
            rc, _, err = call(["encode", rgb_png, "-o", bkc, "--threads", n], capsys)
            assert rc == 0, err
            rc, _, err = call(["decode", bkc, "-o", png, "--threads", n], capsys)   # post-filter included
            assert rc == 0, err
            assert engine.threads() == n
            outs[n] = (bkc.read_bytes(), png.read_bytes())
    finally:
        engine.set_threads(None)
    assert outs[1] == outs[2] == outs[3]
    rc, _, err = call(["decode", tmp_path / "t1.bkc", "-o", tmp_path / "z.png", "--threads", 0], capsys)
    assert rc != 0 and "threads" in err


def test_decode_format_follows_extension(tmp_path, rgb_bkc, capsys):
    for ext, fmt in [(".bmp", "BMP"), (".tif", "TIFF"), (".ppm", "PPM")]:
        out = tmp_path / f"x{ext}"
        rc, _, err = call(["decode", rgb_bkc, "-o", out], capsys)
        assert rc == 0, err
        with Image.open(out) as im:
            assert im.format == fmt
            np.testing.assert_array_equal(np.asarray(im), blockcodec.decode(rgb_bkc.read_bytes()))


def test_verbose_summary(tmp_path, rgb_png, capsys):
    rc, out, err = call(["encode", rgb_png, "-o", tmp_path / "x.bkc", "-q", 60, "-v"], capsys)
    assert rc == 0 and out == ""
    line, = err.splitlines()
    size = (tmp_path / "x.bkc").stat().st_size
    assert f"{size} bytes" in line and f"{size * 8 / (W * H):.3f} bpp" in line
    assert "quality 60" in line and re.search(r"PSNR \d+\.\d\d dB", line)


# --------------------------------------------------------------------------- info
def test_info_prints_the_header(tmp_path, rgb_png, gray_png, capsys):
    out = tmp_path / "x.bkc"
    assert call(["encode", rgb_png, "-o", out, "-q", 42], capsys)[0] == 0
    data = out.read_bytes()
    rc, text, err = call(["info", out], capsys)
    assert rc == 0 and err == ""
    fields = dict(line.split(":", 1) for line in text.splitlines())
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    payload = len(data) - bitstream.HEADER_SIZE - bitstream.CRC_SIZE
    assert fields["dimensions"] == f"{W}x{H}"
    assert fields["colour mode"] == "ycbcr420"
    assert fields["quality"] == "42"
    assert fields["predictor"] == "blockcnn-cl (id 4)"   # the default
    expected_hash = blockcodec.predictors.get("blockcnn-cl").weights_hash().hex()
    assert fields["predictor hash"].startswith(expected_hash) and "matches" in fields["predictor hash"]
    assert fields["post-filter"].startswith(f"{postfilter.DEFAULT} (id {postfilter.id_of(postfilter.DEFAULT)})")
    assert "matches this build" in fields["post-filter"]
    assert fields["payload"] == f"{payload} bytes"
    assert fields["file size"] == f"{len(data)} bytes"
    assert float(fields["bpp"]) == pytest.approx(len(data) * 8 / (W * H), abs=1e-4)

    gray = tmp_path / "g.bkc"
    assert call(["encode", gray_png, "-o", gray], capsys)[0] == 0
    rc, text, _ = call(["info", gray], capsys)
    assert rc == 0 and re.search(r"^colour mode:\s+gray$", text, re.M)


def test_info_does_not_decode_the_payload(rgb_bkc, capsys, monkeypatch):
    from blockcodec import codec, entropy

    def boom(*a, **k):
        raise AssertionError("info decoded the payload")

    monkeypatch.setattr(entropy, "Decoder", boom)
    monkeypatch.setattr(codec, "decode_result", boom)
    rc, text, err = call(["info", rgb_bkc], capsys)
    assert rc == 0, err
    assert "40x24" in text


def test_info_from_stdin(rgb_bkc):
    proc = run_cli("info", "-", stdin=rgb_bkc.read_bytes())
    assert proc.returncode == 0 and b"40x24" in proc.stdout


# --------------------------------------------------------------------------- --target-bpp
def test_target_bpp_bisection(tmp_path, rgb_png, rgb_array, capsys):
    qualities = []
    for target in [0.6, 1.0, 2.0, 5.0]:
        out = tmp_path / f"t{target}.bkc"
        rc, _, err = call(["encode", rgb_png, "-o", out, "--target-bpp", target], capsys)
        assert rc == 0 and err == ""
        bpp = out.stat().st_size * 8 / (W * H)
        q = header_of(out).quality
        assert bpp <= target
        if q < 100:   # the highest such quality: one step up is over the target
            assert len(blockcodec.encode(rgb_array, q + 1)) * 8 / (W * H) > target
        qualities.append(q)
    assert qualities == sorted(qualities)          # a higher target never lowers the quality
    assert len(set(qualities)) > 1

    out = tmp_path / "huge.bkc"
    assert call(["encode", rgb_png, "-o", out, "--target-bpp", 1000], capsys)[0] == 0
    assert header_of(out).quality == 100


def test_target_bpp_unreachable_uses_quality_1_and_warns(tmp_path, rgb_png, capsys):
    out = tmp_path / "x.bkc"
    rc, _, err = call(["encode", rgb_png, "-o", out, "--target-bpp", 0.01], capsys)
    assert rc == 0
    line, = err.splitlines()
    assert line.startswith("blockcodec: warning: ") and "quality 1" in line
    assert header_of(out).quality == 1


@pytest.mark.parametrize("value", ["0", "-1", "nan", "abc"])
def test_target_bpp_invalid(value, tmp_path, rgb_png, capsys):
    rc, _, err = call(["encode", rgb_png, "-o", tmp_path / "x.bkc", "--target-bpp", value], capsys)
    assert rc == 2 and err.startswith("blockcodec: error: ") and len(err.splitlines()) == 1


def test_quality_and_target_are_exclusive(tmp_path, rgb_png, capsys):
    rc, _, err = call(["encode", rgb_png, "-o", tmp_path / "x.bkc", "-q", 50, "--target-bpp", 1], capsys)
    assert rc == 2 and len(err.splitlines()) == 1
    assert not (tmp_path / "x.bkc").exists()


# --------------------------------------------------------------------------- errors: one line, no traceback
def _flip(data: bytes, i: int) -> bytes:
    b = bytearray(data)
    b[i] ^= 0x10
    return bytes(b)


ERROR_CASES = {
    # name: (argv builder, expected status)
    "missing input": (lambda d: ["encode", d / "nope.png", "-o", d / "o.bkc"], 1),
    "missing stream": (lambda d: ["decode", d / "nope.bkc", "-o", d / "o.png"], 1),
    "missing info": (lambda d: ["info", d / "nope.bkc"], 1),
    "directory input": (lambda d: ["encode", d, "-o", d / "o.bkc"], 1),
    "directory stream": (lambda d: ["decode", d, "-o", d / "o.png"], 1),
    "text file as image": (lambda d: ["encode", d / "text.txt", "-o", d / "o.bkc"], 1),
    "text file as stream": (lambda d: ["decode", d / "text.txt", "-o", d / "o.png"], 1),
    "png as stream": (lambda d: ["decode", d / "rgb.png", "-o", d / "o.png"], 1),
    "truncated stream": (lambda d: ["decode", d / "trunc.bkc", "-o", d / "o.png"], 1),
    "truncated stream info": (lambda d: ["info", d / "trunc.bkc"], 1),
    "flipped header byte": (lambda d: ["decode", d / "flip_head.bkc", "-o", d / "o.png"], 1),
    "flipped payload byte": (lambda d: ["decode", d / "flip_body.bkc", "-o", d / "o.png"], 1),
    "flipped crc byte": (lambda d: ["info", d / "flip_crc.bkc"], 1),
    "wrong model hash": (lambda d: ["decode", d / "hash.bkc", "-o", d / "o.png"], 1),
    "unknown predictor": (lambda d: ["encode", d / "rgb.png", "-o", d / "o.bkc", "--predictor", "nope"], 2),
    "quality 0": (lambda d: ["encode", d / "rgb.png", "-o", d / "o.bkc", "-q", "0"], 2),
    "quality 101": (lambda d: ["encode", d / "rgb.png", "-o", d / "o.bkc", "-q", "101"], 2),
    "quality not a number": (lambda d: ["encode", d / "rgb.png", "-o", d / "o.bkc", "-q", "high"], 2),
    "encode into missing dir": (lambda d: ["encode", d / "rgb.png", "-o", d / "no" / "o.bkc"], 1),
    "decode into missing dir": (lambda d: ["decode", d / "rgb.bkc", "-o", d / "no" / "o.png"], 1),
    "output is a directory": (lambda d: ["encode", d / "rgb.png", "-o", d, "-f"], 1),
    "unwritable extension": (lambda d: ["decode", d / "rgb.bkc", "-o", d / "o.xyz"], 1),
    "no extension": (lambda d: ["decode", d / "rgb.bkc", "-o", d / "o"], 1),
    "no command": (lambda d: [], 2),
    "unknown command": (lambda d: ["squash", d / "rgb.png"], 2),
    "missing -o": (lambda d: ["encode", d / "rgb.png"], 2),
}


@pytest.fixture
def bad_inputs(tmp_path, rgb_png, rgb_bkc):
    import dataclasses

    data = rgb_bkc.read_bytes()
    (tmp_path / "text.txt").write_text("hello, not an image\n")
    (tmp_path / "trunc.bkc").write_bytes(data[: len(data) // 2])
    (tmp_path / "flip_head.bkc").write_bytes(_flip(data, 5))
    (tmp_path / "flip_body.bkc").write_bytes(_flip(data, bitstream.HEADER_SIZE + 3))
    (tmp_path / "flip_crc.bkc").write_bytes(_flip(data, len(data) - 1))
    header, payload = bitstream.unpack(data)
    wrong = dataclasses.replace(header, predictor_hash=b"\xde\xad\xbe\xef")
    (tmp_path / "hash.bkc").write_bytes(bitstream.pack(wrong, payload))
    return tmp_path


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_bad_input_gives_one_line_and_status(case, bad_inputs, capsys):
    build, status = ERROR_CASES[case]
    before = {p.name: p.read_bytes() for p in bad_inputs.iterdir() if p.is_file()}
    rc, out, err = call(build(bad_inputs), capsys)
    assert rc == status, err
    assert out == ""
    line, = err.splitlines()
    assert line.startswith("blockcodec: error: ") and len(line) > len("blockcodec: error: ") + 5
    after = {p.name: p.read_bytes() for p in bad_inputs.iterdir() if p.is_file()}
    assert after == before                          # nothing written, nothing left behind


@pytest.mark.parametrize("case", ["missing input", "directory input", "text file as image",
                                  "truncated stream", "flipped payload byte", "unknown predictor",
                                  "quality 0", "quality 101", "decode into missing dir",
                                  "wrong model hash", "no command"])
def test_bad_input_in_a_subprocess(case, bad_inputs):
    build, status = ERROR_CASES[case]
    assert_one_line_error(run_cli(*build(bad_inputs)), status)


def test_error_messages_say_what_is_wrong(bad_inputs, capsys):
    d = bad_inputs
    expect = {
        "missing input": "nope.png",
        "directory input": "directory",
        "truncated stream": "truncated",
        "flipped payload byte": "CRC",
        "wrong model hash": "deadbeef",
        "unknown predictor": "nope",
        "quality 101": "101",
        "decode into missing dir": "does not exist",
        "unwritable extension": ".xyz",
    }
    for case, needle in expect.items():
        _, _, err = call(ERROR_CASES[case][0](d), capsys)
        assert needle in err, (case, err)


def test_empty_stdin(tmp_path):
    assert_one_line_error(run_cli("encode", "-", "-o", tmp_path / "o.bkc", stdin=b""), 1)
    assert_one_line_error(run_cli("decode", "-", "-o", "-", stdin=b"garbage"), 1)
    assert list(tmp_path.iterdir()) == []


def test_decompression_bomb_refused(tmp_path, rgb_png, capsys):
    """Pillow's bomb check runs at --max-pixels: just over it is Pillow's
    warning territory, twice over its error territory; both are refused."""
    for limit in (W * H - 1, W * H // 2 - 1):
        rc, _, err = call(["encode", rgb_png, "-o", tmp_path / "o.bkc", "--max-pixels", limit], capsys)
        assert rc == 1 and f"more than {limit} pixels" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o.bkc").exists()
    assert call(["encode", rgb_png, "-o", tmp_path / "o.bkc", "--max-pixels", W * H], capsys)[0] == 0


def test_unsupported_image_mode(tmp_path, capsys):
    src = tmp_path / "float.tif"
    Image.fromarray(np.zeros((H, W), np.float32)).save(src)
    rc, _, err = call(["encode", src, "-o", tmp_path / "o.bkc"], capsys)
    assert rc == 1 and "mode" in err and len(err.splitlines()) == 1


# --------------------------------------------------------------------------- protecting files
def test_existing_output_needs_force(tmp_path, rgb_png, rgb_bkc, capsys):
    out = tmp_path / "keep.bkc"
    out.write_bytes(b"precious")
    rc, _, err = call(["encode", rgb_png, "-o", out], capsys)
    assert rc == 1 and "--force" in err
    assert out.read_bytes() == b"precious"
    rc, _, err = call(["encode", rgb_png, "-o", out, "--force"], capsys)
    assert rc == 0, err
    assert out.read_bytes() == blockcodec.encode(np.asarray(Image.open(rgb_png)), 75)

    png = tmp_path / "keep.png"
    png.write_bytes(b"precious")
    assert call(["decode", rgb_bkc, "-o", png], capsys)[0] == 1
    assert png.read_bytes() == b"precious"
    assert call(["decode", rgb_bkc, "-o", png, "-f"], capsys)[0] == 0
    assert Image.open(png).size == (W, H)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.bkc", "keep.png", "rgb.bkc", "rgb.png"]


def test_output_equal_to_input_is_refused(tmp_path, rgb_png, rgb_bkc, capsys, monkeypatch):
    png_bytes, bkc_bytes = rgb_png.read_bytes(), rgb_bkc.read_bytes()
    (tmp_path / "sub").mkdir()
    os.symlink(rgb_png, tmp_path / "link.png")
    monkeypatch.chdir(tmp_path)
    for argv in (["encode", rgb_png, "-o", rgb_png, "-f"],
                 ["encode", "rgb.png", "-o", "sub/../rgb.png", "-f"],
                 ["encode", "link.png", "-o", "rgb.png", "-f"],
                 ["decode", rgb_bkc, "-o", rgb_bkc, "-f"],
                 ["decode", "rgb.bkc", "-o", "./rgb.bkc"]):
        rc, _, err = call(argv, capsys)
        assert rc == 1 and "input" in err and len(err.splitlines()) == 1, (argv, err)
    assert rgb_png.read_bytes() == png_bytes and rgb_bkc.read_bytes() == bkc_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.png", "rgb.bkc", "rgb.png", "sub"]


def test_failed_decode_leaves_nothing(tmp_path, bad_inputs, capsys):
    before = sorted(p.name for p in tmp_path.iterdir())
    for name in ["trunc.bkc", "flip_body.bkc", "hash.bkc", "text.txt"]:
        rc, _, _ = call(["decode", tmp_path / name, "-o", tmp_path / "out.png"], capsys)
        assert rc == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_failed_write_removes_the_temp_file(tmp_path, rgb_bkc, capsys, monkeypatch):
    def failing_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    rc, _, err = call(["decode", rgb_bkc, "-o", tmp_path / "out.png"], capsys)
    assert rc == 1 and "No space left" in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rgb.bkc"]


def test_interrupt_exits_130_quietly_and_cleans_up(tmp_path, rgb_png, capsys, monkeypatch):
    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    rc, out, err = call(["encode", rgb_png, "-o", tmp_path / "out.bkc"], capsys)
    assert (rc, out, err) == (130, "", "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rgb.png"]


def test_output_file_gets_the_usual_permissions(tmp_path, rgb_png, capsys):
    old = os.umask(0o022)
    try:
        assert call(["encode", rgb_png, "-o", tmp_path / "o.bkc"], capsys)[0] == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "o.bkc").stat().st_mode) == 0o644


# --------------------------------------------------------------------------- warnings
def test_rgba_warns_and_encodes(tmp_path, rgb_array):
    src = tmp_path / "rgba.png"
    Image.fromarray(np.dstack([rgb_array, np.full((H, W), 128, np.uint8)])).save(src)
    out = tmp_path / "o.bkc"
    proc = run_cli("encode", src, "-o", out)
    assert proc.returncode == 0
    line, = proc.stderr.decode().splitlines()
    assert line.startswith("blockcodec: warning: ") and "alpha" in line
    assert header_of(out).mode == bitstream.YCBCR420
    assert out.read_bytes() == blockcodec.encode(rgb_array, 75)


def test_sixteen_bit_warns(tmp_path, capsys):
    src = tmp_path / "g16.png"
    Image.fromarray((np.arange(W * H).reshape(H, W) * 60).astype(np.uint16)).save(src)
    rc, _, err = call(["encode", src, "-o", tmp_path / "o.bkc"], capsys)
    assert rc == 0 and err.startswith("blockcodec: warning: ") and "16-bit" in err
    assert header_of(tmp_path / "o.bkc").mode == bitstream.GRAY


# --------------------------------------------------------------------------- help and version
@pytest.mark.parametrize("sub", [None, "encode", "decode", "info"])
def test_help(sub, capsys):
    argv = ["--help"] if sub is None else [sub, "--help"]
    rc, out, err = call(argv, capsys)
    assert rc == 0 and err == ""
    assert "examples:" in out and "blockcodec " in out.split("examples:")[1]
    if sub == "encode":
        for opt in ("--quality", "--target-bpp", "--subsampling", "--predictor", "--force", "--verbose"):
            assert opt in out
        for name in blockcodec.predictors.REGISTRY:
            assert name in out


def test_help_and_version_in_a_subprocess():
    proc = run_cli("--help")
    assert proc.returncode == 0 and b"examples:" in proc.stdout
    proc = run_cli("encode", "--help")
    assert proc.returncode == 0 and b"examples:" in proc.stdout
    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.decode().split() == ["blockcodec", blockcodec.__version__]


def test_main_returns_instead_of_exiting(capsys):
    assert cli.main(["--version"]) == 0
    assert cli.main([]) == 2
    capsys.readouterr()


# --------------------------------------------------------------------------- post-filter
def test_postfilter_choice_on_encode_and_decode(tmp_path, rgb_png, rgb_array, capsys):
    raw_stream = tmp_path / "raw.bkc"
    assert call(["encode", rgb_png, "-o", raw_stream, "--postfilter", "none"], capsys)[0] == 0
    assert header_of(raw_stream).postfilter_id == 0
    filtered_stream = tmp_path / "f.bkc"
    assert call(["encode", rgb_png, "-o", filtered_stream], capsys)[0] == 0
    assert header_of(filtered_stream).postfilter_id == postfilter.id_of(postfilter.DEFAULT)

    outs = {}
    for name, stream, extra in [("raw", raw_stream, []), ("default", filtered_stream, []),
                                ("override", filtered_stream, ["--postfilter", "none"])]:
        out = tmp_path / f"{name}.png"
        rc, _, err = call(["decode", stream, "-o", out, "-v"] + extra, capsys)
        assert rc == 0 and "post-filter" in err
        outs[name] = np.asarray(Image.open(out))
    np.testing.assert_array_equal(outs["raw"], outs["override"])
    assert not np.array_equal(outs["raw"], outs["default"])
    np.testing.assert_array_equal(outs["raw"], blockcodec.Codec().encode(rgb_array).image)


def test_unknown_postfilter_name_is_a_usage_error(tmp_path, rgb_png, capsys):
    rc, _, err = call(["encode", rgb_png, "-o", tmp_path / "x.bkc", "--postfilter", "sharpen"], capsys)
    assert rc == 2 and "sharpen" in err


def test_building_the_command_line_does_not_import_torch():
    # Every command builds the whole parser; torch (about 2 s to import) loads
    # only when a command needs a network.
    code = "import sys, blockcodec.cli as c; c.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
