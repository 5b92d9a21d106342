"""The decoder against damaged, forged and hostile streams.

Specification:
  * every truncation, extension, byte change or bit flip of a valid stream
    raises ``BlockcodecError`` (the header is validated and the CRC32 covers
    header and payload; CRC32 detects every error burst of <= 32 bits, so a
    single changed byte is always caught);
  * random bytes raise ``BlockcodecError``;
  * header claims are checked before anything is allocated from them: a
    header announcing more than ``MAX_PIXELS`` pixels or a side over
    ``MAX_DIMENSION`` is refused with negligible memory use;
  * a well-formed container around a garbage payload either decodes to an
    image of the announced shape or raises ``BlockcodecError``: never another
    exception, a crash or a hang;
  * model mismatches (predictor weights hash, entropy tables hash, unknown
    predictor id, unknown post-filter) raise ``BlockcodecError`` naming the
    problem.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import blockcodec
from blockcodec import BlockcodecError, bitstream, postfilter, predictors
from blockcodec.codec import Geometry
from conftest import noise_image, textured_image

# The wire format of the header (little-endian): magic, version, mode, flags,
# width, height, quality, predictor id, predictor hash, post-filter id,
# post-filter hash, entropy tables hash, payload length.  Then the payload,
# then CRC32 (of header + payload).
HEADER = struct.Struct("<4sBBBIIBB4sB4s4sI")
FIELDS = ("magic", "version", "mode", "flags", "width", "height", "quality", "predictor_id",
          "predictor_hash", "postfilter_id", "postfilter_hash", "tables_hash", "length")


@contextlib.contextmanager
def time_limit(seconds: float):
    """Fail (rather than hang) if the block runs longer than `seconds`."""
    def handler(signum, frame):
        raise TimeoutError(f"decoder still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def forge(data: bytes, payload: bytes | None = None, fix_crc: bool = True, **fields) -> bytes:
    """Rewrite header fields of a stream (bypassing bitstream.pack's checks),
    optionally replace the payload, and recompute the CRC."""
    values = dict(zip(FIELDS, HEADER.unpack_from(data)))
    old_payload = data[HEADER.size: HEADER.size + values["length"]]
    payload = old_payload if payload is None else payload
    values["length"] = len(payload)
    values.update(fields)
    body = HEADER.pack(*(values[f] for f in FIELDS)) + payload
    crc = zlib.crc32(body) if fix_crc else struct.unpack_from("<I", data, len(data) - 4)[0]
    return body + struct.pack("<I", crc)


def decode_or_error(data: bytes, shape=None):
    """Decode; a BlockcodecError is fine, any other exception fails the test."""
    try:
        out = blockcodec.decode(data)
    except BlockcodecError:
        return None
    assert out.dtype == np.uint8
    if shape is not None:
        assert out.shape == shape
    return out


STREAMS = {
    "gray": (textured_image(9, 13, 1, seed=1), dict(quality=60)),
    "rgb420": (textured_image(17, 11, 3, seed=2), dict(quality=30)),
    "rgb444-dc": (noise_image(10, 9, 3, seed=3), dict(quality=10, subsampling="444", predictor="dc")),
    "none-dcpred": (textured_image(8, 24, 1, seed=4), dict(quality=90, predictor="none")),
}


MODES = (bitstream.GRAY, bitstream.YCBCR420, bitstream.YCBCR444)


@pytest.fixture(scope="module", params=sorted(STREAMS))
def stream(request):
    img, kw = STREAMS[request.param]
    data = blockcodec.encode(img, **kw)
    return data, blockcodec.decode(data).shape


def test_header_layout_matches_bitstream_module():
    assert HEADER.size == bitstream.HEADER_SIZE
    data = blockcodec.encode(textured_image(9, 13, 1, seed=1))
    v = dict(zip(FIELDS, HEADER.unpack_from(data)))
    assert v["magic"] == bitstream.MAGIC == b"BKCD"
    assert v["version"] == bitstream.VERSION
    assert (v["width"], v["height"]) == (13, 9)
    assert len(data) == HEADER.size + v["length"] + bitstream.CRC_SIZE
    assert struct.unpack_from("<I", data, len(data) - 4)[0] == zlib.crc32(data[:-4])
    assert forge(data) == data


def test_pack_unpack_roundtrip():
    h = bitstream.Header(width=100, height=7, mode=bitstream.YCBCR444, quality=42, predictor_id=2,
                         predictor_hash=b"abcd", postfilter_id=0, postfilter_hash=b"\0\0\0\0",
                         tables_hash=b"wxyz", flags=bitstream.FLAG_DC_PREDICTION)
    payload = bytes(range(40))
    h2, p2 = bitstream.unpack(bitstream.pack(h, payload))
    assert h2 == h and p2 == payload
    assert h2.dc_prediction


# ------------------------------------------------------- damaged valid streams

def test_every_truncation_raises(stream):
    data, _ = stream
    for n in range(len(data)):
        with pytest.raises(BlockcodecError):
            blockcodec.decode(data[:n])


def test_truncation_messages_are_clear(stream):
    data, _ = stream
    with pytest.raises(BlockcodecError, match="truncated"):
        blockcodec.decode(data[:-1])
    with pytest.raises(BlockcodecError, match="truncated"):
        blockcodec.decode(data[:bitstream.HEADER_SIZE])


def test_trailing_bytes_raise(stream):
    data, _ = stream
    for extra in (b"\0", b"\0" * 4, b"BKCD" + data):
        with pytest.raises(BlockcodecError):
            blockcodec.decode(data + extra)


def test_every_single_byte_change_raises(stream):
    """Exhaustive over positions, for a few xor patterns."""
    data, _ = stream
    buf = bytearray(data)
    for pos in range(len(data)):
        for x in (0x01, 0x80, 0xFF, 0x5A):
            buf[pos] ^= x
            with pytest.raises(BlockcodecError):
                blockcodec.decode(bytes(buf))
            buf[pos] ^= x


def test_random_bit_flips_raise(stream):
    data, shape = stream
    rng = np.random.default_rng(1234)
    for _ in range(200):
        buf = bytearray(data)
        n_flips = int(rng.integers(1, 4))
        for bit in rng.choice(8 * len(data), n_flips, replace=False):
            buf[bit // 8] ^= 1 << (bit % 8)
        with time_limit(20):
            # Up to 3 flipped bits: always caught by CRC32 or the header checks.
            with pytest.raises(BlockcodecError):
                blockcodec.decode(bytes(buf))


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_random_multi_byte_corruption_raises_or_decodes(data):
    name = data.draw(st.sampled_from(sorted(STREAMS)))
    img, kw = STREAMS[name]
    good = blockcodec.encode(img, **kw)
    shape = img.shape[:2] if img.ndim == 2 else img.shape
    positions = data.draw(st.lists(st.integers(0, len(good) - 1), min_size=1, max_size=20))
    buf = bytearray(good)
    for p in positions:
        buf[p] = data.draw(st.integers(0, 255))
    with time_limit(20):
        out = decode_or_error(bytes(buf), shape)
    if out is not None:  # only possible if nothing changed (or a CRC collision)
        assert bytes(buf) == good or zlib.crc32(bytes(buf[:-4])) == struct.unpack_from("<I", buf, len(buf) - 4)[0]


@settings(max_examples=100, deadline=None)
@given(junk=st.binary(min_size=0, max_size=300))
def test_random_bytes_raise(junk):
    with pytest.raises(BlockcodecError):
        blockcodec.decode(junk)
    with pytest.raises(BlockcodecError):
        blockcodec.decode(bitstream.MAGIC + junk)


def test_random_bytes_with_valid_header_prefix_raise():
    data = blockcodec.encode(textured_image(9, 13, 1, seed=1))
    rng = np.random.default_rng(7)
    for _ in range(100):
        junk = rng.integers(0, 256, int(rng.integers(0, 200)), dtype=np.uint8).tobytes()
        with pytest.raises(BlockcodecError):
            blockcodec.decode(data[:bitstream.HEADER_SIZE] + junk)


def test_bad_magic_message():
    data = blockcodec.encode(textured_image(9, 13, 1, seed=1))
    with pytest.raises(BlockcodecError, match="magic"):
        blockcodec.decode(b"PNG!" + data[4:])
    with pytest.raises(BlockcodecError, match="magic"):
        blockcodec.decode(b"")


def test_crc_mismatch_message():
    data = bytearray(blockcodec.encode(textured_image(9, 13, 1, seed=1)))
    data[bitstream.HEADER_SIZE] ^= 1
    with pytest.raises(BlockcodecError, match="CRC"):
        blockcodec.decode(bytes(data))


def test_crc_is_not_a_signature():
    """FORMAT.md 1.6: the CRC-32 catches damage, not edits.  A stream edited
    consistently and given a new CRC is a valid stream: here another classical
    predictor (nothing in the payload depends on it) decodes, without an
    error, to another image of the same size."""
    data = blockcodec.encode(textured_image(16, 16, 1, seed=1), 90, predictor="planar", postfilter="none")
    image = blockcodec.decode(data)
    for predictor_id in (0, 1):
        other = blockcodec.decode(forge(data, predictor_id=predictor_id))
        assert other.shape == image.shape and (other != image).any(), predictor_id


# --------------------------------------------------------------- header checks

@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(version=0), "version"),
        (dict(version=1), "version 1 was written by blockcodec 0.1"),
        (dict(version=3), "version"),
        (dict(mode=3), "mode"),
        (dict(mode=255), "mode"),
        (dict(flags=0x04), "flags"),   # 0x02 announces a metadata section (test_metadata.py)
        (dict(flags=0x81), "flags"),
        (dict(quality=0), "quality"),
        (dict(quality=101), "quality"),
        (dict(width=0), "size"),
        (dict(height=0), "size"),
    ],
)
def test_invalid_header_fields(fields, message):
    data = blockcodec.encode(textured_image(9, 13, 1, seed=1))
    with pytest.raises(BlockcodecError, match=message):
        blockcodec.decode(forge(data, **fields))


def test_wrong_predictor_hash():
    data = blockcodec.encode(textured_image(9, 13, 1, seed=1))
    with pytest.raises(BlockcodecError, match="predictor") as exc:
        blockcodec.decode(forge(data, predictor_hash=b"\xde\xad\xbe\xef"))
    assert "deadbeef" in str(exc.value)


def test_wrong_tables_hash():
    data = blockcodec.encode(textured_image(9, 13, 1, seed=1))
    with pytest.raises(BlockcodecError, match="entropy tables") as exc:
        blockcodec.decode(forge(data, tables_hash=b"\x01\x02\x03\x04"))
    assert "01020304" in str(exc.value)


@pytest.mark.parametrize("pid", [len(predictors.REGISTRY), 17, 255])
def test_unknown_predictor_id(pid):
    data = blockcodec.encode(textured_image(9, 13, 1, seed=1))
    with pytest.raises(BlockcodecError, match=f"predictor id {pid}"):
        blockcodec.decode(forge(data, predictor_id=pid))


@pytest.mark.parametrize("fid", [len(postfilter.IDS), 255])
def test_unknown_postfilter_id(fid):
    data = blockcodec.encode(textured_image(9, 13, 1, seed=1))
    with pytest.raises(BlockcodecError, match=f"post-filter id {fid}"):
        blockcodec.decode(forge(data, postfilter_id=fid))


def test_messages_are_one_line():
    data = blockcodec.encode(textured_image(9, 13, 1, seed=1))
    for bad in (data[:10], forge(data, version=9), forge(data, predictor_id=99),
                forge(data, tables_hash=b"zzzz"), data + b"x", b"junk"):
        with pytest.raises(BlockcodecError) as exc:
            blockcodec.decode(bad)
        assert "\n" not in str(exc.value) and str(exc.value)


# ----------------------------------------------------- decompression bombs

class BigAllocation(BaseException):
    """Raised by the allocation guard; a BaseException so that no
    ``except Exception`` in the decoder can swallow it."""


@pytest.fixture
def no_big_allocations(monkeypatch):
    """Make numpy's allocators refuse anything over 16 MB, and check that the
    peak traced memory stays under 50 MB."""
    limit = 16 << 20

    def check(shape, dtype):
        n = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype if dtype is not None else float).itemsize
        if n > limit:
            raise BigAllocation(f"allocation of {n} bytes for shape {shape}")

    def guard(fn):
        def wrapped(shape, dtype=float, *args, **kwargs):
            check(shape, dtype)
            return fn(shape, dtype, *args, **kwargs)
        return wrapped

    def full(shape, fill_value, dtype=None, *args, _fn=np.full, **kwargs):
        check(shape, dtype)
        return _fn(shape, fill_value, dtype, *args, **kwargs)

    for name in ("zeros", "empty", "ones"):
        monkeypatch.setattr(np, name, guard(getattr(np, name)))
    monkeypatch.setattr(np, "full", full)
    tracemalloc.start()
    try:
        yield
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50e6, f"peak memory {peak / 1e6:.1f} MB"


def test_allocation_guard_works(no_big_allocations):
    """The guard itself catches a big allocation, whatever API makes it."""
    for make in (lambda: np.zeros((8192, 8192), np.uint8), lambda: np.empty((1 << 22, 65), np.int64),
                 lambda: np.full((1 << 26,), 128, np.uint8)):
        with pytest.raises(BigAllocation):
            make()
    np.zeros((64, 64))


@pytest.mark.parametrize(
    "width, height",
    [
        (65536, 65536),
        (1 << 31, 1),                                      # side over MAX_DIMENSION
        (bitstream.MAX_DIMENSION + 1, 1),
        (1, bitstream.MAX_DIMENSION + 1),
        (bitstream.MAX_DIMENSION, bitstream.MAX_PIXELS // bitstream.MAX_DIMENSION + 1),
        (0xFFFFFFFF, 0xFFFFFFFF),
    ],
)
def test_oversized_header_refused_before_allocation(width, height, no_big_allocations):
    assert width > bitstream.MAX_DIMENSION or height > bitstream.MAX_DIMENSION or \
        width * height > bitstream.MAX_PIXELS
    small = blockcodec.encode(np.zeros((8, 8), np.uint8))
    for payload in (b"", b"\0\0\0\0", bytes(64)):
        forged = forge(small, payload=payload, width=width, height=height)
        with pytest.raises(BlockcodecError, match="size|pixels|limit"):
            blockcodec.decode(forged)


def test_pack_refuses_oversized_headers():
    h = bitstream.Header(width=65536, height=65536, mode=0, quality=50, predictor_id=2,
                         predictor_hash=bytes(4))
    with pytest.raises(BlockcodecError):
        bitstream.pack(h, b"")
    with pytest.raises(BlockcodecError):
        bitstream.pack(dataclasses.replace(h, width=0, height=5), b"")


def test_large_legal_header_with_short_payload_refused_before_allocation(no_big_allocations):
    """A big legal size whose announced payload is missing: refused from the
    length check, before any plane is allocated."""
    small = blockcodec.encode(np.zeros((8, 8), np.uint8))
    width, height = bitstream.MAX_DIMENSION, bitstream.MAX_PIXELS // bitstream.MAX_DIMENSION
    forged = forge(small, width=width, height=height)      # exactly at the pixel limit
    values = dict(zip(FIELDS, HEADER.unpack_from(forged)))
    # Claim a 1 GB payload that is not there.
    body = HEADER.pack(*(values[f] if f != "length" else 1 << 30 for f in FIELDS))
    with pytest.raises(BlockcodecError, match="truncated"):
        blockcodec.decode(body + forged[HEADER.size:])


def test_payload_size_guard_follows_the_eob_bound():
    """FORMAT.md check 14: a block costs at least -log2(p_max) bits, p_max the
    largest EOB probability the tables may hold; so the guard's blocks per
    byte is the least n with n * -log2(p_max) >= 8.  The flattest images
    (every block all-zero, the cheapest a block can be) stay under it."""
    p_max = blockcodec.entropy.MAX_EOB_PROBABILITY_PER_MILLE / 1000
    assert blockcodec.entropy.BLOCKS_PER_PAYLOAD_BYTE == math.ceil(8 / -math.log2(p_max))
    for shape in [(512, 512), (512, 512, 3)]:
        for kw in [dict(predictor="none"), dict(predictor="planar", subsampling="444")]:
            data = blockcodec.encode(np.full(shape, 77, np.uint8), **kw)
            header, payload = bitstream.unpack(data)
            blocks = sum(h * w // 64 for h, w in Geometry(header.width, header.height, header.mode).plane_shapes)
            assert blocks <= blockcodec.entropy.BLOCKS_PER_PAYLOAD_BYTE * (len(payload) + 8)


def test_header_claiming_more_blocks_than_its_payload_refused_before_allocation(no_big_allocations):
    """A legal 2^27-pixel header over a payload one word short of what the
    guard asks for, behind a valid CRC: refused before the entropy pass."""
    small = blockcodec.encode(np.zeros((8, 8), np.uint8), predictor="planar", postfilter="none")
    width, height = bitstream.MAX_DIMENSION, bitstream.MAX_PIXELS // bitstream.MAX_DIMENSION
    for mode in MODES:
        blocks = sum(h * w // 64 for h, w in Geometry(width, height, mode).plane_shapes)
        length = (blocks // blockcodec.entropy.BLOCKS_PER_PAYLOAD_BYTE - 8) // 4 * 4 - 4
        forged = forge(small, payload=bytes(length), width=width, height=height, mode=mode)
        with pytest.raises(BlockcodecError, match="cannot describe"):
            blockcodec.decode(forged, postfilter="none")


# ------------------------------------------------- garbage behind a valid CRC

@pytest.mark.parametrize("name", sorted(STREAMS))
def test_garbage_payload_with_valid_crc(name):
    img, kw = STREAMS[name]
    good = blockcodec.encode(img, **kw)
    header, payload = bitstream.unpack(good)
    shape = blockcodec.decode(good).shape
    rng = np.random.default_rng(sum(map(ord, name)))
    outcomes = {"decoded": 0, "refused": 0}
    for i in range(60):
        if i % 3 == 0:    # random length
            n = int(rng.integers(0, 2 * len(payload) + 8))
        elif i % 3 == 1:  # whole words, as the range coder wants
            n = 4 * int(rng.integers(0, len(payload) // 4 + 4))
        else:             # the real payload with a few words scrambled
            n = len(payload)
        junk = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        if i % 3 == 2:
            mask = rng.random(n) < 0.1
            junk = bytes(np.where(mask, np.frombuffer(junk, np.uint8), np.frombuffer(payload, np.uint8)))
        h = dataclasses.replace(header, flags=int(rng.integers(0, 2)), quality=int(rng.integers(1, 101)))
        with time_limit(20):
            out = decode_or_error(bitstream.pack(h, junk), shape)
        outcomes["decoded" if out is not None else "refused"] += 1
    assert sum(outcomes.values()) == 60


@settings(max_examples=50, deadline=None)
@given(payload=st.binary(min_size=0, max_size=200).map(lambda b: b[: len(b) - len(b) % 4]),
       mode=st.sampled_from([bitstream.GRAY, bitstream.YCBCR420, bitstream.YCBCR444]),
       width=st.integers(1, 40), height=st.integers(1, 40), flags=st.integers(0, 1),
       quality=st.integers(1, 100), predictor_id=st.sampled_from([0, 1, 2]))
def test_forged_streams_decode_to_announced_shape_or_raise(payload, mode, width, height, flags, quality,
                                                           predictor_id):
    tables_hash = blockcodec.entropy.default_tables().hash
    h = bitstream.Header(width=width, height=height, mode=mode, quality=quality, predictor_id=predictor_id,
                         predictor_hash=bytes(4), tables_hash=tables_hash, flags=flags)
    shape = (height, width) if mode == bitstream.GRAY else (height, width, 3)
    with time_limit(20):
        decode_or_error(bitstream.pack(h, payload), shape)


def test_payload_not_whole_words_raises():
    good = blockcodec.encode(textured_image(9, 13, 1, seed=1))
    header, payload = bitstream.unpack(good)
    with pytest.raises(BlockcodecError, match="32-bit"):
        blockcodec.decode(bitstream.pack(header, payload + b"\0"))


# ------------------------------------------ payload length vs. its content

def test_payload_with_surplus_words_refused():
    """Two or more whole words after the end of the coded content (behind a
    valid CRC) are refused."""
    for name in sorted(STREAMS):
        img, kw = STREAMS[name]
        header, payload = bitstream.unpack(blockcodec.encode(img, **kw))
        for extra in (bytes(8), b"\xff" * 8, bytes(12), payload):
            with pytest.raises(BlockcodecError, match="payload"):
                blockcodec.decode(bitstream.pack(header, payload + extra))


@pytest.mark.parametrize("damage", ["empty", "one-word-short", "half"])
def test_payload_cut_short_is_refused_even_with_a_valid_crc(damage):
    # The end-of-payload sentinel catches what constriction's maybe_exhausted()
    # cannot.  (One surplus word after the sentinel can still pass: FORMAT.md 4.1.)
    img, kw = STREAMS["gray"]
    header, payload = bitstream.unpack(blockcodec.encode(img, **kw))
    bad = {"empty": b"", "one-word-short": payload[:-4], "half": payload[: len(payload) // 8 * 4]}[damage]
    with pytest.raises(BlockcodecError):
        blockcodec.decode(bitstream.pack(header, bad))
