"""The post-filter's integer runtime (blockcodec.convnet8, cext/convnet8.c).

Specification:
  * the C core computes exactly the arithmetic the program states (the
    numpy reference in convnet8_reference.py), for the shipped WDSR program
    on natural and extreme planes of awkward sizes;
  * every kernel (BLOCKCODEC_SIMD), thread count and tile size gives the
    same bytes;
  * BLOCKCODEC_SIMD lowers the kernel level and an unknown value is refused;
  * malformed programs are refused with a clear error before anything runs;
  * the quality byte is computed in integers and equals 255 times the float
    quality feature, rounded, for every table the codec uses.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from blockcodec import BlockcodecError, _cext, convnet8, postfilter, quantization, zoo

import convnet8_reference
from conftest import textured_image

LEVELS = ["none"] + (["avx2"] if _cext.simd_level() != "none" else [])


@pytest.fixture(scope="module")
def program():
    return convnet8.load(zoo.path("wdsr-int8"))


def _planes():
    rgb = textured_image(45, 61, seed=3)
    yield rgb[:, :, 1].copy()                                        # natural texture, odd size
    yield np.full((9, 13), 255, np.uint8)                            # saturated
    rng = np.random.default_rng(0)
    yield rng.integers(0, 256, (23, 17)).astype(np.uint8)            # noise: large activations
    yield np.zeros((1, 1), np.uint8)


@pytest.mark.parametrize("index", range(4))
def test_c_core_matches_the_reference_arithmetic(program, index):
    plane = list(_planes())[index]
    consts = bytes([150, 0, 0])
    expected = convnet8_reference.run(program, plane, consts)
    for level in LEVELS:
        got = program.run(plane, consts, simd=LEVELS.index(level), threads=1)
        np.testing.assert_array_equal(got, expected, err_msg=f"kernel {level}")


def test_every_kernel_thread_count_and_tile_size_gives_the_same_bytes(program):
    plane = textured_image(150, 203, seed=5)[:, :, 0].copy()
    ref = program.run(plane, bytes([90, 0, 0]), simd=0, threads=1, tile=256)
    for level in range(len(LEVELS)):
        for threads in (1, 2, 3):
            for tile in (8, 24, 64, 1000):
                got = program.run(plane, bytes([90, 0, 0]), simd=level, threads=threads, tile=tile)
                assert np.array_equal(got, ref), (LEVELS[level], threads, tile)


def test_blockcodec_simd_lowers_the_kernel_level(monkeypatch):
    monkeypatch.setenv("BLOCKCODEC_SIMD", "none")
    assert _cext.simd_level() == "none"
    monkeypatch.setenv("BLOCKCODEC_SIMD", "avx2")
    assert _cext.simd_level() == LEVELS[-1]            # never above what the CPU has
    monkeypatch.setenv("BLOCKCODEC_SIMD", "avx1024")
    with pytest.raises(ValueError, match="BLOCKCODEC_SIMD"):
        _cext.simd_level()


def _arrays(program_path):
    with np.load(program_path) as z:
        return {k: z[k].copy() for k in z.files}


@pytest.mark.parametrize("breakage, message", [
    (lambda a: a["w1"].flat.__setitem__(0, 65), "weight"),
    (lambda a: a["ops"].__setitem__((0, 5), 30), "shift"),
    (lambda a: a["ops"].__setitem__((0, 2), 9), "out of range"),
    (lambda a: a["ops"].__setitem__((0, 4), 7), "kernel"),
    (lambda a: a["buffers"].__setitem__((2, 2), 7), "zero"),
    (lambda a: a.pop("m3"), "m3"),
    (lambda a: a.__setitem__("b1", a["b1"][:-1]), "bias"),
])
def test_malformed_programs_are_refused(breakage, message):
    arrays = _arrays(zoo.path("wdsr-int8"))
    convnet8.from_arrays(dict(arrays))                # the shipped one is fine
    breakage(arrays)
    with pytest.raises(BlockcodecError, match=message):
        convnet8.from_arrays(arrays)


def test_quality_byte_is_the_float_feature_in_integers():
    for quality in range(1, 101):
        for chroma in (False, True):
            table = quantization.qtable(quality, chroma)
            mean = float(np.mean(table))
            expected = min(255, max(0, math.floor(255 * math.log2(max(mean, 1.0)) / 8 + 0.5)))
            assert convnet8.quality_byte(table) == expected, (quality, chroma)


def test_the_shipped_program_is_wdsr_at_its_multiply_adds(program):
    assert program.meta["source_sha256"] == zoo.MODELS["wdsr"].sha256
    assert program.margin == 10
    # 4 blocks of 3x3 16->64->16 dominate: 73 728 of about 75 000 per pixel
    assert 73_728 < program.macs_per_pixel() < 76_000
    assert isinstance(postfilter.decoder_network("wdsr"), convnet8.Program)
