"""The codec runs without torch: encoding, decoding without a post-filter and
``info`` never import it (torch is for training and the reference float path,
blockcodec/train/).  Each check runs in a fresh interpreter, since this test
process may already have imported torch for other tests.

The default post-filter (WDSR) still runs in torch; decoding with it is not
checked here (issue 13)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Run first in every child: remembers where torch was first imported from,
# so that a failure names the import chain instead of only saying "torch".
_WATCH = textwrap.dedent("""
    import sys, traceback

    class _WatchTorch:
        stack = None

        def find_spec(self, name, path=None, target=None):
            if (name == "torch" or name.startswith("torch.")) and _WatchTorch.stack is None:
                _WatchTorch.stack = "".join(traceback.format_stack()[:-1])
            return None          # let the normal import go on

    sys.meta_path.insert(0, _WatchTorch())

    def assert_no_torch(what):
        loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
        assert not loaded, f"{what} imported torch ({loaded[:3]}), first from:\\n{_WatchTorch.stack}"
""")


def _run(code: str, tmp_path) -> str:
    script = _WATCH + textwrap.dedent(code)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc.stdout


def _image_code() -> str:
    return f"""
    sys.path.insert(0, {str(ROOT / "tests")!r})
    from conftest import textured_image
    img = textured_image(40, 56, 3, seed=2)
    """


def test_api_encode_and_decode_with_postfilter_none_do_not_import_torch(tmp_path):
    """The default predictor (BlockCNN, run in the C core) both ways, the
    post-filter off, and the header read back, all without torch."""
    out = _run(_image_code() + """
    import numpy as np
    import blockcodec
    assert blockcodec.predictors.DEFAULT == "blockcnn"
    data = blockcodec.encode(img, quality=50)              # the default predictor
    header, _ = blockcodec.bitstream.unpack(data)
    assert header.predictor_id == blockcodec.predictors.id_of("blockcnn")
    raw = blockcodec.decode(data, postfilter="none")
    res = blockcodec.Codec(quality=50).encode(img)
    np.testing.assert_array_equal(raw, res.image)         # the in-loop reconstruction
    blockcodec.read_metadata(data)
    assert_no_torch("encode + decode(postfilter='none')")
    print("ok")
    """, tmp_path)
    assert out.strip() == "ok"


def test_cli_module_import_does_not_import_torch(tmp_path):
    out = _run("""
    import blockcodec.cli
    assert_no_torch("import blockcodec.cli")
    print("ok")
    """, tmp_path)
    assert out.strip() == "ok"


def test_cli_encode_decode_postfilter_none_and_info_do_not_import_torch(tmp_path):
    """``blockcodec encode``, ``decode --postfilter none`` and ``info`` (which
    loads the predictor to check the stream's weights hash) through the CLI."""
    out = _run(_image_code() + """
    import contextlib, io
    from PIL import Image
    from blockcodec.cli import main
    Image.fromarray(img).save("in.png")
    assert main(["encode", "in.png", "-o", "a.bkc", "-q", "50", "--quiet"]) == 0
    assert main(["decode", "a.bkc", "-o", "out.png", "--postfilter", "none", "--quiet"]) == 0
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["info", "a.bkc"]) == 0
    info = buf.getvalue()
    assert "blockcnn (id 3)" in info and "matches this build" in info, info
    assert_no_torch("blockcodec encode / decode --postfilter none / info")
    print("ok")
    """, tmp_path)
    assert out.strip() == "ok"


def test_python_m_blockcodec_info_does_not_import_torch(tmp_path):
    """``python -m blockcodec info FILE``, as a user runs it."""
    _run(_image_code() + """
    import blockcodec
    open("a.bkc", "wb").write(blockcodec.encode(img, quality=50))
    """, tmp_path)
    script = _WATCH + textwrap.dedent("""
    import runpy
    sys.argv = ["blockcodec", "info", "a.bkc"]
    try:
        runpy.run_module("blockcodec", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        assert exc.code in (0, None), exc.code
    assert_no_torch("python -m blockcodec info")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "predictor:" in proc.stdout and "blockcnn" in proc.stdout
