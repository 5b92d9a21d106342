"""Properties of the codec, checked on generated inputs (hypothesis).

Specification:
  * the decoded shape equals the input shape, for any size;
  * raising the quality does not lower PSNR (beyond a 0.5 dB allowance;
    see test_higher_quality_does_not_lower_psnr for the quality gap used);
  * encoding is deterministic: same input and settings -> same bytes;
  * decoding is deterministic: independent of thread settings and of
    concurrent use;
  * the engine's wavefront batching is only an optimisation: coding the
    blocks one at a time in raster order gives the same coefficients and
    reconstruction, whatever the batch size the predictor sees.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import blockcodec
from blockcodec import Codec, CodecConfig, _cext, engine, predictors, quantization
from blockcodec.predictors import FILL, PlaneInfo, Predictor
from blockcodec.predictors.base import LEFT, TOP, TOP_LEFT, TOP_RIGHT
from conftest import noise_image, psnr, smooth_image, textured_image

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

PREDICTORS = sorted(predictors.REGISTRY)
KINDS = {"smooth": smooth_image, "textured": textured_image, "noise": noise_image}


@st.composite
def images(draw, min_side=1, max_side=70, kinds=tuple(KINDS)):
    h = draw(st.integers(min_side, max_side))
    w = draw(st.integers(min_side, max_side))
    channels = draw(st.sampled_from([1, 3]))
    kind = draw(st.sampled_from(kinds))
    seed = draw(st.integers(0, 2**16))
    return KINDS[kind](h, w, channels, seed)


configs = st.builds(
    CodecConfig,
    quality=st.integers(1, 100),
    subsampling=st.sampled_from(["420", "444"]),
    predictor=st.sampled_from(PREDICTORS),
    dc_prediction=st.sampled_from([None, False, True]),
)


# ------------------------------------------------------------------ codec level

@SETTINGS
@given(img=images(), cfg=configs)
def test_shape_preserved_and_decoder_matches_encoder(img, cfg):
    res = Codec(cfg).encode(img)
    assert blockcodec.decode(res.data).shape == img.shape       # with the recorded post-filter
    out = blockcodec.decode(res.data, postfilter="none")
    assert out.shape == img.shape
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, res.image)


@SETTINGS
@given(img=images(min_side=16, max_side=64, kinds=("smooth",)),
       q_lo=st.integers(1, 85), gap=st.integers(15, 99),
       predictor=st.sampled_from(PREDICTORS), subsampling=st.sampled_from(["420", "444"]))
def test_higher_quality_does_not_lower_psnr(img, q_lo, gap, predictor, subsampling):
    """Quality q_hi >= q_lo + 15 is at least as good as q_lo, within 0.5 dB.

    The gap is deliberate: on tiny images (a handful of blocks) quantization
    is lumpy, and qualities a few steps apart can swap order by more than a
    dB (measured: up to ~1.4 dB between adjacent qualities on 16..70 px
    images).  From a gap of 15 on, the higher quality has always won by a
    clear margin in measurements."""
    q_hi = min(100, q_lo + gap)
    kw = dict(predictor=predictor, subsampling=subsampling)
    p_lo = psnr(img, blockcodec.decode(blockcodec.encode(img, q_lo, **kw)))
    p_hi = psnr(img, blockcodec.decode(blockcodec.encode(img, q_hi, **kw)))
    assert p_hi >= p_lo - 0.5, (q_lo, q_hi, p_lo, p_hi)


@SETTINGS
@given(img=images(max_side=48), cfg=configs)
def test_encoding_is_deterministic(img, cfg):
    a = Codec(cfg).encode(img).data
    b = Codec(cfg).encode(img.copy()).data
    codec = Codec(cfg)
    c = codec.encode(img).data
    d = codec.encode(img).data
    assert a == b == c == d


def test_decoding_is_independent_of_the_thread_count():
    """The BlockCNN kernel shares a batch among ``engine.threads()`` threads,
    a torch post-filter among torch's: neither changes a bit."""
    try:
        import torch
    except ImportError:
        torch = None
    data = [blockcodec.encode(textured_image(45, 61, 3, seed=s), 60, predictor=p)
            for s, p in enumerate(PREDICTORS)]
    saved = torch.get_num_threads() if torch is not None else None
    try:
        outs = []
        for n in (1, 2):
            engine.set_threads(n)
            if torch is not None:
                torch.set_num_threads(n)
            outs.append([blockcodec.decode(d) for d in data])
            enc = blockcodec.encode(textured_image(45, 61, 3, seed=9), 60)
            outs[-1].append(np.frombuffer(enc, np.uint8))
    finally:
        engine.set_threads(None)
        if torch is not None:
            torch.set_num_threads(saved)
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


