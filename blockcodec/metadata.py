"""Image metadata: the ICC profile, EXIF and XMP a stream carries.

The container (bitstream.py) frames an optional metadata section between
the payload and the CRC; this module owns what is inside it (FORMAT.md §1.5)
and its mapping to Pillow's conventions.  Metadata is carried, never
interpreted: the decoder applies neither the ICC profile nor the EXIF
orientation to the pixels, as cwebp and avifenc do not.

EXIF is stored as the TIFF structure alone ("II*\\0" or "MM\\0*" first), as
PNG's eXIf and WebP's EXIF chunks store it; JPEG's APP1 "Exif\\0\\0" prefix,
which Pillow keeps in ``im.info["exif"]``, is removed on input and put back
where a writer needs it.
"""
from __future__ import annotations

import struct
import warnings
from dataclasses import dataclass, fields

from .errors import BlockcodecError

# (field, tag, limit in bytes), in the order the chunks must appear.
CHUNKS = (("icc_profile", b"ICCP", 4 << 20), ("exif", b"EXIF", 1 << 20), ("xmp", b"XMP ", 1 << 20))
_CHUNK = struct.Struct("<4sI")   # tag, data length
CHUNK_HEADER_SIZE = _CHUNK.size
EXIF_PREFIX = b"Exif\0\0"
TIFF_HEADERS = (b"II*\0", b"MM\0*")
_LABELS = {"icc_profile": "ICC profile", "exif": "EXIF", "xmp": "XMP"}

# The Pillow formats whose writers hold all three items.  A JPEG marker holds
# 65533 bytes, less the APP1 prefix that names its content, so EXIF and XMP
# past that cannot go into a JPEG (an ICC profile is split over many markers).
WRITABLE_FORMATS = ("PNG", "JPEG", "TIFF", "WEBP")
_JPEG_LIMITS = {"exif": 65533 - len(EXIF_PREFIX), "xmp": 65533 - len(b"http://ns.adobe.com/xap/1.0/\0")}

# Tags a TIFF file's first IFD holds to describe its own pixels: Pillow's
# getexif() of a TIFF returns them with the camera tags, but they belong to
# that file, not to the image.  ICC and XMP have chunks of their own.
_TIFF_LAYOUT_TAGS = frozenset({
    254, 255, 256, 257, 258, 259, 262, 266, 273, 277, 278, 279, 284, 317, 320, 322, 323, 324, 325,
    338, 339, 347, 530, 532, 700, 34675})


class MetadataWarning(UserWarning):
    """An input's ICC profile, EXIF or XMP does not fit the format and was dropped."""


def _as_bytes(name: str, value) -> bytes | None:
    """The bytes of one item: bytes-like, a PIL Exif for ``exif``, text for ``xmp``."""
    if value is None:
        return None
    if name == "xmp" and isinstance(value, str):
        value = value.encode("utf-8")
    if name == "exif" and not isinstance(value, (bytes, bytearray, memoryview)):
        from PIL import Image
        if isinstance(value, Image.Exif):
            value = value.tobytes()
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise BlockcodecError(f"{name} must be bytes, got {type(value).__name__}")
    value = bytes(value)
    if name == "exif" and value.startswith(EXIF_PREFIX):
        value = value[len(EXIF_PREFIX):]
    return value or None   # an empty item is no item


@dataclass(frozen=True, repr=False)
class Metadata:
    """What a stream carries besides the pixels; each item is bytes or None.
    ``exif`` is the TIFF structure (an "Exif\\0\\0" prefix is removed, a PIL
    ``Image.Exif`` is accepted); ``xmp`` is the UTF-8 XMP packet (text is
    encoded).  Items over the format's limits are refused."""

    icc_profile: bytes | None = None
    exif: bytes | None = None
    xmp: bytes | None = None

    def __post_init__(self):
        for name, tag, limit in CHUNKS:
            value = _as_bytes(name, getattr(self, name))
            if value is not None and len(value) > limit:
                raise BlockcodecError(f"{_LABELS[name]} of {len(value)} bytes exceeds the format's limit "
                                      f"of {limit} bytes")
            if name == "exif" and value is not None and value[:4] not in TIFF_HEADERS:
                raise BlockcodecError("EXIF does not start with a TIFF header (II*\\0 or MM\\0*)")
            object.__setattr__(self, name, value)

    def __repr__(self) -> str:   # sizes, not megabytes of profile
        values = ((f.name, getattr(self, f.name)) for f in fields(self))
        return "Metadata(" + ", ".join(f"{name}={'None' if v is None else f'<{len(v)} bytes>'}"
                                       for name, v in values) + ")"

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) is not None for f in fields(self))

    def items(self) -> list[tuple[str, bytes]]:
        """(field name, bytes) of the items present, in chunk order."""
        return [(name, getattr(self, name)) for name, _, _ in CHUNKS if getattr(self, name) is not None]


