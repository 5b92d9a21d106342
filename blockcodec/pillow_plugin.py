"""A Pillow plugin for .bkc files: ``Image.open``, ``im.load`` and ``im.save``.

    import blockcodec
    from PIL import Image
    blockcodec.register_pillow()
    Image.open("photo.bkc").save("photo.png")
    Image.open("photo.png").save("photo.bkc", quality=60, predictor="planar")

``Image.open`` reads and checks the container (magic, header, CRC, metadata)
and sets the size, the mode and ``im.info``'s "icc_profile", "exif" and "xmp";
the pixels are decoded only on ``load()``.  Because the
size is known before decoding, Pillow's own decompression-bomb check
(``Image.MAX_IMAGE_PIXELS``) applies to .bkc files as to every other format.
"""
from __future__ import annotations

from PIL import Image, ImageFile

from . import bitstream, postfilter, predictors
from .errors import BlockcodecError
from .metadata import Metadata, from_image, pillow_info

FORMAT = "BKC"
EXTENSION = ".bkc"
MIME = "image/x-blockcodec"

# Pillow's JPEG spells subsampling "4:2:0" or 2, "4:4:4" or 0; accept those too,
# so code written for JPEG saves works unchanged.
_SUBSAMPLING = {"420": "420", "4:2:0": "420", 2: "420", "444": "444", "4:4:4": "444", 0: "444"}


def _accept(prefix: bytes) -> bool:
    return prefix[:4] == bitstream.MAGIC


class BkcImageFile(ImageFile.ImageFile):
    format = FORMAT
    format_description = "blockcodec learned image codec"

    def _open(self) -> None:
        data = self.fp.read()
        try:
            header, _, carried = bitstream.unpack_with_metadata(data)
        except BlockcodecError as exc:
            raise OSError(f"broken {FORMAT} file: {exc}") from None
        self._size = (header.width, header.height)
        self._mode = "L" if header.mode == bitstream.GRAY else "RGB"
        self.info.update(pillow_info(carried))   # the keys Pillow's readers set and its writers read
        # One tile for the whole stream: the decoder reads the file from offset 0.
        self.tile = [ImageFile._Tile(FORMAT, (0, 0) + self.size, 0, ())]


class _BkcDecoder(ImageFile.PyDecoder):
    _pulls_fd = True   # the range coder needs the whole stream, not chunks

    def decode(self, buffer):
        from .codec import decode_result

        assert self.fd is not None
        try:
            image = decode_result(self.fd.read()).image
        except BlockcodecError as exc:
            raise OSError(f"broken {FORMAT} file: {exc}") from None
        self.set_as_raw(image.tobytes())
        return -1, 0


def _save(im: Image.Image, fp, filename) -> None:
    from . import encode

    params = im.encoderinfo
    subsampling = params.get("subsampling", "420")
    if subsampling not in _SUBSAMPLING:
        raise ValueError(f"subsampling must be 420 or 444 (or Pillow's 4:2:0 / 4:4:4), got {subsampling!r}")
    # save(icc_profile=, exif=, xmp=) as for Pillow's own writers; what is not
    # given comes from im.info, as blockcodec.encode keeps it (b"" drops one).
    found = from_image(im)
    carried = Metadata(**{name: params.get(name, getattr(found, name)) for name in ("icc_profile", "exif", "xmp")})
    data = encode(im, quality=params.get("quality", 75), subsampling=_SUBSAMPLING[subsampling],
                  predictor=params.get("predictor", predictors.DEFAULT),
                  postfilter=params.get("postfilter", postfilter.DEFAULT), metadata=carried)
    fp.write(data)


def register_pillow() -> None:
    """Teach Pillow the BKC format: open, save, the .bkc extension and a MIME
    type.  Calling it again is harmless."""
    Image.register_open(FORMAT, BkcImageFile, _accept)
    Image.register_decoder(FORMAT, _BkcDecoder)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, EXTENSION)
    Image.register_mime(FORMAT, MIME)