def test_concurrent_decodes_agree():
    """The C core releases the GIL; concurrent decodes must not interfere."""
    streams = [blockcodec.encode(textured_image(40 + s, 50, 3, seed=s), 40 + 10 * s) for s in range(4)]
    expected = [blockcodec.decode(d) for d in streams]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(3):
            got = list(pool.map(blockcodec.decode, streams * 2))
            for i, out in enumerate(got):
                np.testing.assert_array_equal(out, expected[i % 4])


# ----------------------------------------------------------------- engine level

class OneAtATime(Predictor):
    """Wraps a predictor, calling it with one block at a time."""

    def __init__(self, inner: Predictor):
        self.inner = inner
        self.batch_sizes: list[int] = []

    def predict(self, contexts, avail, plane, guides=None):
        self.batch_sizes.append(len(contexts))
        out = [np.asarray(self.inner.predict(contexts[i:i + 1], avail[i:i + 1], plane,
                                             None if guides is None else guides[i:i + 1])).reshape(1, 8, 8)
               for i in range(len(contexts))]
        return np.concatenate(out) if out else np.zeros((0, 8, 8), np.uint8)

    @property
    def causal(self):
        return self.inner.causal

    @property
    def guides(self):
        return self.inner.guides


class MixPredictor(Predictor):
    """A causal test predictor whose output depends on every pixel of all four
    causal neighbours (so any ordering mistake shows), and which checks that
    the non-causal part of its context is FILL and matches `avail`."""

    name = "mix"

    def predict(self, contexts, avail, plane, guides=None):
        c = contexts.astype(np.int32)
        # The five non-causal blocks are masked.
        assert (contexts[:, 8:16, 8:24] == FILL).all()
        assert (contexts[:, 16:24, :] == FILL).all()
        for j, (y, x) in zip((TOP_LEFT, TOP, TOP_RIGHT, LEFT), ((0, 0), (0, 8), (0, 16), (8, 0))):
            missing = avail[:, j] == 0
            assert (contexts[missing, y:y + 8, x:x + 8] == FILL).all()
        tl, t, tr, l_ = c[:, 0:8, 0:8], c[:, 0:8, 8:16], c[:, 0:8, 16:24], c[:, 8:16, 0:8]
        mix = (tl + 3 * t[:, ::-1] + 5 * tr.transpose(0, 2, 1) + 7 * l_[:, :, ::-1]) // 16
        mix = mix + (t.sum((1, 2)) + 7 * tr.sum((1, 2)) + 13 * l_.sum((1, 2)))[:, None, None] % 17 - 8
        return np.clip(mix, 0, 255).astype(np.uint8)


def raster_reference(plane, predictor, info, rounding, guides=None):
    """The coding loop written the slow, obvious way: one block at a time in
    raster order, contexts gathered with numpy from the reconstruction so far."""
    height, width = plane.shape
    n_rows, n_cols = height // 8, width // 8
    recon = np.zeros_like(plane)
    coefs = np.empty((n_rows * n_cols, 64), np.int16)
    preds = np.empty((n_rows * n_cols, 64), np.uint8)
    for r in range(n_rows):
        for c in range(n_cols):
            ctx = np.full((1, 24, 24), FILL, np.uint8)
            avail = np.zeros((1, 4), np.uint8)
            for j, (dr, dc) in zip((TOP_LEFT, TOP, TOP_RIGHT, LEFT), ((-1, -1), (-1, 0), (-1, 1), (0, -1))):
                rr, cc = r + dr, c + dc
                if rr >= 0 and 0 <= cc < n_cols:
                    avail[0, j] = 1
                    ctx[0, (dr + 1) * 8:(dr + 2) * 8, (dc + 1) * 8:(dc + 2) * 8] = \
                        recon[rr * 8:rr * 8 + 8, cc * 8:cc * 8 + 8]
            win = None
            if guides:
                rc = np.array([r], np.int32), np.array([c], np.int32)
                win = np.stack([engine.guide_windows(g, *rc) for g in guides], 1)
            pred = np.asarray(predictor.predict(ctx, avail, info, win), np.uint8).reshape(64)
            src = plane[r * 8:r * 8 + 8, c * 8:c * 8 + 8].reshape(64)
            residual = src.astype(np.int16) - pred
            q = np.empty(64, np.int16)
            _cext.fdct_quantize(residual, info.qtable, rounding, q)
            rec = np.empty(64, np.uint8)
            _cext.reconstruct(q, info.qtable, pred, rec)
            recon[r * 8:r * 8 + 8, c * 8:c * 8 + 8] = rec.reshape(8, 8)
            coefs[r * n_cols + c] = q
            preds[r * n_cols + c] = pred
    return recon, coefs, preds


