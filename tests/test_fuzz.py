"""The decoder under random mutation: a fast, deterministic slice of the
long fuzzer (tools/fuzz_decode.py), run on every commit.

Specification (README, docs/FORMAT.md 1.1): whatever bytes ``decode`` is
given, it returns a uint8 image of the shape the header announces or raises
``BlockcodecError`` with a one-line message; it never raises anything else.
The mutations start from small valid streams of every colour mode (gray,
4:2:0, 4:4:4) and predictor (none, dc, planar, blockcnn): bit flips, byte
edits, truncations, extensions, header fields and payload words.  The CRC-32
would stop almost all of them at check 9, so each mutated stream is also
decoded with its CRC, and with its length field and CRC, made consistent.
The post-filter stays off except on streams claiming a tiny image (the
fuzzer's own rule), so the examples stay fast.
"""
from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tools.fuzz_decode import CORPUS, FIELDS, HEADER_SIZE, check, postfilter_for, seed_streams, variants

SEEDS = seed_streams()

edit = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 16), st.integers(0, 7)),
    st.tuples(st.just("byte"), st.integers(0, 1 << 16), st.integers(0, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 16)),
    st.tuples(st.just("extend"), st.binary(min_size=1, max_size=12)),
    st.tuples(st.just("field"), st.integers(0, len(FIELDS) - 1), st.integers(0, (1 << 32) - 1)),
    st.tuples(st.just("word"), st.integers(0, 1 << 16), st.integers(0, (1 << 32) - 1)),
)


def apply(data: bytes, edits) -> bytes:
    """Positions wrap around the stream's length, so every edit lands."""
    b = bytearray(data)
    for kind, *arg in edits:
        if kind == "flip" and b:
            b[arg[0] % len(b)] ^= 1 << arg[1]
        elif kind == "byte" and b:
            b[arg[0] % len(b)] = arg[1]
        elif kind == "truncate":
            del b[arg[0] % (len(b) + 1):]
        elif kind == "extend":
            b += arg[0]
        elif kind == "field" and len(b) >= HEADER_SIZE:
            offset, fmt = FIELDS[arg[0]]
            struct.pack_into(fmt, b, offset, arg[1] % (1 << (8 * struct.calcsize(fmt))))
        elif kind == "word" and len(b) > HEADER_SIZE + 8:
            words = (len(b) - HEADER_SIZE - 4) // 4
            struct.pack_into("<I", b, HEADER_SIZE + 4 * (arg[0] % words), arg[1])
    return bytes(b)


def assert_contract(data: bytes) -> None:
    for variant in variants(data):
        check(variant, postfilter_for(variant))


def test_seeds_cover_every_mode_and_predictor():
    for mode in ("gray", "420", "444"):
        for predictor in ("none", "dc", "planar", "blockcnn"):
            assert any(name.startswith(f"{mode}-{predictor}-") for name in SEEDS)
    for data in SEEDS.values():
        assert check(data, postfilter_for(data)) == "decoded"


@settings(max_examples=400, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(SEEDS)), edits=st.lists(edit, min_size=1, max_size=4))
def test_mutated_streams_decode_or_raise_blockcodec_error(name, edits):
    assert_contract(apply(SEEDS[name], edits))


@settings(max_examples=100, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=st.sampled_from(sorted(SEEDS)), second=st.sampled_from(sorted(SEEDS)),
       cut=st.integers(0, 400), at=st.integers(0, 400))
def test_spliced_streams_decode_or_raise_blockcodec_error(first, second, cut, at):
    """The head of one stream (its header, often) on the tail of another."""
    a, b = SEEDS[first], SEEDS[second]
    assert_contract(a[: cut % (len(a) + 1)] + b[at % (len(b) + 1):])


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.bkc")), ids=lambda p: p.name)
def test_committed_corpus(path):
    """The fuzzer's seeds and every input it ever flagged (regressions)."""
    assert_contract(path.read_bytes())