# --------------------------------------------------------------------------- the chunks
def pack(metadata: Metadata) -> bytes:
    """The metadata section (FORMAT.md §1.5): empty when there is nothing to carry."""
    tags = {name: tag for name, tag, _ in CHUNKS}
    return b"".join(_CHUNK.pack(tags[name], len(value)) + value for name, value in metadata.items())


def _tag_text(tag: bytes) -> str:
    return repr(tag.decode("latin-1"))


def unpack(section) -> Metadata:
    """Parse a metadata section, checking FORMAT.md §1.1 rules 9a-9g in order.
    Every length is checked against the limits and the bytes left before any
    chunk is copied."""
    view = memoryview(section)
    if not len(view):
        raise BlockcodecError("corrupt stream: metadata flag set but no metadata chunk")
    order = {tag: (i, name, limit) for i, (name, tag, limit) in enumerate(CHUNKS)}
    found: dict[str, bytes] = {}
    pos, last = 0, -1
    while pos < len(view):
        left = len(view) - pos
        if left < CHUNK_HEADER_SIZE:
            raise BlockcodecError(f"corrupt stream: metadata chunk header cut short ({left} of "
                                  f"{CHUNK_HEADER_SIZE} bytes)")
        tag, length = _CHUNK.unpack_from(view, pos)
        if tag not in order:
            raise BlockcodecError(f"corrupt stream: unknown metadata chunk {_tag_text(tag)}")
        index, name, limit = order[tag]
        if index <= last:
            raise BlockcodecError(f"corrupt stream: metadata chunk {_tag_text(tag)} "
                                  f"{'repeated' if index == last else 'out of order'} (chunks are "
                                  f"ICCP, EXIF, 'XMP ' in that order, each at most once)")
        if not 1 <= length <= limit:
            raise BlockcodecError(f"corrupt stream: metadata chunk {_tag_text(tag)} of {length} bytes "
                                  f"(allowed 1..{limit})")
        if length > left - CHUNK_HEADER_SIZE:
            raise BlockcodecError(f"corrupt stream: metadata chunk {_tag_text(tag)} announces {length} bytes, "
                                  f"{left - CHUNK_HEADER_SIZE} left before the CRC")
        data = bytes(view[pos + CHUNK_HEADER_SIZE: pos + CHUNK_HEADER_SIZE + length])
        if name == "exif" and data[:4] not in TIFF_HEADERS:
            raise BlockcodecError("corrupt stream: EXIF chunk does not start with a TIFF header")
        found[name] = data
        pos += CHUNK_HEADER_SIZE + length
        last = index
    return Metadata(**found)


# --------------------------------------------------------------------------- Pillow
def _exif_of(image) -> bytes | None:
    info = image.info
    if "exif" in info:
        return info["exif"]
    if "Raw profile type exif" in info:    # ImageMagick's PNG text chunk; Pillow's getexif() reads it
        return image.getexif().tobytes()
    if image.format == "TIFF":
        from PIL import Image

        exif = Image.Exif()
        exif.load(image.getexif().tobytes())   # a copy: the image's own Exif object stays as it is
        for tag in _TIFF_LAYOUT_TAGS & set(exif):
            del exif[tag]
        return exif.tobytes() if len(exif) else None
    return None


# Modes whose samples keep their colour space on the way to gray or RGB, so an
# ICC profile still describes them.
_PROFILE_KEEPING_MODES = {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "I", "I;16", "I;16B",
                          "I;16L", "I;16N", "F"}


