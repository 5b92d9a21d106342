"""The codec runs without torch: encoding, decoding (the default post-filter,
WDSR, included: it runs as an integer program in the C core), ``info`` and
the Pillow plugin never import it (torch is for training, the float
reference networks and the other post-filters).  Each check runs in a fresh
interpreter, since this test process may already have imported torch for
other tests.  The decoded bytes are the same under every kernel level and
whatever torch's own CPU dispatch would have been."""
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


def test_api_encode_decode_and_pillow_do_not_import_torch(tmp_path):
    """The default predictor (BlockCNN) and post-filter (WDSR), both run in
    the C core, the header read back and the Pillow plugin, all without torch."""
    out = _run(_image_code() + """
    import numpy as np
    import blockcodec
    assert blockcodec.predictors.DEFAULT == "blockcnn-cl"
    data = blockcodec.encode(img, quality=50)              # the default predictor
    header, _ = blockcodec.bitstream.unpack(data)
    assert header.predictor_id == blockcodec.predictors.id_of("blockcnn-cl")
    raw = blockcodec.decode(data, postfilter="none")
    res = blockcodec.Codec(quality=50).encode(img)
    np.testing.assert_array_equal(raw, res.image)         # the in-loop reconstruction
    filtered = blockcodec.decode(data)                     # the default post-filter, WDSR
    assert not np.array_equal(filtered, raw)
    blockcodec.read_metadata(data)
    import io
    from PIL import Image
    blockcodec.register_pillow()
    with Image.open(io.BytesIO(data)) as im:
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), filtered)
    assert_no_torch("encode + decode + Pillow")
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


def test_cli_encode_decode_and_info_do_not_import_torch(tmp_path):
    """``blockcodec encode``, ``decode`` (with and without the post-filter) and ``info`` (which
    loads the predictor to check the stream's weights hash) through the CLI."""
    out = _run(_image_code() + """
    import contextlib, io
    from PIL import Image
    from blockcodec.cli import main
    Image.fromarray(img).save("in.png")
    assert main(["encode", "in.png", "-o", "a.bkc", "-q", "50", "--quiet"]) == 0
    assert main(["decode", "a.bkc", "-o", "out.png", "--postfilter", "none", "--quiet"]) == 0
    assert main(["decode", "a.bkc", "-o", "filtered.png", "--quiet"]) == 0
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["info", "a.bkc"]) == 0
    info = buf.getvalue()
    assert "blockcnn-cl (id 4)" in info and "matches this build" in info, info
    assert_no_torch("blockcodec encode / decode / info")
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


def test_decoded_bytes_are_the_same_under_every_kernel_and_cpu_dispatch(tmp_path):
    """The post-filtered image hashed in children forced to the plain C
    kernel, and with torch's dispatch held to an old CPU (which used to
    change 1.6 % of the post-filtered pixels), against this process."""
    import hashlib

    import blockcodec
    from conftest import textured_image
    data = blockcodec.encode(textured_image(40, 56, 3, seed=2), quality=30)
    (tmp_path / "a.bkc").write_bytes(data)
    here = hashlib.sha256(blockcodec.decode(data).tobytes()).hexdigest()
    code = """
    import hashlib, blockcodec
    print(hashlib.sha256(blockcodec.decode(open("a.bkc", "rb").read()).tobytes()).hexdigest())
    """
    import os
    for env in ({"BLOCKCODEC_SIMD": "none"}, {"BLOCKCODEC_SIMD": "avx2"},
                {"ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default"}):
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                              timeout=300, cwd=tmp_path, env={**os.environ, **env})
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.strip() == here, env
