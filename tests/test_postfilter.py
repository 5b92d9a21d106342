"""The codec's post-filter.

Specification:
  * every shipped restoration network is in the zoo, verified by sha256,
    loads as the architecture its name says, and has a bitstream id;
  * the encoder records the chosen post-filter (id and the first 4 bytes of
    its weights' sha256) without changing a single coded bit;
  * the decoder applies the recorded post-filter by default, a caller's
    choice instead when given, and with "none" reproduces the encoder's
    in-loop reconstruction bit for bit;
  * the post-filter runs on the decoded planes, each conditioned on its own
    quantization table, for gray, 4:2:0 and 4:4:4 images of any size;
  * streams naming an unknown post-filter, or other weights than this build
    ships, are refused with a one-line error that says how to decode anyway;
  * the default post-filter improves PSNR on a natural photograph;
  * the decoder runs WDSR as its shipped, verified integer program (C core,
    no torch), within a few hundredths of a dB of the float network; a
    program made from other weights is refused.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

import blockcodec
from blockcodec import bitstream, postfilter, zoo
from blockcodec.codec import Codec, CodecConfig, decode_result

from conftest import psnr, textured_image
from test_robustness import forge

torch = pytest.importorskip("torch")

FILTERS = postfilter.NAMES[1:]
KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"


@pytest.mark.parametrize("name", FILTERS)
def test_every_postfilter_is_shipped(name):
    card = zoo.MODELS[name]
    assert card.kind == "postfilter" and card.command and card.data
    p = zoo.path(name)
    assert hashlib.sha256(p.read_bytes()).hexdigest() == card.sha256
    assert p.stat().st_size < 4_000_000                 # small enough to ship
    net = postfilter.network(name)
    assert net.parameter_count() > 0 and not net.eager.training
    from blockcodec.restoration.weights import load_weights
    _, meta = load_weights(p)
    assert meta["arch"] == name


@pytest.mark.parametrize("name", FILTERS)
def test_frozen_network_matches_the_eager_one(name):
    net = postfilter.network(name)
    assert net.module is not None                        # the fast path is taken on this torch
    x = torch.rand(1, 1, 72, 104)
    q = torch.tensor([0.55])
    with torch.no_grad():
        assert torch.allclose(net(x, q), net.eager(x, q), atol=2e-3)


def test_ids_are_distinct_and_none_is_zero():
    assert postfilter.IDS["none"] == 0
    assert len(set(postfilter.IDS.values())) == len(postfilter.IDS)
    assert postfilter.DEFAULT in FILTERS


@pytest.mark.parametrize("name", ["none", *FILTERS])
def test_encoder_records_the_postfilter_without_changing_the_coded_bits(name):
    img = textured_image(24, 40, 3, seed=3)
    ref = Codec(quality=40, postfilter="none").encode(img)
    res = Codec(quality=40, postfilter=name).encode(img)
    assert res.header.postfilter_id == postfilter.id_of(name)
    assert res.header.postfilter_hash == postfilter.weights_hash(name)
    # Same payload, same reconstruction: only the header's two fields differ.
    assert res.data[bitstream.HEADER_SIZE:-4] == ref.data[bitstream.HEADER_SIZE:-4]
    np.testing.assert_array_equal(res.image, ref.image)


@pytest.mark.parametrize("shape,sub", [((37, 53), "420"), ((37, 53, 3), "420"), ((24, 16, 3), "444"),
                                       ((1, 1, 3), "420")])
def test_decode_applies_the_recorded_postfilter(shape, sub):
    img = textured_image(shape[0], shape[1], shape[2] if len(shape) == 3 else 1, seed=5)
    enc = Codec(CodecConfig(quality=30, subsampling=sub)).encode(img)
    assert enc.header.postfilter_id == postfilter.id_of(postfilter.DEFAULT)
    raw = decode_result(enc.data, postfilter_choice="none")
    np.testing.assert_array_equal(raw.image, enc.image)         # the exact in-loop reconstruction
    out = decode_result(enc.data)
    assert out.postfilter == postfilter.DEFAULT and out.image.shape == img.shape
    planes = postfilter.apply(postfilter.DEFAULT, [tr.recon for tr in raw.planes], 30)
    from blockcodec.codec import Geometry, _assemble
    geom = Geometry(enc.header.width, enc.header.height, enc.header.mode)
    np.testing.assert_array_equal(out.image, _assemble(planes, geom))
    np.testing.assert_array_equal(blockcodec.decode(enc.data), out.image)


def test_each_plane_is_conditioned_on_its_own_table(monkeypatch):
    from blockcodec import convnet8
    from blockcodec.quantization import qtable
    seen = []
    real = convnet8.Program.run

    def spy(self, plane, consts, *a, **k):
        seen.append(consts[0])
        return real(self, plane, consts, *a, **k)

    monkeypatch.setattr(convnet8.Program, "run", spy)
    img = textured_image(16, 16, 3, seed=1)
    blockcodec.decode(blockcodec.encode(img, 20))
    assert seen == [convnet8.quality_byte(qtable(20, False))] + [convnet8.quality_byte(qtable(20, True))] * 2
    assert seen[0] != seen[1]


def test_float_networks_are_conditioned_on_each_plane_s_table(monkeypatch):
    seen = []
    from blockcodec.restoration import tiling
    real = tiling.restore

    def spy(net, image, q, *a, **k):
        seen.append(q)
        return real(net, image, q, *a, **k)

    monkeypatch.setattr(tiling, "restore", spy)
    img = textured_image(16, 16, 3, seed=1)
    blockcodec.decode(blockcodec.encode(img, 20), postfilter="arcnn")
    from blockcodec.quantization import qtable
    from blockcodec.restoration import quality_feature
    assert seen == [quality_feature(qtable(20, False))] + [quality_feature(qtable(20, True))] * 2


def test_caller_overrides_the_stream_choice():
    img = textured_image(32, 32, 3, seed=2)
    data = blockcodec.encode(img, 25, postfilter="none")
    np.testing.assert_array_equal(blockcodec.decode(data), Codec(quality=25).encode(img).image)
    other = blockcodec.decode(data, postfilter=postfilter.DEFAULT)
    assert not np.array_equal(other, blockcodec.decode(data))
    with pytest.raises(blockcodec.BlockcodecError, match="unknown post-filter 'sharpen'"):
        blockcodec.decode(data, postfilter="sharpen")
    with pytest.raises(blockcodec.BlockcodecError, match="unknown post-filter"):
        blockcodec.encode(img, postfilter="sharpen")


@pytest.mark.parametrize("fid", [len(postfilter.IDS), 255])
def test_unknown_postfilter_id_is_refused_with_a_way_out(fid):
    data = blockcodec.encode(textured_image(9, 13, 1, seed=1))
    bad = forge(data, postfilter_id=fid)
    with pytest.raises(blockcodec.BlockcodecError, match=f"post-filter id {fid}.*'none'") as exc:
        blockcodec.decode(bad)
    assert "\n" not in str(exc.value)
    assert blockcodec.decode(bad, postfilter="none").shape == (9, 13)


def test_other_weights_are_refused():
    data = blockcodec.encode(textured_image(9, 13, 1, seed=1))
    with pytest.raises(blockcodec.BlockcodecError, match="weights 01020304"):
        blockcodec.decode(forge(data, postfilter_hash=b"\x01\x02\x03\x04"))


@pytest.mark.parametrize("choice", [None, "none", "wdsr"])
def test_hash_without_postfilter_is_corrupt(choice):
    """FORMAT.md check 12's first half holds whatever the caller chooses: the
    header itself is inconsistent."""
    data = blockcodec.encode(textured_image(9, 13, 1, seed=1), postfilter="none")
    with pytest.raises(blockcodec.BlockcodecError, match="corrupt stream"):
        blockcodec.decode(forge(data, postfilter_hash=b"\x01\x02\x03\x04"), postfilter=choice)


@pytest.mark.skipif(not KODAK.is_dir(), reason="needs ../shared/data/kodak")
@pytest.mark.parametrize("quality", [15, 50])
def test_default_postfilter_improves_a_photograph(quality):
    from PIL import Image
    rgb = np.asarray(Image.open(KODAK / "kodim23.png").convert("RGB"))[128:384, 192:576]
    enc = Codec(quality=quality).encode(rgb)
    gain = psnr(rgb, blockcodec.decode(enc.data)) - psnr(rgb, enc.image)
    assert gain > 0.15, f"post-filter gain {gain:.3f} dB at q{quality}"


def test_the_decoder_runs_wdsr_as_its_shipped_integer_program():
    from blockcodec import convnet8
    card = zoo.MODELS["wdsr-int8"]
    assert card.kind == "integer program" and card.command and card.data
    program = postfilter.decoder_network("wdsr")
    assert isinstance(program, convnet8.Program)
    assert program.meta["source_sha256"] == zoo.MODELS["wdsr"].sha256
    for name in FILTERS:
        if name != "wdsr":
            assert postfilter.decoder_network(name) is postfilter.network(name)


@pytest.mark.skipif(not KODAK.is_dir(), reason="needs ../shared/data/kodak")
def test_integer_post_filter_is_within_a_few_hundredths_of_a_db_of_the_float_one():
    from PIL import Image
    rgb = np.asarray(Image.open(KODAK / "kodim19.png").convert("RGB"))[96:352, 128:512]
    for quality in (20, 60):
        data = Codec(quality=quality).encode(rgb).data
        fast = decode_result(data)
        planes = [tr.recon for tr in decode_result(data, postfilter_choice="none").planes]
        exact = postfilter.apply("wdsr", planes, quality, exact=True)
        for a, b in zip([tr.recon for tr in fast.planes], planes):
            np.testing.assert_array_equal(a, b)             # the in-loop planes are untouched
        from blockcodec.codec import Geometry, _assemble
        geom = Geometry(fast.header.width, fast.header.height, fast.header.mode)
        loss = psnr(rgb, _assemble(exact, geom)) - psnr(rgb, fast.image)
        assert -0.02 < loss < 0.03, f"the integer program costs {loss:.3f} dB at q{quality}"


def test_a_program_made_from_other_weights_is_refused(monkeypatch, tmp_path):
    import json
    with np.load(zoo.path("wdsr-int8")) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(bytes(arrays["meta"]).decode())
    meta["source_sha256"] = "0" * 64
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    stale = tmp_path / "stale.npz"
    np.savez(stale, **arrays)
    real = zoo.path
    monkeypatch.setattr(zoo, "path", lambda name: stale if name == "wdsr-int8" else real(name))
    postfilter.decoder_network.cache_clear()
    try:
        with pytest.raises(blockcodec.BlockcodecError, match="other weights"):
            postfilter.decoder_network("wdsr")
    finally:
        postfilter.decoder_network.cache_clear()


def test_int8_command_writes_a_usable_program_and_keeps_existing_files(training_images, tmp_path):
    from blockcodec import convnet8
    from blockcodec.cli import main
    out = tmp_path / "wdsr.int8.npz"
    args = ["train", "int8", "--data", str(training_images), "--images", "3", "--no-progress", "--output", str(out)]
    assert main(args) == 0
    program = convnet8.load(out)
    assert program.meta["source_sha256"] == zoo.MODELS["wdsr"].sha256
    plane = textured_image(40, 40, seed=1)[:, :, 0].copy()
    assert program.run(plane, bytes([120, 0, 0])).shape == plane.shape
    before = out.read_bytes()
    assert main(args) != 0                                   # an existing file is kept ...
    assert out.read_bytes() == before
    assert main(args + ["--force"]) == 0                     # ... unless asked, and the result repeats
    assert out.read_bytes() == before
