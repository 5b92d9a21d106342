"""The command line when the world misbehaves, read as its specification.

  * A closed pipe on standard output is never success: exit status 141 (the
    status of a process killed by SIGPIPE), buffered or not (``python -u``),
    for every command that writes there, including Python's final flush.
  * SIGTERM, SIGINT and SIGHUP end a run with 128 + the signal number, and no
    temp file survives them, wherever they land: during the work, just after
    the temp file is made, between its writes, at fsync, before the rename.
    What a SIGKILLed run leaves never blocks the next run.
  * An output that is a symlink is written through: the file it points to is
    replaced atomically and the link stays.  An output that is not a regular
    file (a device, FIFO, ``/dev/stdout`` on a pipe) is refused in one line.
  * One pixel limit: --max-pixels, default the format's 2^27, for the image
    read (Pillow's own bomb limit follows it, for that read only) and for the
    stream decoded (refused from its header, before any work).
"""
from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from PIL import Image

import blockcodec
from blockcodec import bitstream, cli
from test_cli import assert_one_line_error, call, run_cli


@pytest.fixture(scope="module")
def noise_png(tmp_path_factory):
    """Noise compresses badly: streams and PNGs of tens of kB, far more than
    the pipe below holds."""
    path = tmp_path_factory.mktemp("in") / "noise.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def noise_bkc(noise_png):
    path = noise_png.with_suffix(".bkc")
    path.write_bytes(blockcodec.encode(np.asarray(Image.open(noise_png)), 95, predictor="planar",
                                       postfilter="none"))
    return path


def _reset_signals():
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_DFL)   # whatever the test runner ignores


