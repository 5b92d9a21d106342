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
from PIL import Image, ImageCms, PngImagePlugin

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
    result = blockcodec.Codec(blockcodec.CodecConfig(**FAST)).decode(data)
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


def test_a_pngs_exif_chunk_after_the_pixels_is_kept_too():
    buf = io.BytesIO()
    Image.fromarray(smooth_image(16, 16)).save(buf, format="PNG")
    png = buf.getvalue()
    late = struct.pack(">I", len(EXIF)) + b"eXIf" + EXIF + struct.pack(">I", zlib.crc32(b"eXIf" + EXIF))
    iend = png.rindex(b"IEND") - 4
    with Image.open(io.BytesIO(png[:iend] + late + png[iend:])) as im:
        assert "exif" not in im.info                                 # Pillow reads it only with the pixels
        assert blockcodec.read_metadata(_encode(im)).exif == EXIF


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


# --------------------------------------------------------------------------- the command line
@pytest.fixture
def photo_jpeg(tmp_path):
    """A JPEG as a camera writes one: ICC profile, EXIF (orientation 6), XMP."""
    path = tmp_path / "photo.jpg"
    Image.fromarray(smooth_image(16, 16)).save(path, quality=90, icc_profile=ICC,
                                               exif=metadata.EXIF_PREFIX + EXIF, xmp=XMP)
    return path


def _cli(capsys, *argv) -> tuple[int, str, str]:
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _encode_file(capsys, src, dst, *options) -> None:
    assert _cli(capsys, "encode", src, "-o", dst, "--predictor", "planar", "--postfilter", "none",
                *options) == (0, "", "")


@pytest.fixture
def photo_bkc(photo_jpeg, tmp_path, capsys):
    _encode_file(capsys, photo_jpeg, tmp_path / "photo.bkc")
    return tmp_path / "photo.bkc"


def _decode_file(capsys, src, dst, *options) -> str:
    """Decode; returns what was printed on standard error."""
    rc, out, err = _cli(capsys, "decode", src, "-o", dst, *options)
    assert (rc, out) == (0, ""), err
    return err


def _info_of(path) -> dict:
    with Image.open(path) as im:
        im.load()
        return dict(im.info)


@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_icc_and_exif_survive_encode_then_decode_byte_for_byte(ext, photo_jpeg, photo_bkc, tmp_path, capsys):
    out = tmp_path / f"out.{ext}"
    assert _decode_file(capsys, photo_bkc, out) == ""
    written, original = _info_of(out), _info_of(photo_jpeg)
    assert written["icc_profile"] == original["icc_profile"] == ICC
    assert written["exif"] == original["exif"] == metadata.EXIF_PREFIX + EXIF   # as Pillow reads both formats
    assert written["xmp"] == XMP


@pytest.mark.parametrize("ext", ["tif", "webp"])
def test_tiff_and_webp_outputs_hold_the_profile_the_exif_tags_and_the_xmp(ext, photo_bkc, tmp_path, capsys):
    out = tmp_path / f"out.{ext}"
    assert _decode_file(capsys, photo_bkc, out) == ""
    with Image.open(out) as im:
        assert im.info["icc_profile"] == ICC and im.info["xmp"] == XMP
        tags = im.getexif()
        assert (tags[0x010F], tags[0x0110]) == ("Blockcodec", "Test Camera")
        if ext == "webp":   # Pillow applies a TIFF's orientation on load and drops the tag; WebP keeps it
            assert tags[0x0112] == 6


def test_a_format_without_metadata_gets_a_one_line_warning(photo_bkc, tmp_path, capsys):
    assert _decode_file(capsys, photo_bkc, tmp_path / "out.bmp") == (f"blockcodec: warning: {tmp_path / 'out.bmp'}: BMP files cannot hold the ICC profile, "
                   f"EXIF and XMP; not written\n")


def test_the_orientation_is_kept_as_a_tag_and_not_applied(tmp_path, capsys):
    tall = tmp_path / "tall.jpg"
    Image.fromarray(smooth_image(24, 16)).save(tall, exif=metadata.EXIF_PREFIX + EXIF)
    _encode_file(capsys, tall, tmp_path / "tall.bkc")
    _decode_file(capsys, tmp_path / "tall.bkc", tmp_path / "tall.png")
    with Image.open(tmp_path / "tall.png") as im:
        assert im.size == (16, 24) and im.getexif()[0x0112] == 6


def test_strip_drops_everything_and_the_stream_is_the_one_without_metadata(photo_jpeg, tmp_path, capsys):
    _encode_file(capsys, photo_jpeg, tmp_path / "stripped.bkc", "--strip")
    stripped = (tmp_path / "stripped.bkc").read_bytes()
    assert not blockcodec.read_metadata(stripped)
    with Image.open(photo_jpeg) as im:
        assert stripped == blockcodec.encode(im, **FAST, metadata=False)
    _encode_file(capsys, photo_jpeg, tmp_path / "kept.bkc")
    assert len((tmp_path / "kept.bkc").read_bytes()) == len(stripped) + sum(
        metadata.CHUNK_HEADER_SIZE + len(item) for item in (ICC, EXIF, XMP))


def test_decode_strip_writes_no_metadata(photo_bkc, tmp_path, capsys):
    assert _decode_file(capsys, photo_bkc, tmp_path / "out.png", "--strip") == ""
    assert not {"icc_profile", "exif", "xmp"} & set(_info_of(tmp_path / "out.png"))