ENGINE_PREDICTORS = {name: (lambda n=name: predictors.get(n)) for name in PREDICTORS}
ENGINE_PREDICTORS["mix"] = MixPredictor


@SETTINGS
@given(n_rows=st.integers(1, 7), n_cols=st.integers(1, 9), seed=st.integers(0, 2**16),
       quality=st.integers(1, 100), chroma=st.booleans(),
       kind=st.sampled_from(sorted(KINDS)), predictor=st.sampled_from(sorted(ENGINE_PREDICTORS)))
def test_wavefront_batching_equals_block_at_a_time(n_rows, n_cols, seed, quality, chroma, kind, predictor):
    plane = KINDS[kind](8 * n_rows, 8 * n_cols, 1, seed)
    pred = ENGINE_PREDICTORS[predictor]()
    info = PlaneInfo(int(chroma), chroma, quality, quantization.qtable(quality, chroma))
    rounding = quantization.Rounding().table()
    shape = plane.shape
    # Cross-component predictors read a decoded luma plane (any content will do).
    guides = [engine.pad_guide(KINDS[kind](8 * n_rows, 8 * n_cols, 1, seed + 1))] if chroma else None

    batched = engine.code_plane(plane, None, shape, pred, info, rounding, keep_trace=True, guides=guides)
    single_pred = OneAtATime(pred)
    single = engine.code_plane(plane, None, shape, single_pred, info, rounding, keep_trace=True, guides=guides)
    assert set(single_pred.batch_sizes) - {0} <= {n_rows * n_cols} | set(range(1, n_rows + 1))
    ref_recon, ref_coefs, ref_preds = raster_reference(plane, pred, info, rounding,
                                                       guides if pred.guides else None)

    for tr in (batched, single):
        np.testing.assert_array_equal(tr.coefs, ref_coefs)
        np.testing.assert_array_equal(tr.recon, ref_recon)
        np.testing.assert_array_equal(tr.prediction, ref_preds)
        np.testing.assert_array_equal(tr.residual, plane.reshape(n_rows, 8, n_cols, 8)
                                      .transpose(0, 2, 1, 3).reshape(-1, 64).astype(np.int16) - ref_preds)

    # Decoding with either batching gives the encoder's reconstruction.
    for p in (pred, OneAtATime(pred)):
        dec = engine.code_plane(None, batched.coefs, shape, p, info, None, keep_trace=True, guides=guides)
        np.testing.assert_array_equal(dec.recon, ref_recon)
        np.testing.assert_array_equal(dec.prediction, ref_preds)


@settings(max_examples=60, deadline=None)
@given(n_rows=st.integers(1, 20), n_cols=st.integers(1, 20))
def test_wavefronts_cover_every_block_once_after_its_neighbours(n_rows, n_cols):
    fronts = engine.wavefronts(n_rows, n_cols)
    when = {}
    for t, (rows, cols) in enumerate(fronts):
        assert rows.dtype == np.int32 and cols.dtype == np.int32
        assert len(rows) == len(cols)
        for r, c in zip(rows.tolist(), cols.tolist()):
            assert 0 <= r < n_rows and 0 <= c < n_cols
            assert (r, c) not in when
            when[(r, c)] = t
    assert len(when) == n_rows * n_cols
    for (r, c), t in when.items():
        for dr, dc in ((-1, -1), (-1, 0), (-1, 1), (0, -1)):
            nb = (r + dr, c + dc)
            if nb in when:
                assert when[nb] < t, ((r, c), nb)


