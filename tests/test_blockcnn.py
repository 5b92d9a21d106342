"""BlockCNN: the shipped predictor is an integer network whose predictions are
a function of its inputs alone - not of the float precision, the batch, the
thread count or the machine - and it is loaded, hashed and trained the way the
spec and the model zoo say.

The codec runs the network in the C core without torch
(blockcodec.predictors.blockcnn); the PyTorch float path it is held to and
the training model are in blockcodec.train.blockcnn_qat, and the tests that
need them skip where torch is not installed."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import blockcodec
from blockcodec import _cext, engine, predictors, quantization, zoo
from blockcodec.errors import BlockcodecError
from blockcodec.predictors import PlaneInfo
from blockcodec.predictors import blockcnn as bc

from conftest import textured_image

try:
    import torch
    from blockcodec.train import blockcnn_qat as qat
except ImportError:   # the runtime needs no torch; the float path and training do
    torch = qat = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cnn():
    return predictors.get("blockcnn")


@pytest.fixture(scope="module")
def real_inputs(cnn):
    """Network inputs from an actual encode: luma and Cr wavefronts of a textured image."""
    img = textured_image(64, 96, 3, seed=3)
    codec = blockcodec.Codec(quality=40, predictor="blockcnn")
    res = codec.encode(img)
    y, cb = res.planes[0].recon, res.planes[1].recon
    out = {}
    for chroma, plane, guides in ((False, y, None),
                                  (True, res.planes[2].recon,
                                   [engine.pad_guide(blockcodec.color.downsample_420(y)), engine.pad_guide(cb)])):
        h, w = plane.shape
        rows, cols = np.divmod(np.arange((h // 8) * (w // 8), dtype=np.int32), np.int32(w // 8))
        rows, cols = rows.astype(np.int32), cols.astype(np.int32)
        ctx = np.empty((len(rows), 24, 24), np.uint8)
        avail = np.empty((len(rows), 4), np.uint8)
        _cext.gather_contexts(plane, w, h, rows, cols, 128, ctx, avail)
        win = None if guides is None else np.stack([engine.guide_windows(g, rows, cols) for g in guides], 1)
        qt = quantization.qtable(40, chroma)
        out[chroma] = bc.build_inputs(ctx, avail, bc.quality_feature(qt), win, is_cr=chroma, chroma=chroma)
    return out


# --------------------------------------------------------------- exactness

@needs_torch
@pytest.mark.parametrize("chroma", [False, True])
def test_the_c_integer_kernel_and_the_float_path_give_identical_predictions(cnn, real_inputs, chroma):
    """The codec runs the C core's integer kernel; PyTorch float32 and
    float64 convolutions (exact below 2**24) and the rule written out in
    float64 torch are independent implementations of the same integers."""
    net, x = cnn.nets[chroma], real_inputs[chroma]
    a = net(x)
    np.testing.assert_array_equal(a, net(x, simd=0))            # plain loops, no SIMD
    np.testing.assert_array_equal(a, qat.forward_float(net, x, torch.float32))
    np.testing.assert_array_equal(a, qat.forward_float(net, x, torch.float64))
    np.testing.assert_array_equal(a, qat.forward_float(net, x, torch.float64, reference=True))
    np.testing.assert_array_equal(net(x, head=False), qat.forward_float(net, x, torch.float32, head=False))


@pytest.mark.parametrize("chroma", [False, True])
def test_extreme_inputs_give_identical_predictions(cnn, chroma):
    # Inputs at the ends of their range drive the accumulators furthest.
    net = cnn.nets[chroma]
    rng = np.random.default_rng(11)
    x = rng.choice(np.array([-128, -127, 0, 127, 128], np.int16), (40, len(net.config.inputs), 24, 24))
    np.testing.assert_array_equal(net(x), net(x, simd=0))
    if torch is not None:
        np.testing.assert_array_equal(net(x), qat.forward_float(net, x, torch.float64, reference=True))


@pytest.mark.parametrize("chroma", [False, True])
def test_batch_of_one_equals_whole_batch(cnn, real_inputs, chroma):
    net, x = cnn.nets[chroma], real_inputs[chroma]
    whole = net(x)
    singles = np.concatenate([net(x[i:i + 1]) for i in range(0, len(x), 7)])
    np.testing.assert_array_equal(singles, whole[::7])


@pytest.mark.parametrize("chroma", [False, True])
def test_any_thread_count_gives_the_same_predictions(cnn, real_inputs, chroma):
    net, x = cnn.nets[chroma], real_inputs[chroma]
    stages, shape = net._stages[True]
    a = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    outs = []
    for threads in (1, 2, 3, 7):
        out = np.empty((len(x),) + shape, np.int16)
        scratch = np.empty(_cext.intnet_scratch_len(stages, threads), np.int16)
        _cext.intnet_forward(a, len(x), stages, threads, -1, out, scratch)
        outs.append(out)
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])
    try:   # and through the predictor, with the codec's thread setting
        engine.set_threads(1)
        one = net(x)
        engine.set_threads(2)
        two = net(x)
    finally:
        engine.set_threads(None)
    np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("chroma", [False, True])
def test_blockcodec_simd_chooses_the_blockcnn_kernel_too(cnn, real_inputs, chroma, monkeypatch):
    """BLOCKCODEC_SIMD (cext/simd.h) lowers BlockCNN's kernel as it does the
    post-filter's: "none" runs the plain loops, bit-exact with the default
    kernel; an unknown level is refused, unless a level is asked for."""
    net, x = cnn.nets[chroma], real_inputs[chroma]
    monkeypatch.delenv("BLOCKCODEC_SIMD", raising=False)
    default, features = net(x), net(x, head=False)
    monkeypatch.setenv("BLOCKCODEC_SIMD", "none")
    assert _cext.simd_level() == "none"
    np.testing.assert_array_equal(net(x), default)
    np.testing.assert_array_equal(net(x, head=False), features)
    monkeypatch.setenv("BLOCKCODEC_SIMD", "avx2")
    np.testing.assert_array_equal(net(x), default)
    monkeypatch.setenv("BLOCKCODEC_SIMD", "avx1024")
    with pytest.raises(ValueError, match="BLOCKCODEC_SIMD"):
        net(x)
    np.testing.assert_array_equal(net(x, simd=0), default)   # an explicit level does not read it


def test_the_thread_setting_defaults_to_the_usable_cpus(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    engine.set_threads(None)
    assert engine.threads() == engine.available_cpus() >= 1
    if hasattr(os, "sched_getaffinity"):
        assert engine.available_cpus() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert engine.threads() == 3
    try:
        engine.set_threads(5)        # an explicit setting wins
        assert engine.threads() == 5
    finally:
        engine.set_threads(None)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError):
            engine.set_threads(bad)


def test_every_layer_is_within_the_float32_exactness_bound(cnn):
    for net in cnn.nets.values():
        for layer in net.layers:
            w = np.asarray(layer["weight"]).astype(np.int64)
            bound = np.abs(w).reshape(len(w), -1).sum(1) * 128 + np.abs(layer["bias"].astype(np.int64))
            assert bound.max() < 2 ** 24


def _conv_rule(x, w, stride, pad):
    """Exact convolution of channels-last int maps [n, h, w, cin] with
    weights [cout, cin, kh, kw], in Python-sized integers."""
    n, h, wd, cin = x.shape
    cout, _, kh, kw = w.shape
    xp = np.zeros((n, h + 2 * pad, wd + 2 * pad, cin), np.int64)
    xp[:, pad:pad + h, pad:pad + wd] = x
    ho, wo = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    acc = np.zeros((n, ho, wo, cout), np.int64)
    for ky in range(kh):
        for kx in range(kw):
            win = xp[:, ky:ky + stride * (ho - 1) + 1:stride, kx:kx + stride * (wo - 1) + 1:stride]
            acc += np.einsum("nyxc,oc->nyxo", win, w[:, :, ky, kx].astype(np.int64))
    return acc


def _stage(h, cin, w, bias, mult, shift, stride, pad, relu, lo, hi, skip_from=-1, skip_mult=None):
    return (h, h, cin, w.shape[2], w.shape[3], stride, pad, bc.pack_for_c(w), bias, mult, shift,
            skip_from, skip_mult, relu, lo, hi)


def _run(x, stages, threads=1, simd=1):
    st = stages[-1]
    ho = (st[0] + 2 * st[6] - st[3]) // st[5] + 1
    out = np.empty((len(x), ho, ho, len(st[8])), np.int16)
    _cext.intnet_forward(np.ascontiguousarray(x, dtype=np.int16), len(x), stages, threads, simd, out,
                         np.empty(_cext.intnet_scratch_len(stages, threads), np.int16))
    return out


@pytest.mark.parametrize("simd", [1, 0])   # AVX2 (where the CPU has it), plain loops
@pytest.mark.parametrize("geometry", [(9, 5, 12, 4, 2, 1), (6, 24, 24, 3, 1, 1), (6, 7, 64, 6, 1, 0),
                                      (5, 3, 9, 3, 2, 0), (7, 33, 17, 1, 1, 0)])
def test_c_layer_follows_the_integer_rule(geometry, simd):
    """One stage of the C kernel, random weights at their bounds, against
    the normative rule in plain integers: odd sizes, strides, paddings,
    channel counts that are no multiple of the vector width."""
    h, cin, cout, k, stride, pad = geometry
    rng = np.random.default_rng(h * cin + cout)
    x = rng.integers(-128, 129, (13, h, h, cin))
    w = rng.integers(-127, 128, (cout, cin, k, k)).astype(np.int8)
    bias = rng.integers(-2 ** 20, 2 ** 20, cout).astype(np.int32)
    mult = rng.integers(-32767, 32768, cout).astype(np.int32)
    for relu, lo, hi, shift in ((True, -127, 127, 21), (False, -255, 255, 25), (True, -128, 128, 0)):
        got = _run(x, (_stage(h, cin, w, bias, mult, shift, stride, pad, relu, lo, hi),), simd=simd)
        acc = _conv_rule(x, w, stride, pad)
        np.testing.assert_array_equal(got, _requant_rule(acc, bias, mult, shift, None, None, relu, 0, lo, hi))


def test_c_skip_adds_an_earlier_stages_input():
    rng = np.random.default_rng(2)
    x = rng.integers(-128, 129, (5, 6, 6, 8))
    w1, w2 = (rng.integers(-127, 128, (8, 8, 3, 3)).astype(np.int8) for _ in range(2))
    b = rng.integers(-5000, 5000, 8).astype(np.int32)
    m = rng.integers(1, 32768, 8).astype(np.int32)
    sm = rng.integers(-32767, 32768, 8).astype(np.int32)
    stages = (_stage(6, 8, w1, b, m, 20, 1, 1, True, -127, 127),
              _stage(6, 8, w2, b, m, 20, 1, 1, True, -127, 127, skip_from=0, skip_mult=sm))
    mid = _requant_rule(_conv_rule(x, w1, 1, 1), b, m, 20, None, None, True, 0, -127, 127)
    want = _requant_rule(_conv_rule(mid, w2, 1, 1), b, m, 20, x, sm, True, 0, -127, 127)
    np.testing.assert_array_equal(_run(x, stages, threads=2), want)


def test_c_kernel_refuses_what_could_overflow(cnn):
    stages, shape = cnn.nets[False]._stages[True]
    good = np.zeros((2, 24, 24, 5), np.int16)
    out = np.empty((2,) + shape, np.int16)
    scratch = np.empty(_cext.intnet_scratch_len(stages, 1), np.int16)
    _cext.intnet_forward(good, 2, stages, 1, -1, out, scratch)
    bad = good.copy()
    bad[1, 3, 4, 0] = 129                                   # inputs beyond -128..128
    with pytest.raises(ValueError, match="x: values"):
        _cext.intnet_forward(bad, 2, stages, 1, -1, out, scratch)
    wide = list(stages[0])
    wide[7] = wide[7].copy()
    wide[7][0, 0, 0] = 128                                  # a weight beyond int8's symmetric range
    with pytest.raises(ValueError, match="weights"):
        _cext.intnet_forward(good, 2, (tuple(wide),) + stages[1:], 1, -1, out, scratch)
    loose = list(stages[0])
    loose[15] = 129                                         # an inner stage must clamp to -128..128
    with pytest.raises(ValueError, match="lo/hi"):
        _cext.intnet_forward(good, 2, (tuple(loose),) + stages[1:], 1, -1, out, scratch)
    with pytest.raises(ValueError, match="previous stage"):
        _cext.intnet_forward(good, 2, stages[:1] + stages[2:], 1, -1, out, scratch)
    with pytest.raises(ValueError, match="scratch"):
        _cext.intnet_forward(good, 2, stages, 2, -1, out, scratch[:10])
    with pytest.raises(ValueError, match="out: expected 128 elements"):
        _cext.intnet_forward(good, 2, stages, 1, -1, out[:1], scratch)


def _requant_rule(acc, bias, mult, shift, skip, skip_mult, relu, offset, lo, hi):
    """The normative integer rule (docs/FORMAT.md), in Python integers."""
    out = np.empty(acc.shape, np.int64)
    for idx in np.ndindex(acc.shape):
        c = idx[-1]
        v = (int(acc[idx]) + int(bias[c])) * int(mult[c])
        if skip is not None:
            v += int(skip[idx]) * int(skip_mult[c])
        if relu and v < 0:
            y = (v + (1 << (shift + 2))) >> (shift + 3)
        else:
            y = (v + ((1 << shift) >> 1)) >> shift
        out[idx] = min(max(y + offset, lo), hi)
    return out


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("with_skip", [True, False])
def test_c_requantizer_follows_the_integer_rule(relu, with_skip):
    rng = np.random.default_rng(5)
    n, channels, shift = 300, 13, 17
    acc = rng.integers(-(2 ** 24) + 1, 2 ** 24, (n, channels))
    acc[:40] = rng.integers(-3000, 3000, (40, channels))        # near zero: ties and small values
    bias = rng.integers(-5000, 5000, channels).astype(np.int32)
    mult = rng.integers(-32767, 32768, channels).astype(np.int32)
    skip = rng.integers(-128, 128, (n, channels)) if with_skip else None
    smult = rng.integers(-32767, 32768, channels).astype(np.int32) if with_skip else None
    out = np.empty((n, channels), np.float32)
    _cext.requantize(acc.astype(np.float32), channels, 1, bias, mult, shift,
                     None if skip is None else skip.astype(np.float32), smult, relu, 3, -127, 127, out)
    np.testing.assert_array_equal(out, _requant_rule(acc, bias, mult, shift, skip, smult, relu, 3, -127, 127))


@pytest.mark.parametrize("bad", [0.5, 2.0 ** 24, -(2.0 ** 24), float("nan"), float("inf")])
def test_c_requantizer_refuses_inexact_accumulators(bad):
    acc = np.zeros((2, 4), np.float32)
    acc[1, 2] = bad
    one = np.ones(4, np.int32)
    with pytest.raises(ArithmeticError):
        _cext.requantize(acc, 4, 1, one, one, 0, None, None, True, 0, -127, 127, np.empty_like(acc))


def test_quality_feature_is_the_integer_log():
    for q in range(1, 101):
        for chroma in (False, True):
            qt = quantization.qtable(q, chroma)
            expected = np.floor(32 * np.log2(qt.astype(np.float64).sum())) - 192 - 128
            assert bc.quality_feature(qt) == int(np.clip(expected, -127, 127))


# --------------------------------------------------------------- codec level

@pytest.mark.parametrize("shape,sub", [((37, 53, 3), "420"), ((40, 24, 3), "444"), ((33, 17), "420")])
def test_blockcnn_round_trip(shape, sub):
    img = textured_image(shape[0], shape[1], shape[2] if len(shape) == 3 else 1, seed=1)
    img = img.reshape(shape)
    res = blockcodec.Codec(quality=55, predictor="blockcnn", subsampling=sub).encode(img)
    np.testing.assert_array_equal(blockcodec.decode(res.data, postfilter="none"), res.image)


def test_blockcnn_predicts_better_than_planar():
    img = textured_image(96, 128, 3, seed=4)
    sizes = {p: len(blockcodec.encode(img, 50, predictor=p)) for p in ("planar", "blockcnn")}
    assert sizes["blockcnn"] < sizes["planar"]


def test_stream_records_model_and_hash(cnn):
    data = blockcodec.encode(textured_image(16, 16, 3), 50, predictor="blockcnn")
    header, _ = blockcodec.bitstream.unpack(data)
    assert header.predictor_id == predictors.id_of("blockcnn") == 3
    assert header.predictor_hash == cnn.weights_hash() != bytes(4)


# --------------------------------------------------------------- weights and zoo

@pytest.mark.parametrize("name", ["blockcnn", "blockcnn-cl"])
def test_shipped_weights_match_the_zoo(name):
    card = zoo.MODELS[name]
    path = zoo.path(name)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == card.sha256
    assert path.stat().st_size < 4 * 2 ** 20
    with np.load(path, allow_pickle=False) as z:       # plain arrays, no pickles
        meta = json.loads(bytes(z["meta"]).decode())
    assert meta["luma"]["chroma"] is False and meta["chroma"]["chroma"] is True


def test_weights_hash_covers_the_tensors(tmp_path, cnn):
    with np.load(zoo.path("blockcnn"), allow_pickle=False) as z:
        arrays = {k: z[k].copy() for k in z.files}
    arrays["luma/l0.bias"][0] += 1
    path = tmp_path / "tweaked.npz"
    np.savez(path, **arrays)
    assert bc.BlockCNNPredictor(path).weights_hash() != cnn.weights_hash()


def test_weights_that_could_break_exactness_are_refused(tmp_path):
    with np.load(zoo.path("blockcnn"), allow_pickle=False) as z:
        arrays = {k: z[k].copy() for k in z.files}
    arrays["luma/l4.weight"][:] = 127     # with the bias: above 2**24
    arrays["luma/l4.bias"][:] = 2 ** 23
    path = tmp_path / "huge.npz"
    np.savez(path, **arrays)
    with pytest.raises(BlockcodecError, match="exactness"):
        bc.BlockCNNPredictor(path)


def test_a_modified_shipped_file_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / "blockcodec" / "data"
    fake.mkdir(parents=True)
    shutil.copy(zoo.path("blockcnn"), fake / "blockcnn.npz")
    with open(fake / "blockcnn.npz", "ab") as f:
        f.write(b"\0")
    monkeypatch.setattr(zoo.resources, "files", lambda pkg: tmp_path / "blockcodec")
    with pytest.raises(BlockcodecError, match="sha256"):
        zoo.path("blockcnn")


# --------------------------------------------------------------- training

def _train_cmd(data, workdir, extra=()):
    return ["train", "predictor", "--data", str(data), "--workdir", str(workdir),
            "--output", str(workdir / "w.npz"), "--steps", "6", "--batch", "16", "--no-progress",
            "--width", "8", "--chroma-width", "8", *extra]


@needs_torch
def test_training_runs_resumes_and_exports_a_usable_model(training_images, tmp_path):
    from blockcodec.cli import main
    assert main(_train_cmd(training_images, tmp_path)) == 0
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert {"data", "baseline", "start", "val", "qat"} <= {r["event"] for r in log}
    p = bc.BlockCNNPredictor(tmp_path / "w.npz")
    x = np.full((3, 24, 24), 128, np.uint8)
    out = p.predict(x, np.ones((3, 4), np.uint8), PlaneInfo(0, False, 50, quantization.qtable(50, False)))
    assert out.shape == (3, 8, 8) and out.dtype == np.uint8
    # Resuming a finished run continues from its checkpoint and re-exports.
    assert main(_train_cmd(training_images, tmp_path, ["--resume", "--steps", "8"])) == 0
    assert any(json.loads(line)["event"] == "resume" for line in (tmp_path / "log.jsonl").read_text().splitlines())


@needs_torch
def test_training_runs_data_parallel_under_torchrun(training_images, tmp_path):
    """World size 2 on CPU (gloo), a few steps."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "blockcodec", *_train_cmd(training_images, tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    start = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()
             if json.loads(line)["event"] == "start"]
    assert start and start[0]["world"] == 2
    assert bc.BlockCNNPredictor(tmp_path / "w.npz").weights_hash() != bytes(4)


@needs_torch
def test_batches_are_padded_to_few_sizes():
    """oneDNN compiles a kernel per batch size: the float path pads its
    batches to a few sizes (the padding rows never change a prediction: see
    the batch-of-one tests above), wasting little where batches are large."""
    sizes = {qat._batch_bucket(n) for n in range(1, 1025)}
    assert len(sizes) <= 40
    for n in range(1, 2000):
        b = qat._batch_bucket(n)
        assert b >= n and b - n < max(8, n / 4)
