"""ICC profile, EXIF and XMP: carried by the container (FORMAT.md §1.5),
kept by the encoder unless stripped, written back by the decoder, listed by
``info``.  Read as the specification of that feature.

Images are 16x16 and coded with the planar predictor and no post-filter, so
every test is fast; metadata does not depend on the coding tools.
"""
from __future__ import annotations

import io
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms

import blockcodec
from blockcodec import bitstream, cli, metadata
from blockcodec.metadata import Metadata
from conftest import smooth_image

FAST = {"predictor": "planar", "postfilter": "none"}
ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
XMP = (b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
       b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></x:xmpmeta><?xpacket end="w"?>')


def _exif(orientation: int = 6) -> bytes:
    """EXIF as the TIFF structure, the form the EXIF chunk holds."""
    tags = Image.Exif()
    tags[0x010F], tags[0x0110], tags[0x0112] = "Blockcodec", "Test Camera", orientation
    return tags.tobytes()[len(metadata.EXIF_PREFIX):]


EXIF = _exif()


def _photo(**info) -> Image.Image:
    im = Image.fromarray(smooth_image(16, 16))
    im.info.update(info)
    return im


def _encode(image, **kw) -> bytes:
    return blockcodec.encode(image, 60, **FAST, **kw)


def _section(data: bytes) -> bytes:
    """The bytes between the payload and the CRC."""
    (length,) = struct.unpack_from("<I", data, 30)
    return data[bitstream.HEADER_SIZE + length: -bitstream.CRC_SIZE]


def _with_section(data: bytes, section: bytes, flags: int | None = None) -> bytes:
    """``data`` with its metadata section (and flags) replaced and the CRC refitted,
    so that the chunk rules, not the CRC, decide."""
    (length,) = struct.unpack_from("<I", data, 30)
    body = bytearray(data[: bitstream.HEADER_SIZE + length] + section)
    if flags is not None:
        body[6] = flags
    return bytes(body) + struct.pack("<I", zlib.crc32(body))


def _chunk(tag: bytes, body: bytes, length: int | None = None) -> bytes:
    return tag + struct.pack("<I", len(body) if length is None else length) + body


# --------------------------------------------------------------------------- the encoder keeps, or strips
def test_a_pil_images_icc_exif_and_xmp_are_kept_by_default():
    data = _encode(_photo(icc_profile=ICC, exif=metadata.EXIF_PREFIX + EXIF, xmp=XMP))
    assert blockcodec.read_metadata(data) == Metadata(icc_profile=ICC, exif=EXIF, xmp=XMP)
    result = blockcodec.Codec().decode(data)
    assert result.metadata == Metadata(icc_profile=ICC, exif=EXIF, xmp=XMP)
    assert np.array_equal(result.image, blockcodec.decode(data))   # decode still returns the array


def test_metadata_false_strips_and_a_stream_without_metadata_is_not_one_byte_larger():
    stripped = _encode(_photo(icc_profile=ICC, exif=EXIF), metadata=False)
    assert not blockcodec.read_metadata(stripped)
    assert stripped == _encode(smooth_image(16, 16))                 # as if the feature did not exist
    assert stripped[6] & bitstream.FLAG_METADATA == 0
    assert len(stripped) == bitstream.HEADER_SIZE + len(bitstream.unpack(stripped)[1]) + bitstream.CRC_SIZE


def test_an_explicit_metadata_is_carried_as_given_replacing_the_images():
    given = Metadata(exif=EXIF)
    data = _encode(_photo(icc_profile=ICC), metadata=given)
    assert blockcodec.read_metadata(data) == given
    assert blockcodec.read_metadata(_encode(smooth_image(16, 16), metadata=given)) == given   # arrays too


def test_codec_encode_takes_the_same_choice_and_reports_what_it_carried():
    codec = blockcodec.Codec(blockcodec.CodecConfig(quality=60, **FAST))
    kept = codec.encode(_photo(icc_profile=ICC), keep_trace=False)
    assert kept.metadata == Metadata(icc_profile=ICC) == blockcodec.read_metadata(kept.data)
    assert not codec.encode(_photo(icc_profile=ICC), keep_trace=False, metadata=False).metadata


def test_xmp_may_be_given_as_text_as_pngs_itxt_chunk_holds_it():
    data = _encode(_photo(**{"XML:com.adobe.xmp": XMP.decode("utf-8")}))
    assert blockcodec.read_metadata(data).xmp == XMP


def test_exif_is_stored_as_the_tiff_structure_whatever_form_it_is_given_in():
    as_jpeg_has_it = Metadata(exif=metadata.EXIF_PREFIX + EXIF)
    as_png_has_it = Metadata(exif=EXIF)
    tags = Image.Exif()
    tags.load(EXIF)
    as_pillow_object = Metadata(exif=tags)
    assert as_jpeg_has_it.exif == as_png_has_it.exif == as_pillow_object.exif == EXIF
    assert EXIF[:4] in metadata.TIFF_HEADERS


def test_exif_orientation_stays_a_tag_and_the_pixels_are_coded_as_stored():
    tall = Image.fromarray(smooth_image(24, 16))
    tall.info["exif"] = _exif(orientation=6)
    data = _encode(tall)
    assert blockcodec.decode(data).shape[:2] == (24, 16)
    tags = Image.Exif()
    tags.load(blockcodec.read_metadata(data).exif)
    assert tags[0x0112] == 6


@pytest.mark.parametrize("field, value, message", [
    ("icc_profile", "sRGB", "icc_profile must be bytes"),
    ("icc_profile", bytes((4 << 20) + 1), "ICC profile of 4194305 bytes exceeds the format's limit of 4194304"),
    ("exif", bytes((1 << 20) + 1), "EXIF of 1048577 bytes exceeds the format's limit of 1048576"),
    ("xmp", bytes((1 << 20) + 1), "XMP of 1048577 bytes exceeds the format's limit of 1048576"),
    ("exif", b"not a TIFF structure", "EXIF does not start with a TIFF header"),
])
def test_an_explicit_item_the_format_cannot_carry_is_refused(field, value, message):
    with pytest.raises(blockcodec.BlockcodecError, match=message):
        Metadata(**{field: value})


def test_an_item_found_on_an_image_that_does_not_fit_is_dropped_with_a_warning_not_an_error():
    with pytest.warns(blockcodec.MetadataWarning, match=r"EXIF does not start with a TIFF header .*; not kept"):
        data = _encode(_photo(icc_profile=ICC, exif=b"garbage"))
    assert blockcodec.read_metadata(data) == Metadata(icc_profile=ICC)


def test_empty_items_are_no_items():
    assert Metadata(icc_profile=b"", exif=b"", xmp="") == Metadata()
    assert not Metadata()


def test_a_bad_metadata_argument_is_refused():
    with pytest.raises(blockcodec.BlockcodecError, match="metadata must be True, False or a blockcodec.Metadata"):
        _encode(smooth_image(16, 16), metadata={"icc_profile": ICC})


# --------------------------------------------------------------------------- the container
def test_the_section_follows_the_payload_as_chunks_in_order_and_the_crc_covers_it():
    data = _encode(_photo(icc_profile=ICC, exif=EXIF, xmp=XMP))
    header, payload = bitstream.unpack(data)
    assert data[6] & bitstream.FLAG_METADATA
    assert header.flags & bitstream.FLAG_METADATA == 0                # framing, not a decoder setting
    assert struct.unpack_from("<I", data, 30)[0] == len(payload)     # payload_length: the payload only
    assert _section(data) == _chunk(b"ICCP", ICC) + _chunk(b"EXIF", EXIF) + _chunk(b"XMP ", XMP)
    assert struct.unpack("<I", data[-4:])[0] == zlib.crc32(data[:-4])
    flipped = bytearray(data)
    flipped[-10] ^= 1                                                # a byte of the XMP
    with pytest.raises(blockcodec.BlockcodecError, match="CRC32 mismatch"):
        blockcodec.read_metadata(bytes(flipped))


def test_pack_sets_the_flag_from_the_section_whatever_the_header_says():
    header, payload = bitstream.unpack(_encode(smooth_image(16, 16)))
    forged = bitstream.Header(**{**header.__dict__, "flags": header.flags | bitstream.FLAG_METADATA})
    assert bitstream.pack(forged, payload) == bitstream.pack(header, payload)
    assert bitstream.unpack_with_metadata(bitstream.pack(header, payload, Metadata(xmp=XMP)))[2].xmp == XMP


GOOD = _encode(_photo(icc_profile=ICC, exif=EXIF))
PLAIN = _encode(smooth_image(16, 16))
ICCP = _chunk(b"ICCP", ICC)
EXIF_CHUNK = _chunk(b"EXIF", EXIF)


@pytest.mark.parametrize("stream, message", [
    # rule 5: flags bits 2..7 are reserved
    (_with_section(PLAIN, b"", flags=0x04), "unknown flags 0x04"),
    # rule 8: without the flag, nothing may follow the payload
    (_with_section(PLAIN, ICCP), "unexpected bytes after the end"),
    # rule 9a: the flag promises at least one chunk
    (_with_section(PLAIN, b"", flags=bitstream.FLAG_METADATA), "metadata flag set but no metadata chunk"),
    # rule 9b: a chunk header is 8 bytes
    (_with_section(GOOD, ICCP + b"EXIF\x01"), r"metadata chunk header cut short \(5 of 8 bytes\)"),
    # rule 9c: only the three tags exist
    (_with_section(GOOD, _chunk(b"IPTC", b"x")), "unknown metadata chunk 'IPTC'"),
    (_with_section(GOOD, _chunk(b"xmp ", XMP)), "unknown metadata chunk 'xmp '"),
    # rule 9d: ICCP, EXIF, XMP in that order, each at most once
    (_with_section(GOOD, EXIF_CHUNK + ICCP), "metadata chunk 'ICCP' out of order"),
    (_with_section(GOOD, ICCP + ICCP), "metadata chunk 'ICCP' repeated"),
    # rule 9e: 1 .. the tag's limit
    (_with_section(GOOD, _chunk(b"XMP ", b"")), r"metadata chunk 'XMP ' of 0 bytes \(allowed 1..1048576\)"),
    (_with_section(GOOD, _chunk(b"EXIF", EXIF, length=(1 << 20) + 1)),
     r"metadata chunk 'EXIF' of 1048577 bytes \(allowed 1..1048576\)"),
    (_with_section(GOOD, _chunk(b"ICCP", ICC, length=0xFFFFFFFF)),
     r"metadata chunk 'ICCP' of 4294967295 bytes \(allowed 1..4194304\)"),
    # rule 9f: a chunk ends at or before the CRC
    (_with_section(GOOD, _chunk(b"ICCP", ICC, length=len(ICC) + 1)),
     f"metadata chunk 'ICCP' announces {len(ICC) + 1} bytes, {len(ICC)} left before the CRC"),
    # rule 9g: EXIF is a TIFF structure
    (_with_section(GOOD, _chunk(b"EXIF", metadata.EXIF_PREFIX + EXIF)), "EXIF chunk does not start with a TIFF header"),
], ids=["reserved-flag", "trailing-bytes", "flag-without-chunk", "short-chunk-header", "unknown-tag",
        "lowercase-tag", "out-of-order", "duplicate", "empty-chunk", "over-limit", "huge-length", "past-the-end",
        "exif-with-prefix"])
def test_a_malformed_metadata_section_is_rejected_with_one_line(stream, message):
    for read in (blockcodec.read_metadata, blockcodec.decode, bitstream.unpack):
        with pytest.raises(blockcodec.BlockcodecError, match=message) as caught:
            read(stream)
        assert "\n" not in str(caught.value)


def test_a_chunk_claiming_more_than_the_stream_holds_is_refused_before_it_is_copied():
    forged = _with_section(GOOD, _chunk(b"ICCP", b"x" * 16, length=4 << 20))
    tracemalloc.start()
    with pytest.raises(blockcodec.BlockcodecError, match="left before the CRC"):
        blockcodec.read_metadata(forged)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 64 * 1024


def test_the_chunk_rules_come_after_the_crc():
    broken = bytearray(_with_section(GOOD, ICCP + ICCP))
    broken[-1] ^= 0xFF
    with pytest.raises(blockcodec.BlockcodecError, match="CRC32 mismatch"):
        blockcodec.read_metadata(bytes(broken))