@pytest.mark.parametrize("n_rows", [2, 5])
def test_predictor_never_sees_an_empty_batch(n_rows):
    assert all(len(r) > 0 for r, _ in engine.wavefronts(n_rows, 1))
    plane = textured_image(8 * n_rows, 8, 1, seed=1)
    spy = OneAtATime(predictors.get("planar"))
    info = PlaneInfo(0, False, 50, quantization.qtable(50, False))
    engine.code_plane(plane, None, plane.shape, spy, info, quantization.Rounding().table())
    assert 0 not in spy.batch_sizes


def test_noncausal_predictor_gets_one_batch():
    plane = textured_image(24, 40, 1, seed=1)
    spy = OneAtATime(predictors.get("none"))
    info = PlaneInfo(0, False, 50, quantization.qtable(50, False))
    engine.code_plane(plane, None, plane.shape, spy, info, quantization.Rounding().table())
    assert spy.batch_sizes == [15]


def test_noncausal_batch_holds_no_whole_plane_context_array():
    """The one batch of a context-blind predictor is the whole plane: its
    contexts are a view, not 24x24 bytes per block (9 bytes a pixel)."""
    import tracemalloc
    n_rows, n_cols = 64, 64
    coefs = np.zeros((n_rows * n_cols, 64), np.int16)
    info = PlaneInfo(0, False, 50, quantization.qtable(50, False))
    tracemalloc.start()
    try:
        engine.code_plane(None, coefs, (8 * n_rows, 8 * n_cols), predictors.get("none"), info)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * coefs.size, f"{peak / coefs.size:.1f} bytes per pixel"


class GuideMixPredictor(MixPredictor):
    """MixPredictor that also depends on every pixel of its guide windows, so
    a guide block read before it is decoded shows."""

    name = "guidemix"

    def predict(self, contexts, avail, plane, guides=None):
        out = super().predict(contexts, avail, plane).astype(np.int64)
        if guides is not None:
            g = guides.astype(np.int64)
            w = np.arange(1, 24 * 24 + 1).reshape(24, 24)
            out += ((g * w).sum((2, 3)) * np.arange(1, g.shape[1] + 1)).sum(1)[:, None, None] % 23
        return np.clip(out, 0, 255).astype(np.uint8)

    @property
    def guides(self):
        return True


@SETTINGS
@given(n_rows=st.integers(1, 7), n_cols=st.integers(1, 9), seed=st.integers(0, 2**16),
       quality=st.integers(1, 100), predictor=st.sampled_from(["guidemix", "blockcnn", "planar", "none"]))
def test_plane_group_equals_planes_one_after_another(n_rows, n_cols, seed, quality, predictor):
    """Cb and Cr coded as one group (Cr running GUIDE_LAG wavefronts behind,
    reading the Cb decoded so far) give exactly what coding Cb completely and
    then Cr would."""
    pred = GuideMixPredictor() if predictor == "guidemix" else predictors.get(predictor)
    shape = (8 * n_rows, 8 * n_cols)
    cb, cr = (textured_image(*shape, 1, seed + k) for k in (1, 2))
    luma = [engine.pad_guide(smooth_image(*shape, 1, seed))] if pred.guides else []
    infos = [PlaneInfo(k, True, quality, quantization.qtable(quality, True)) for k in (1, 2)]
    rounding = quantization.Rounding().table()

    first = engine.code_plane(cb, None, shape, pred, infos[0], rounding, True, luma)
    cr_guides = luma + ([engine.pad_guide(first.recon)] if pred.guides else [])
    second = engine.code_plane(cr, None, shape, pred, infos[1], rounding, True, cr_guides)
    jobs = [engine.PlaneJob(shape, infos[0], cb, guides=luma),
            engine.PlaneJob(shape, infos[1], cr, guides=luma, reads_previous=pred.guides)]
    group = engine.code_planes(jobs, pred, rounding, keep_trace=True)
    for want, got in zip((first, second), group):
        np.testing.assert_array_equal(got.coefs, want.coefs)
        np.testing.assert_array_equal(got.recon, want.recon)
        np.testing.assert_array_equal(got.prediction, want.prediction)
    for job, tr in zip(jobs, group):
        job.source, job.coefs = None, tr.coefs
    decoded = engine.code_planes(jobs, pred, keep_trace=True)
    for want, got in zip((first, second), decoded):
        np.testing.assert_array_equal(got.recon, want.recon)