def test_a_png_input_keeps_its_metadata_too(tmp_path, capsys):
    png = tmp_path / "in.png"
    text = PngImagePlugin.PngInfo()
    text.add_itxt("XML:com.adobe.xmp", XMP.decode("utf-8"))
    Image.fromarray(smooth_image(16, 16)).save(png, icc_profile=ICC, exif=EXIF, pnginfo=text)
    _encode_file(capsys, png, tmp_path / "in.bkc")
    assert blockcodec.read_metadata((tmp_path / "in.bkc").read_bytes()) == Metadata(ICC, EXIF, XMP)


def test_a_tiff_inputs_exif_is_its_camera_tags_not_the_tags_that_lay_out_its_pixels(tmp_path, capsys):
    tif = tmp_path / "in.tif"
    Image.fromarray(smooth_image(16, 16)).save(tif, exif=EXIF, icc_profile=ICC)
    _encode_file(capsys, tif, tmp_path / "in.bkc")
    carried = blockcodec.read_metadata((tmp_path / "in.bkc").read_bytes())
    tags = Image.Exif()
    tags.load(carried.exif)
    assert (tags[0x010F], tags[0x0110]) == ("Blockcodec", "Test Camera")
    assert not {256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 34675} & set(tags)   # width .. strips, ICC
    assert carried.icc_profile == ICC


def test_an_exif_too_large_for_a_jpeg_segment_is_left_out_of_a_jpeg_with_a_warning(tmp_path, capsys):
    tags = Image.Exif()
    tags[0x010E] = "x" * 70_000                      # ImageDescription: past JPEG's 64 KiB APP1
    (tmp_path / "big.bkc").write_bytes(_encode(smooth_image(16, 16), metadata=Metadata(ICC, tags)))
    err = _decode_file(capsys, tmp_path / "big.bkc", tmp_path / "big.jpg")
    assert err == f"blockcodec: warning: {tmp_path / 'big.jpg'}: JPEG files cannot hold the EXIF; not written\n"
    assert _info_of(tmp_path / "big.jpg")["icc_profile"] == ICC
    _decode_file(capsys, tmp_path / "big.bkc", tmp_path / "big.png")
    assert len(_info_of(tmp_path / "big.png")["exif"]) > 70_000


def test_info_lists_the_chunks(photo_jpeg, photo_bkc, tmp_path, capsys):
    rc, out, _ = _cli(capsys, "info", photo_bkc)
    assert rc == 0
    line = next(row for row in out.splitlines() if row.startswith("metadata:"))
    assert line.split(":", 1)[1].strip() == (f"ICC profile {len(ICC)} bytes (sRGB built-in), EXIF {len(EXIF)} "
                                             f"bytes (orientation 6, camera Blockcodec Test Camera), "
                                             f"XMP {len(XMP)} bytes")
    _encode_file(capsys, photo_jpeg, tmp_path / "bare.bkc", "--strip")
    assert "metadata:       none" in _cli(capsys, "info", tmp_path / "bare.bkc")[1]


def test_encode_help_says_metadata_is_kept_and_orientation_is_not_applied(capsys):
    rc, out, _ = _cli(capsys, "encode", "--help")
    text = " ".join(out.split())
    assert rc == 0 and "--strip" in text
    assert "EXIF orientation is kept as a tag, not applied" in text and "cwebp and avifenc" in text


def test_restore_carries_the_jpegs_icc_exif_and_xmp(photo_jpeg, tmp_path, capsys):
    out = tmp_path / "restored.png"
    assert _cli(capsys, "restore", photo_jpeg, "-o", out, "--model", "arcnn") == (0, "", "")
    written = _info_of(out)
    assert (written["icc_profile"], written["exif"], written["xmp"]) == (ICC, metadata.EXIF_PREFIX + EXIF, XMP)
    assert _cli(capsys, "restore", photo_jpeg, "-o", tmp_path / "bare.png", "--model", "arcnn", "--strip")[0] == 0
    assert not {"icc_profile", "exif", "xmp"} & set(_info_of(tmp_path / "bare.png"))


# --------------------------------------------------------------------------- Pillow
def test_pillow_opens_a_bkc_with_its_metadata_in_info_and_saves_it_through(photo_jpeg, tmp_path):
    blockcodec.register_pillow()
    with Image.open(photo_jpeg) as im:
        im.save(tmp_path / "a.bkc", **FAST)
    with Image.open(tmp_path / "a.bkc") as im:
        assert (im.info["icc_profile"], im.info["exif"], im.info["xmp"]) == (ICC, metadata.EXIF_PREFIX + EXIF, XMP)
        im.save(tmp_path / "b.png")
        im.save(tmp_path / "c.bkc", exif=b"", xmp=b"<x:xmpmeta/>", **FAST)   # save() arguments win
    assert _info_of(tmp_path / "b.png")["icc_profile"] == ICC          # Pillow's PNG writer keeps im.info's
    assert blockcodec.read_metadata((tmp_path / "c.bkc").read_bytes()) == Metadata(ICC, None, b"<x:xmpmeta/>")


def test_every_damage_to_the_section_is_a_one_line_error_or_a_valid_reading():
    """Each section byte set to 0x00 and 0xFF, and every truncation, with the CRC
    refitted so that the chunk rules alone decide."""
    section = _section(GOOD)
    damaged = [section[:i] + bytes([v]) + section[i + 1:] for i in range(len(section)) for v in (0, 0xFF)]
    damaged += [section[:i] for i in range(len(section))]
    for candidate in damaged:
        try:
            carried = blockcodec.read_metadata(_with_section(GOOD, candidate))
        except blockcodec.BlockcodecError as exc:
            assert str(exc).startswith("corrupt stream: ") and "\n" not in str(exc)
        else:
            assert metadata.pack(carried) == candidate   # what is accepted is read exactly