def from_image(image) -> Metadata:
    """The ICC profile, EXIF and XMP of a PIL image.  An item the format
    cannot carry is dropped with a MetadataWarning, so that it never stops an
    encode."""
    image.load()   # PNG chunks after the pixels land in im.info only then
    info = image.info
    xmp = info.get("xmp") or info.get("XML:com.adobe.xmp")
    icc = info.get("icc_profile")
    if icc and image.mode not in _PROFILE_KEEPING_MODES:
        # The image is converted to RGB (images.py), and a CMYK or Lab profile
        # would then mislabel the RGB samples.
        warnings.warn(f"the ICC profile of a {image.mode} image does not describe its RGB conversion; "
                      f"not kept", MetadataWarning, stacklevel=4)
        icc = None
    kept = {}
    for name, value in (("icc_profile", icc), ("exif", _exif_of(image)), ("xmp", xmp)):
        try:
            Metadata(**{name: value})
        except BlockcodecError as exc:
            warnings.warn(f"{exc}; not kept", MetadataWarning, stacklevel=4)   # the caller of encode
            continue
        kept[name] = value
    return Metadata(**kept)


def resolve(image, metadata) -> Metadata:
    """What an encode of ``image`` carries: ``metadata`` True keeps what a PIL
    image holds, False carries nothing, a Metadata is carried as given."""
    if isinstance(metadata, Metadata):
        return metadata
    if isinstance(metadata, bool):
        from PIL import Image

        return from_image(image) if metadata and isinstance(image, Image.Image) else Metadata()
    raise BlockcodecError(f"metadata must be True, False or a blockcodec.Metadata, got {type(metadata).__name__}")


def save_options(metadata: Metadata, fmt: str) -> tuple[dict, list[str]]:
    """Pillow ``save()`` keyword arguments that write ``metadata`` into a file
    of Pillow format ``fmt``, and the items that format cannot hold (for a
    warning).  ICC and EXIF go into PNG and JPEG byte for byte; TIFF holds
    the EXIF tags in its own IFD, so their bytes are rewritten."""
    options, dropped = {}, []
    for name, value in metadata.items():
        if fmt not in WRITABLE_FORMATS or (fmt == "JPEG" and len(value) > _JPEG_LIMITS.get(name, len(value))) \
                or (fmt == "PNG" and name == "xmp" and not _is_utf8(value)):   # PNG's iTXt is text
            dropped.append(_LABELS[name])
        else:
            options[name] = value
    if "exif" in options and fmt == "JPEG":
        options["exif"] = EXIF_PREFIX + options["exif"]   # JPEG's writer copies APP1 as given
    if "xmp" in options and fmt == "PNG":                 # Pillow's PNG writer has no xmp argument
        from PIL import PngImagePlugin

        text = PngImagePlugin.PngInfo()
        text.add_itxt("XML:com.adobe.xmp", options.pop("xmp").decode("utf-8"))
        options["pnginfo"] = text
    if "xmp" in options and fmt == "TIFF":                # nor its TIFF writer: tag 700 of the IFD
        from PIL import Image

        exif = Image.Exif()
        if "exif" in options:
            exif.load(options["exif"])
        exif[700] = options.pop("xmp")
        options["exif"] = exif
    return options, dropped


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def pillow_info(metadata: Metadata) -> dict:
    """``im.info`` entries as Pillow's own readers set them (EXIF with the
    "Exif\\0\\0" prefix, as from JPEG and PNG files)."""
    info = dict(metadata.items())
    if "exif" in info:
        info["exif"] = EXIF_PREFIX + info["exif"]
    return info


def describe(metadata: Metadata) -> str:
    """One line for ``blockcodec info``: each chunk with its size, the ICC
    profile's description and the EXIF orientation and camera where Pillow
    can read them."""
    if not metadata:
        return "none"
    parts = []
    for name, value in metadata.items():
        notes = _icc_notes(value) if name == "icc_profile" else _exif_notes(value) if name == "exif" else []
        parts.append(f"{_LABELS[name]} {len(value)} bytes" + (f" ({', '.join(notes)})" if notes else ""))
    return ", ".join(parts)


def _icc_notes(icc: bytes) -> list[str]:
    try:
        import io

        from PIL import ImageCms
        return [ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).strip()]
    except Exception:  # no littlecms, or a profile it cannot parse: the size alone is still true
        return []


def _exif_notes(exif: bytes) -> list[str]:
    try:
        from PIL import Image
        tags = Image.Exif()
        tags.load(exif)
        orientation, make, model = tags.get(0x0112), tags.get(0x010F), tags.get(0x0110)
    except Exception:  # unreadable tags are carried all the same
        return []
    camera = " ".join(str(s).strip("\0 ") for s in (make, model) if s)
    return ([f"orientation {orientation}"] if orientation else []) + ([f"camera {camera}"] if camera else [])