# --------------------------------------------------------------------------- closed pipes
def read_ten_bytes_then_close(args, unbuffered: bool) -> subprocess.CompletedProcess:
    """``blockcodec ARGS | head -c 10``, with a 4 kB pipe so that the output
    cannot fit in it before the reader goes away."""
    env = dict(os.environ)
    env.pop("PYTHONUNBUFFERED", None)
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.Popen([sys.executable, "-m", "blockcodec", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    fcntl.fcntl(proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, 4096)
    head = proc.stdout.read(10)
    proc.stdout.close()
    err = proc.stderr.read()
    proc.wait(60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, head, err)


@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("command", ["encode", "decode"])
def test_closed_pipe_is_never_success(command, unbuffered, noise_png, noise_bkc):
    src = noise_png if command == "encode" else noise_bkc
    extra = ["--predictor", "planar", "--postfilter", "none"] if command == "encode" else ["--postfilter", "none"]
    done = read_ten_bytes_then_close([command, src, "-o", "-", *extra], unbuffered)
    assert len(done.stdout) == 10
    assert done.returncode == cli.EXIT_PIPE, done.stderr.decode()
    assert b"Traceback" not in done.stderr and b"Exception ignored" not in done.stderr


def test_closed_pipe_at_the_final_flush(noise_bkc):
    """``info`` prints through Python's buffered text stream: its flush at the
    end must be checked too."""
    env = dict(os.environ, PYTHONUNBUFFERED="")
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from blockcodec import cli; sys.stdout.reconfigure("
                             "line_buffering=False); sys.exit(cli.main(['info', sys.argv[1]]))", str(noise_bkc)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdout.close()     # before it prints anything
    err = proc.stderr.read()
    assert proc.wait(60) == cli.EXIT_PIPE, err.decode()
    assert b"Exception ignored" not in err


def test_short_writes_are_retried(noise_bkc, monkeypatch):
    """A raw stream that takes a few bytes per call still gets them all."""
    class Trickle:
        def __init__(self):
            self.data = bytearray()

        def write(self, b):
            self.data += bytes(b[:7])
            return min(7, len(b))

    sink = Trickle()
    cli._write_all(sink.write, noise_bkc.read_bytes())
    assert bytes(sink.data) == noise_bkc.read_bytes()


# --------------------------------------------------------------------------- signals
# Run the CLI with one step of the atomic write made to stop, announce it
# (a marker file) and wait to be signalled.
PAUSING_CLI = textwrap.dedent("""
    import os, sys, time
    stage, marker = sys.argv[1], sys.argv[2]

    def pause():
        open(marker, "w").close()
        time.sleep(120)

    def before(fn):
        return lambda *a, **k: (pause(), fn(*a, **k))[1]

    def after(fn, when=lambda r, *a: True):
        def wrapped(*a, **k):
            r = fn(*a, **k)
            if when(r, *a):
                pause()
            return r
        return wrapped

    from blockcodec import cli
    if stage == "work":
        cli.write_output = before(cli.write_output)
    elif stage == "created":
        os.open = after(os.open, lambda r, path, *a: str(path).endswith(".tmp"))
    elif stage == "written":
        os.write = after(os.write, lambda r, fd, data: fd > 2)
    elif stage == "fsync":
        os.fsync = before(os.fsync)
    elif stage == "rename":
        os.replace, os.link = before(os.replace), before(os.link)
    sys.exit(cli.main(sys.argv[3:]))
""")

STAGES = ["work", "created", "written", "fsync", "rename"]


def start_paused(tmp_path, stage, args):
    marker = tmp_path / "paused"
    proc = subprocess.Popen([sys.executable, "-c", PAUSING_CLI, stage, str(marker), *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=_reset_signals)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the CLI never reached the pause"
        time.sleep(0.02)
    marker.unlink()
    return proc


@pytest.mark.parametrize("signo", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
@pytest.mark.parametrize("stage", STAGES)
def test_signal_leaves_no_temp_file(stage, signo, tmp_path, noise_png):
    out = tmp_path / "out"
    out.mkdir()
    proc = start_paused(tmp_path, stage, ["encode", noise_png, "-o", out / "x.bkc", "--predictor", "planar"])
    if stage != "work":
        assert [p.name for p in out.iterdir()][0].startswith(".x.bkc.")   # the temp file, caught in the act
    proc.send_signal(signo)
    assert proc.wait(60) == 128 + signo, proc.stderr.read().decode()
    assert list(out.iterdir()) == []
    assert b"Traceback" not in proc.stderr.read()


@pytest.mark.parametrize("force", [False, True])
def test_a_killed_runs_leftover_does_not_block_the_next(force, tmp_path, noise_png):
    out = tmp_path / "out"
    out.mkdir()
    proc = start_paused(tmp_path, "fsync", ["encode", noise_png, "-o", out / "x.bkc", "--predictor", "planar"])
    proc.kill()
    proc.wait(60)
    (leftover,) = out.iterdir()                      # SIGKILL cannot be caught
    assert leftover.name.startswith(".x.bkc.") and leftover.name.endswith(".tmp")
    done = run_cli("encode", noise_png, "-o", out / "x.bkc", "--predictor", "planar", *(["-f"] if force else []))
    assert done.returncode == 0, done.stderr.decode()
    assert sorted(p.name for p in out.iterdir()) == sorted([leftover.name, "x.bkc"])
    assert blockcodec.decode((out / "x.bkc").read_bytes()).shape == (96, 128, 3)


def test_signal_handlers_are_put_back(tmp_path, noise_png, capsys):
    """main() in process leaves the handlers as it found them, ignored ones
    included (nohup's SIGHUP stays ignored)."""
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    old = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        assert call(["encode", noise_png, "-o", tmp_path / "x.bkc", "--predictor", "planar"], capsys)[0] == 0
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, old)
    assert {s: signal.getsignal(s) for s in before} == before


# --------------------------------------------------------------------------- symlinks and special files
def test_output_through_a_symlink_replaces_the_file_it_points_to(tmp_path, noise_png, capsys):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "target.bkc"
    target.write_bytes(b"old")
    link = tmp_path / "link.bkc"
    link.symlink_to(target)
    rc, _, err = call(["encode", noise_png, "-o", link, "--predictor", "planar"], capsys)
    assert rc == 1 and "already exists" in err                       # still needs --force
    assert call(["encode", noise_png, "-o", link, "--predictor", "planar", "-f"], capsys)[0] == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert blockcodec.decode(target.read_bytes()).shape == (96, 128, 3)
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["target.bkc"]


def test_dangling_symlink_creates_its_target(tmp_path, noise_png, capsys):
    link = tmp_path / "link.bkc"
    link.symlink_to(tmp_path / "made.bkc")
    assert call(["encode", noise_png, "-o", link, "--predictor", "planar", "-f"], capsys)[0] == 0
    assert link.is_symlink() and (tmp_path / "made.bkc").stat().st_size > 0


@pytest.mark.parametrize("kind", ["fifo", "device", "link to a device", "/proc/self/fd on a pipe"])
def test_special_outputs_are_refused(kind, tmp_path, noise_png):
    """Refused even with --force, which an atomic rename would turn into
    replacing the FIFO, the link or (for root) the device node itself.  The
    real device is tried without --force only: should this ever regress, the
    test must not be able to replace /dev/null."""
    force = ["-f"]
    if kind == "fifo":
        os.mkfifo(tmp_path / "out")
        out = tmp_path / "out"
    elif kind == "device":
        out, force = "/dev/null", []
    elif kind == "link to a device":
        out = tmp_path / "out"
        out.symlink_to("/dev/null")
    else:
        out = "/proc/self/fd/1"
    proc = subprocess.run([sys.executable, "-m", "blockcodec", "encode", str(noise_png), "-o", str(out), *force,
                           "--predictor", "planar"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, timeout=60)
    line = assert_one_line_error(proc)
    assert "regular file" in line and "'-o -'" in line
    if kind in ("fifo", "link to a device"):
        assert not os.path.isfile(out)


# --------------------------------------------------------------------------- one pixel limit
def test_pillow_bomb_limit_follows_max_pixels_for_the_read_only(tmp_path, capsys, monkeypatch):
    """An image between Pillow's default limit and 2^27 pixels is accepted
    (scaled down here: Pillow's limit set below the image), and Pillow's
    setting is what it was afterwards."""
    path = tmp_path / "big.png"
    Image.fromarray(np.full((64, 80), 9, np.uint8)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    assert call(["encode", path, "-o", tmp_path / "big.bkc", "--predictor", "planar"], capsys)[0] == 0
    assert Image.MAX_IMAGE_PIXELS == 100
    rc, _, err = call(["encode", path, "-o", tmp_path / "o.bkc", "--max-pixels", 64 * 80 - 1], capsys)
    assert rc == 1 and "--max-pixels" in err and len(err.splitlines()) == 1


def test_decode_max_pixels(tmp_path, noise_bkc, capsys):
    pixels = 96 * 128
    rc, _, err = call(["decode", noise_bkc, "-o", tmp_path / "o.png", "--max-pixels", pixels - 1], capsys)
    assert rc == 1 and f"exceeds the limit of {pixels - 1}" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o.png").exists()
    assert call(["decode", noise_bkc, "-o", tmp_path / "o.png", "--max-pixels", pixels], capsys)[0] == 0


@pytest.mark.parametrize("value", ["0", "-5", "x", str(bitstream.MAX_PIXELS + 1), "1e6"])
def test_max_pixels_must_be_within_the_format(value, tmp_path, noise_bkc, capsys):
    rc, _, err = call(["decode", noise_bkc, "-o", tmp_path / "o.png", "--max-pixels", value], capsys)
    assert rc == cli.EXIT_USAGE and len(err.splitlines()) == 1


def test_api_max_pixels(noise_bkc):
    data = noise_bkc.read_bytes()
    with pytest.raises(blockcodec.BlockcodecError, match="max_pixels"):
        blockcodec.decode(data, max_pixels=96 * 128 - 1)
    assert blockcodec.decode(data, max_pixels=96 * 128, postfilter="none").shape == (96, 128, 3)
    img = np.zeros((10, 10), np.uint8)
    with pytest.raises(blockcodec.BlockcodecError, match="max_pixels"):
        blockcodec.encode(img, max_pixels=99)
    with pytest.raises(blockcodec.BlockcodecError, match="max_pixels"):
        blockcodec.encode(Image.fromarray(img), max_pixels=99)
    for bad in (0, bitstream.MAX_PIXELS + 1, 5.0, True, "100", None):
        with pytest.raises(blockcodec.BlockcodecError, match="max_pixels"):
            blockcodec.decode(data, max_pixels=bad)
    assert blockcodec.encode(img, max_pixels=np.int64(100))


def test_restore_follows_the_same_limit(tmp_path, capsys, monkeypatch):
    """``restore`` reads JPEGs under the same limit: refused over --max-pixels
    from the header, accepted between Pillow's own limit and 2^27."""
    from blockcodec.restoration.jpeg import restore_jpeg
    src = tmp_path / "in.jpg"
    Image.fromarray(np.full((24, 40), 99, np.uint8)).save(src, format="JPEG", quality=50)
    rc, _, err = call(["restore", src, "-o", tmp_path / "o.png", "--max-pixels", 24 * 40 - 1], capsys)
    assert rc == 1 and "--max-pixels" in err and len(err.splitlines()) == 1
    with pytest.raises(blockcodec.BlockcodecError, match="max_pixels"):
        restore_jpeg(src.read_bytes(), None, max_pixels=24 * 40 - 1)   # before the network is needed
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    rc, _, err = call(["restore", src, "-o", tmp_path / "o.png"], capsys)
    assert rc == 0 and err == "" and Image.MAX_IMAGE_PIXELS == 100


def test_signal_stops_a_batch_without_starting_more_files(tmp_path, noise_png):
    """A batch signalled mid-way finishes the files its workers hold, starts
    none of the others, leaves no temp file and ends with 128 + the signal."""
    inputs = []
    for i in range(12):
        inputs.append(tmp_path / f"in{i}.png")
        inputs[-1].write_bytes(noise_png.read_bytes())
    out = tmp_path / "out"
    slow = PAUSING_CLI.replace("def pause():\n    open(marker, \"w\").close()\n    time.sleep(120)",
                               "def pause():\n    open(marker, \"w\").close()\n    time.sleep(0.5)")
    assert slow != PAUSING_CLI
    proc = subprocess.Popen([sys.executable, "-c", slow, "work", str(tmp_path / "paused"), "encode", *map(str, inputs),
                             "-d", str(out), "--jobs", "2", "--predictor", "planar", "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=_reset_signals)
    deadline = time.monotonic() + 60
    while not (tmp_path / "paused").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 128 + signal.SIGTERM, proc.stderr.read().decode()
    written = [p.name for p in out.iterdir()]
    assert all(not name.startswith(".") for name in written)
    # The two running files, and at most the few the pool had already queued to its
    # workers (ProcessPoolExecutor feeds workers + 1 ahead); under load up to 5 were seen.
    assert len(written) <= 6, written
