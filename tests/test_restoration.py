"""Restoration networks: the five architectures' shapes, sizes and calling
convention, and tiled inference.

Specification:
  * every registered architecture maps [N, C, H, W] pixels/255 and a quality
    feature [N] to an image of the same shape, in small and full size;
  * networks built with an identity start (residual heads initialised to
    zero) return their input unchanged before training;
  * the quality feature changes the output (the models are conditioned);
  * tiled inference gives any image size back in its own shape and dtype,
    and matches a whole-image pass for a network whose receptive field fits
    in the tile margin;
  * parameter and multiply-add counts are reported per model.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from blockcodec import quantization, restoration  # noqa: E402
from blockcodec.restoration import tiling  # noqa: E402

NAMES = sorted(restoration.ARCHITECTURES)
IDENTITY_AT_START = {"blockcnn-ar", "hourglass", "reshuffle", "wdsr"}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", ["small", "full"])
def test_shapes(name, size):
    net = restoration.build(name, size).eval()
    m = max(net.multiple, 8)
    x = torch.rand(2, 1, 2 * m, 3 * m)
    with torch.no_grad():
        y = net(x, torch.tensor([0.2, 0.7]))
    assert y.shape == x.shape and torch.isfinite(y).all()


@pytest.mark.parametrize("name", sorted(IDENTITY_AT_START))
def test_untrained_network_is_the_identity(name):
    net = restoration.build(name).eval()
    x = torch.rand(1, 1, 32, 48)
    with torch.no_grad():
        assert torch.allclose(net(x, torch.tensor([0.5])), x, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_quality_input_reaches_the_output(name):
    torch.manual_seed(1)
    net = restoration.build(name).eval()
    for p in net.parameters():              # leave the identity start
        p.data.add_(0.05 * torch.randn_like(p))
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(net(x, torch.tensor([0.1])), net(x, torch.tensor([0.9])))


def test_unknown_architecture_and_size_refused():
    with pytest.raises(ValueError, match="unknown restoration architecture"):
        restoration.build("srcnn")
    with pytest.raises(ValueError, match="size"):
        restoration.build("arcnn", "huge")


def test_quality_feature_orders_quantizers():
    feats = [restoration.quality_feature(quantization.qtable(q, False)) for q in (10, 50, 90, 100)]
    assert feats == sorted(feats, reverse=True)
    assert 0.0 <= feats[-1] < feats[0] <= 1.0


@pytest.mark.parametrize("shape", [(37, 53), (8, 8), (300, 17), (20, 30, 1)])
def test_tiled_restore_keeps_shape_and_dtype(shape):
    net = restoration.build("reshuffle")
    img = np.random.default_rng(0).integers(0, 256, shape).astype(np.uint8)
    out = tiling.restore(net, img, 0.5, tile=64, overlap=16)
    assert out.shape == img.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, img)      # untrained: the identity, through the tiling


def test_tiles_match_a_whole_image_pass():
    torch.manual_seed(0)
    net = restoration.build("arcnn")    # receptive field radius 9 < the 16-pixel margin
    img = np.random.default_rng(1).integers(0, 256, (70, 90)).astype(np.uint8)
    tiled = tiling.restore(net, img, 0.4, tile=32, overlap=16).astype(int)
    whole = tiling.restore(net, img, 0.4, tile=512, overlap=16).astype(int)
    assert np.abs(tiled - whole).max() <= 1 and (tiled != whole).mean() < 0.01


def test_channel_mismatch_refused():
    with pytest.raises(ValueError, match="1-channel"):
        tiling.restore(restoration.build("arcnn"), np.zeros((16, 16, 3), np.uint8), 0.5)


def test_model_sizes_are_counted():
    for name in NAMES:
        net = restoration.build(name)
        assert net.parameter_count() > 1000
        assert 1_000 < net.macs_per_pixel() < 1_000_000


# --------------------------------------------------------------- training

def _train(data, workdir, arch, extra=()):
    from blockcodec.cli import main
    return main(["train", "restoration", "--arch", arch, "--data", str(data), "--workdir", str(workdir),
                 "--output", str(workdir / "w.npz"), "--steps", "4", "--batch", "4", "--no-progress",
                 *extra])


@pytest.mark.parametrize("arch", NAMES)
def test_training_runs_resumes_and_exports_a_loadable_model(training_images, tmp_path, arch):
    import json
    from blockcodec.train.restoration import load_weights
    assert _train(training_images, tmp_path, arch) == 0
    events = [json.loads(line)["event"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert {"data", "start", "val"} <= set(events)
    net, meta = load_weights(tmp_path / "w.npz")
    assert meta["arch"] == arch and meta["trained_steps"] == 4
    out = tiling.restore(net, np.full((20, 28), 100, np.uint8), 0.5)
    assert out.shape == (20, 28)
    # Resume continues the run and exports again; the codec data is cached.
    assert _train(training_images, tmp_path, arch, ["--resume", "--steps", "6"]) == 0
    assert load_weights(tmp_path / "w.npz")[1]["trained_steps"] == 6
    assert list(tmp_path.glob("codec_train_*.npz"))


def test_easy_to_hard_transfer_starts_from_given_weights(training_images, tmp_path):
    from blockcodec.train.restoration import load_weights
    assert _train(training_images, tmp_path / "a", "arcnn") == 0
    assert _train(training_images, tmp_path / "b", "arcnn", ["--init-from", str(tmp_path / "a" / "w.npz"),
                                                        "--lr", "0"]) == 0
    a, _ = load_weights(tmp_path / "a" / "w.npz")
    b, _ = load_weights(tmp_path / "b" / "w.npz")
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k     # lr 0: the transferred weights are kept as they are


def test_studio_fraction_cuts_jpeg_patches_from_studio_range_luma():
    from blockcodec import color
    from blockcodec.train.restoration import RestorationTrainConfig, Sampler, luma
    from conftest import textured_image
    rgb = [textured_image(72, 80, 3, seed=i) for i in range(3)]
    full = [luma(a) for a in rgb]
    studio = [color.rgb_to_studio_luma(a) for a in rgb]
    assert min(int(g.min()) for g in full) < 16 or max(int(g.max()) for g in full) > 235

    def targets(fraction):
        cfg = RestorationTrainConfig(codec_fraction=0, studio_fraction=fraction)
        _, y, _, _ = Sampler(full, [], cfg, 0, seed=1, studio=studio).batch(64)
        return (y * 255).round()
    y = targets(1.0)
    assert y.min() >= 16 and y.max() <= 235          # every patch from the studio-range planes
    y = targets(0.0)
    assert y.min() < 16 or y.max() > 235             # none of them


def test_weights_of_another_architecture_are_refused(tmp_path):
    from blockcodec.train.restoration import load_weights, save_weights
    net = restoration.build("arcnn")
    save_weights(tmp_path / "w.npz", net, "wdsr", {})
    with pytest.raises(Exception):
        load_weights(tmp_path / "w.npz")


# ------------------------------------------------------- blockcodec restore

@pytest.fixture(scope="module")
def identity_weights(tmp_path_factory):
    """An untrained identity-start network: restoring must give the decoded JPEG back."""
    from blockcodec.train.restoration import save_weights
    path = tmp_path_factory.mktemp("w") / "wdsr.npz"
    save_weights(path, restoration.build("wdsr"), "wdsr", {})
    return path


def _jpeg(tmp_path, channels, quality=30, size=(45, 61)):
    from PIL import Image
    from conftest import textured_image
    img = textured_image(*size, channels, seed=5)
    path = tmp_path / f"in{channels}.jpg"
    Image.fromarray(img).save(path, format="JPEG", quality=quality)
    return path


@pytest.mark.parametrize("channels", [1, 3])
def test_restore_cli_reads_gray_and_colour_jpegs(tmp_path, identity_weights, channels):
    from PIL import Image
    from blockcodec.cli import main
    src = _jpeg(tmp_path, channels)
    out = tmp_path / "out.png"
    assert main(["restore", str(src), "-o", str(out), "--weights", str(identity_weights)]) == 0
    got = np.asarray(Image.open(out))
    ref = np.asarray(Image.open(src))
    assert got.shape == ref.shape
    # Identity network: the JPEG's own decode, up to the YCbCr -> RGB rounding for colour.
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= (0 if channels == 1 else 3)


def test_restore_cli_verbose_prints_one_summary_line(tmp_path, identity_weights, capsys):
    from blockcodec.cli import main
    out = tmp_path / "out.png"
    assert main(["restore", str(_jpeg(tmp_path, 3)), "-o", str(out), "--weights", str(identity_weights),
                 "-v"]) == 0
    line, = capsys.readouterr().err.splitlines()
    assert line.startswith("blockcodec: ") and "61x45 colour JPEG" in line and line.endswith("-> PNG")
    assert main(["restore", str(_jpeg(tmp_path, 1)), "-o", str(out), "--weights", str(identity_weights),
                 "-f"]) == 0
    assert capsys.readouterr().err == ""   # quiet without -v


def test_restore_conditions_each_plane_on_its_own_table(identity_weights, tmp_path, monkeypatch):
    from blockcodec.restoration import jpeg as rj
    seen = []
    monkeypatch.setattr(rj, "restore", lambda net, arr, q, **kw: seen.append(q) or arr)
    rj.restore_jpeg(_jpeg(tmp_path, 3, quality=20).read_bytes(), restoration.build("wdsr"))
    luma, cb, cr = seen
    assert cb == cr and luma != cb
    from blockcodec.train.restoration import jpeg_feature
    assert luma == pytest.approx(jpeg_feature(20))


def test_restore_cli_refuses_non_jpeg_input(tmp_path, identity_weights, capsys):
    from PIL import Image
    from blockcodec.cli import main
    png = tmp_path / "x.png"
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(png)
    out = tmp_path / "out.png"
    assert main(["restore", str(png), "-o", str(out), "--weights", str(identity_weights)]) == 1
    err = capsys.readouterr().err
    assert "not a JPEG" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_restore_cli_refuses_bad_weights_and_keeps_existing_output(tmp_path, capsys):
    from blockcodec.cli import main
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an npz")
    out = tmp_path / "out.png"
    out.write_bytes(b"keep me")
    assert main(["restore", str(_jpeg(tmp_path, 1)), "-o", str(out), "--weights", str(bad), "-f"]) == 1
    assert out.read_bytes() == b"keep me"
    assert "cannot load restoration weights" in capsys.readouterr().err


@pytest.mark.parametrize("model", [None, "arcnn"])
def test_restore_cli_uses_a_shipped_model_and_removes_artifacts(tmp_path, model):
    from PIL import Image
    from blockcodec.cli import main
    from conftest import psnr, smooth_image
    original = smooth_image(64, 96, 1, seed=2)
    src = tmp_path / "in.jpg"
    Image.fromarray(original).save(src, format="JPEG", quality=10)
    out = tmp_path / "out.png"
    argv = ["restore", str(src), "-o", str(out)] + (["--model", model] if model else [])
    assert main(argv) == 0
    restored = np.asarray(Image.open(out))
    decoded = np.asarray(Image.open(src))
    assert psnr(original, restored) > psnr(original, decoded) + 0.2


def test_restore_cli_model_and_weights_are_exclusive(tmp_path, identity_weights, capsys):
    from blockcodec.cli import main
    assert main(["restore", str(_jpeg(tmp_path, 1)), "-o", str(tmp_path / "o.png"), "--model", "wdsr",
                 "--weights", str(identity_weights)]) == 2
    assert "not allowed with" in capsys.readouterr().err


@pytest.mark.parametrize("shape", [(21, 30), (16, 16), (9, 40)])
def test_self_ensemble_keeps_shape_and_the_identity(shape):
    img = np.random.default_rng(3).integers(0, 256, shape, dtype=np.uint8)
    identity = restoration.build("wdsr")          # identity start
    np.testing.assert_array_equal(tiling.restore(identity, img, 0.5, ensemble=True), img)
    torch.manual_seed(2)
    net = restoration.build("wdsr").eval()
    for p in net.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    plain = tiling.restore(net, img, 0.5)
    ens = tiling.restore(net, img, 0.5, ensemble=True)
    assert ens.shape == img.shape and ens.dtype == np.uint8 and not np.array_equal(ens, plain)


def test_wdsr_margin_covers_its_receptive_field():
    # With its own margin, tiles reproduce a whole-image pass exactly (up to float rounding).
    torch.manual_seed(4)
    net = restoration.build("wdsr").eval()
    for p in net.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    img = np.random.default_rng(4).integers(0, 256, (70, 90), dtype=np.uint8)
    tiled = tiling.restore(net, img, 0.4, tile=32).astype(int)
    whole = tiling.restore(net, img, 0.4, tile=512).astype(int)
    assert np.abs(tiled - whole).max() <= 1
