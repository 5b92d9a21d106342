"""The codec: images in, bytes out, and back, with every intermediate exposed.

``Codec.encode`` / ``Codec.decode`` return result objects carrying the
per-block predictions, residuals and quantized coefficients of every plane,
bits per entropy-coding stage and time per stage, for experiments.  The
module-level ``blockcodec.encode`` / ``blockcodec.decode`` are thin wrappers.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from . import bitstream, color, entropy, postfilter, predictors, quantization, rdoq
from .bitstream import GRAY, YCBCR420, YCBCR444, Header
from .engine import PlaneJob, PlaneTrace, Timings, code_planes, pad_guide
from .errors import BlockcodecError
from .images import as_image_array
from .metadata import Metadata, resolve as resolve_metadata
from .predictors import PlaneInfo

SUBSAMPLINGS = {"420": YCBCR420, "444": YCBCR444}


@dataclass(frozen=True)
class CodecConfig:
    """Encoder settings.  Only ``quality``, the colour mode, the predictor,
    the DC-prediction flag and the post-filter reach the bitstream;
    ``effort`` (rdoq.EFFORTS) and ``rounding`` are encoder-only
    rate-distortion choices: effort 0 quantizes with the dead-zone
    ``rounding``, higher efforts with the rate-distortion optimized quantizer
    (rdoq.py), at ``lambda_scale`` times the mean step squared.  The post-filter
    does not change the coded bits: it is the restoration network the stream
    asks its decoder to apply (``postfilter.NAMES``, or "none")."""

    quality: int = 75
    subsampling: str = "420"          # "420" or "444"; gray images are always one plane
    predictor: str = predictors.DEFAULT
    dc_prediction: bool | None = None  # None: on exactly when the predictor ignores context
    rounding: quantization.Rounding = quantization.Rounding()
    postfilter: str = postfilter.DEFAULT
    effort: int = rdoq.DEFAULT_EFFORT
    lambda_scale: float = rdoq.LAMBDA_SCALE
    chroma_lambda: float = rdoq.CHROMA_LAMBDA

    def __post_init__(self):
        if isinstance(self.quality, bool) or not isinstance(self.quality, (int, np.integer)):
            raise BlockcodecError(f"quality must be an integer 1..100, got {self.quality!r}")
        if not 1 <= self.quality <= 100:
            raise BlockcodecError(f"quality must be in 1..100, got {self.quality}")
        if not isinstance(self.subsampling, str) or self.subsampling not in SUBSAMPLINGS:
            raise BlockcodecError(f"subsampling must be one of {', '.join(SUBSAMPLINGS)}, got {self.subsampling!r}")
        if self.dc_prediction is not None and not isinstance(self.dc_prediction, (bool, np.bool_)):
            raise BlockcodecError(f"dc_prediction must be True, False or None, got {self.dc_prediction!r}")
        if not isinstance(self.rounding, quantization.Rounding):
            raise BlockcodecError(f"rounding must be a blockcodec.Rounding, got {type(self.rounding).__name__}")
        if isinstance(self.effort, bool) or not isinstance(self.effort, (int, np.integer)) \
                or self.effort not in rdoq.EFFORTS:
            raise BlockcodecError(f"effort must be one of {', '.join(map(str, rdoq.EFFORTS))}, got {self.effort!r}")
        if isinstance(self.lambda_scale, bool) or not isinstance(self.lambda_scale, (int, float)) \
                or not 0 <= self.lambda_scale <= 16:
            raise BlockcodecError(f"lambda_scale must be a number in 0..16, got {self.lambda_scale!r}")
        if isinstance(self.chroma_lambda, bool) or not isinstance(self.chroma_lambda, (int, float)) \
                or not 0 <= self.chroma_lambda <= 16:
            raise BlockcodecError(f"chroma_lambda must be a number in 0..16, got {self.chroma_lambda!r}")
        predictors.get(self.predictor)  # raises for unknown names
        postfilter.check_name(self.postfilter)


@dataclass
class Geometry:
    """Padded plane shapes for an image; decoders derive it from the header."""

    width: int
    height: int
    mode: int

    @property
    def plane_shapes(self) -> list[tuple[int, int]]:
        if self.mode == YCBCR420:
            h, w = -(-self.height // 16) * 16, -(-self.width // 16) * 16
            return [(h, w), (h // 2, w // 2), (h // 2, w // 2)]
        h, w = -(-self.height // 8) * 8, -(-self.width // 8) * 8
        return [(h, w)] * (1 if self.mode == GRAY else 3)


@dataclass
class Result:
    """What an encode or decode produced."""

    # The decoded image (uint8 HxW or HxWx3).  From encode: the in-loop
    # reconstruction, before any post-filter; from decode: after the post-filter.
    image: np.ndarray
    header: Header
    planes: list[PlaneTrace]
    data: bytes = b""
    bits: dict[str, int] = field(default_factory=dict)     # per entropy stage (encode only)
    timings: dict[str, float] = field(default_factory=dict)
    postfilter: str = "none"             # the post-filter decode applied
    metadata: Metadata = field(default_factory=Metadata)   # the ICC profile, EXIF and XMP carried

    @property
    def bpp(self) -> float:
        return len(self.data) * 8 / (self.header.width * self.header.height)


def _plane_infos(geom: Geometry, quality: int) -> list[PlaneInfo]:
    n = len(geom.plane_shapes)
    return [PlaneInfo(i, i > 0, quality, quantization.qtable(quality, i > 0)) for i in range(n)]


def _code_planes(geom: Geometry, predictor, infos: list[PlaneInfo], sources=None, coefs=None,
                 rounding=None, keep_trace: bool = False, progress=None, quantizers=None) -> list[PlaneTrace]:
    """The coding loop over an image's planes, for the encoder (``sources``)
    or the decoder (``coefs``): luma first, then Cb and Cr as one group.  A
    predictor that reads guides (cross-component prediction) sees the decoded
    luma brought to chroma resolution (2x2 mean for 4:2:0), and for Cr also
    the decoded Cb.  ``progress``: see ``engine.code_planes``.  The luma
    entries of ``sources`` and ``quantizers`` (lists) are set to None once
    luma is coded, so that they are not held through the chroma planes."""
    shapes = geom.plane_shapes

    def job(i, guides=(), reads_previous=False):
        return PlaneJob(shapes[i], infos[i], None if sources is None else sources[i],
                        None if coefs is None else coefs[i], list(guides), reads_previous,
                        None if quantizers is None else quantizers[i])

    traces = code_planes([job(0)], predictor, rounding, keep_trace, progress)
    for done in (sources, quantizers):
        if done is not None:
            done[0] = None
    if len(shapes) == 3:
        guides = []
        if predictor.guides:
            luma = traces[0].recon
            guides = [pad_guide(color.downsample_420(luma) if geom.mode == YCBCR420 else luma)]
        traces += code_planes([job(1, guides), job(2, guides, predictor.guides)], predictor,
                              rounding, keep_trace, progress)
    return traces


# Pixels per strip of colour conversion, both ways: its int32 temporaries
# (20 to 30 bytes a pixel) then take under 8 MB, not gigabytes for the largest
# images (nor 30 bytes a pixel of a small one, converted in one strip).
ASSEMBLE_PIXELS = 1 << 18


def _assemble(planes: list[np.ndarray], geom: Geometry) -> np.ndarray:
    if geom.mode == GRAY:
        return np.ascontiguousarray(planes[0][: geom.height, : geom.width])
    y, cb, cr = planes
    out = np.empty((geom.height, geom.width, 3), np.uint8)
    rows = max(2, ASSEMBLE_PIXELS // geom.width // 2 * 2)   # even: 4:2:0 strips start on a chroma row
    for top in range(0, geom.height, rows):
        bottom = min(top + rows, geom.height)
        if geom.mode == YCBCR420:
            strips = [color.upsample_420_rows(p, top, bottom) for p in (cb, cr)]
        else:
            strips = [cb[top:bottom], cr[top:bottom]]
        out[top:bottom] = color.ycbcr_to_rgb(*(p[:, : geom.width] for p in [y[top:bottom], *strips]))
    return out


class Codec:
    """An encoder/decoder pair with fixed settings."""

    def __init__(self, config: CodecConfig | None = None, **kwargs):
        if config is not None and not isinstance(config, CodecConfig):
            raise BlockcodecError(f"config must be a blockcodec.CodecConfig, got {type(config).__name__}")
        self.config = config if config is not None else CodecConfig(**kwargs)
        self.tables = entropy.default_tables()

    # -------------------------------------------------------------- encode
    def analyse(self, image, keep_trace: bool = True, progress=None):
        """Everything before entropy coding: returns (geometry, plane traces,
        dc_prediction flag, timings).  Used by encode() and by table fitting."""
        cfg = self.config
        t0 = time.perf_counter()
        img = as_image_array(image)
        height, width = img.shape[:2]
        bitstream.check_dimensions(width, height)
        mode = GRAY if img.ndim == 2 else SUBSAMPLINGS[cfg.subsampling]
        geom = Geometry(width, height, mode)
        sources = self._split(img, geom)
        t1 = time.perf_counter()
        predictor = predictors.get(cfg.predictor)
        dc_pred = (not predictor.causal) if cfg.dc_prediction is None else cfg.dc_prediction
        infos = _plane_infos(geom, cfg.quality)
        quantizers = None
        if cfg.effort > 0:
            lams = rdoq.plane_lambdas(infos[0].qtable, len(infos), 0.25 if mode == YCBCR420 else 1.0,
                                      cfg.lambda_scale, cfg.chroma_lambda)
            quantizers = [rdoq.PlaneQuantizer(self.tables, info.chroma, cfg.quality, h // 8, w // 8, info.qtable,
                                              dc_pred, lam, cfg.effort)
                          for (h, w), info, lam in zip(geom.plane_shapes, infos, lams)]
        traces = _code_planes(geom, predictor, infos, sources=sources, rounding=cfg.rounding.table(),
                              keep_trace=keep_trace, quantizers=quantizers, progress=progress)
        loop = Timings()
        for tr in traces:
            loop.add(tr.timings)
        t2 = time.perf_counter()
        timings = {"color": t1 - t0, "prediction": loop.prediction, "transform": loop.transform,
                   "glue": loop.glue, "loop": t2 - t1}
        return geom, traces, dc_pred, timings

    def encode(self, image, keep_trace: bool = True, progress=None, metadata=True) -> Result:
        """``metadata``: True carries the ICC profile, EXIF and XMP of a PIL
        ``image``, False nothing, a ``blockcodec.Metadata`` exactly that."""
        cfg = self.config
        t0 = time.perf_counter()
        carried = resolve_metadata(image, metadata)
        geom, traces, dc_pred, timings = self.analyse(image, keep_trace, progress)
        predictor = predictors.get(cfg.predictor)
        t2 = time.perf_counter()
        sink = entropy.Encoder(self.tables)
        for (h, w), tr, info in zip(geom.plane_shapes, traces, _plane_infos(geom, cfg.quality)):
            entropy.code_plane(sink, tr.coefs, h // 8, w // 8, info.chroma, dc_pred, cfg.quality)
            if not keep_trace:
                tr.coefs = None      # coded: 2 bytes a sample not held through the rest
        entropy.code_end(sink)
        payload = sink.finish()
        bits = dict(sink.stage_bits)
        del sink                     # and its adapted tables
        t3 = time.perf_counter()

        header = Header(
            width=geom.width, height=geom.height, mode=geom.mode, quality=cfg.quality,
            predictor_id=predictors.id_of(cfg.predictor), predictor_hash=predictor.weights_hash(),
            tables_hash=self.tables.hash, flags=bitstream.FLAG_DC_PREDICTION if dc_pred else 0,
            postfilter_id=postfilter.id_of(cfg.postfilter), postfilter_hash=postfilter.weights_hash(cfg.postfilter),
        )
        data = bitstream.pack(header, payload, carried)
        out = _assemble([tr.recon for tr in traces], geom)
        t4 = time.perf_counter()
        bits["container"] = bits.get("container", 0) + 8 * (len(data) - len(payload))
        del timings["loop"]
        timings.update(entropy=t3 - t2, container=t4 - t3, total=t4 - t0)
        return Result(out, header, traces, data, bits, timings, metadata=carried)

    @staticmethod
    def _split(img: np.ndarray, geom: Geometry) -> list[np.ndarray]:
        """Colour-convert, pad (edge replication) and subsample into planes.

        In strips of about ASSEMBLE_PIXELS pixels, written straight into the
        planes: the conversion is per pixel and the 2x2 means never cross an
        even row, so the planes are those of converting the whole padded image
        at once, without its int32 temporaries (which took some 70 bytes a
        pixel of a 24-MP photo) or a padded copy of the image."""
        shapes = geom.plane_shapes
        h, w = shapes[0]
        pad = ((0, h - geom.height), (0, w - geom.width))
        if geom.mode == GRAY:
            return [np.ascontiguousarray(np.pad(img, pad, mode="edge"))]
        planes = [np.empty(shape, np.uint8) for shape in shapes]
        sub = 2 if geom.mode == YCBCR420 else 1
        rows = max(2, ASSEMBLE_PIXELS // w // 2 * 2)   # even: a 4:2:0 strip starts on a chroma row
        for top in range(0, h, rows):
            bottom = min(top + rows, h)
            strip = img[top:bottom] if bottom <= geom.height else \
                img[np.minimum(np.arange(top, bottom), geom.height - 1)]   # rows past the image repeat its last
            if w > geom.width:
                strip = np.pad(strip, ((0, 0), pad[1], (0, 0)), mode="edge")
            ycc = color.rgb_to_ycbcr(strip)
            planes[0][top:bottom] = ycc[0]
            for plane, p in zip(planes[1:], ycc[1:]):
                plane[top // sub: bottom // sub] = color.downsample_420(p) if sub == 2 else p
            del strip, ycc
        return planes

    # -------------------------------------------------------------- decode
    def decode(self, data, keep_trace: bool = False, postfilter: str | None = None,
               max_pixels: int = bitstream.MAX_PIXELS) -> Result:
        return decode_result(data, self.tables, keep_trace, postfilter, max_pixels=max_pixels)


def _postfilter_for(header: Header, choice: str | None) -> str:
    """The post-filter to run: the caller's choice, else the one the stream
    records, whose weights must be the ones this build ships.  A hash without
    a post-filter is a corrupt header, refused whatever the caller chose."""
    if header.postfilter_id == 0 and header.postfilter_hash != bytes(4):
        raise BlockcodecError("corrupt stream: post-filter hash set without a post-filter")
    if choice is not None:
        return postfilter.check_name(choice)
    if header.postfilter_id == 0:
        return "none"
    name = postfilter.name_of(header.postfilter_id)
    ours = postfilter.weights_hash(name)
    if header.postfilter_hash != ours:
        raise BlockcodecError(
            f"stream asks for post-filter {name!r} weights {header.postfilter_hash.hex()}, but this "
            f"blockcodec has {ours.hex()}; decode with another post-filter or 'none'")
    return name


def decode_result(data, tables: entropy.Tables | None = None, keep_trace: bool = False,
                  postfilter_choice: str | None = None, progress=None,
                  max_pixels: int = bitstream.MAX_PIXELS) -> Result:
    """Decode a stream.  ``postfilter_choice``: None applies the post-filter the
    stream records; a name from ``postfilter.NAMES`` (or "none") overrides it.
    A stream announcing more than ``max_pixels`` pixels is refused from its
    header, before any work."""
    t0 = time.perf_counter()
    if postfilter_choice is not None:
        postfilter.check_name(postfilter_choice)   # the caller's mistake first, whatever the stream
    bitstream.check_pixel_limit(max_pixels)
    header, payload, carried = bitstream.unpack_with_metadata(data)
    bitstream.check_dimensions(header.width, header.height, max_pixels)
    tables = tables or entropy.default_tables()
    name = predictors.name_of(header.predictor_id)
    predictor = predictors.get(name)
    if header.predictor_hash != predictor.weights_hash():
        raise BlockcodecError(
            f"stream was coded with predictor {name!r} weights {header.predictor_hash.hex()}, "
            f"but this blockcodec has {predictor.weights_hash().hex()}")
    filter_name = _postfilter_for(header, postfilter_choice)
    if header.tables_hash != tables.hash:
        raise BlockcodecError(
            f"stream was coded with entropy tables {header.tables_hash.hex()}, "
            f"but this blockcodec has {tables.hash.hex()}")
    geom = Geometry(header.width, header.height, header.mode)
    n_blocks = sum(h * w // 64 for h, w in geom.plane_shapes)
    if n_blocks > entropy.BLOCKS_PER_PAYLOAD_BYTE * (len(payload) + 8):
        raise BlockcodecError(f"corrupt stream: a {len(payload)}-byte payload cannot describe "
                              f"{header.width}x{header.height} pixels")
    infos = _plane_infos(geom, header.quality)
    t1 = time.perf_counter()
    sink = entropy.Decoder(tables, payload)
    coefs = []
    try:
        for (h, w), info in zip(geom.plane_shapes, infos):
            coefs.append(entropy.code_plane(sink, None, h // 8, w // 8, info.chroma, header.dc_prediction,
                                            header.quality))
        entropy.code_end(sink)
    except BlockcodecError:
        raise
    except Exception as exc:  # constriction reports a malformed payload as a plain error
        raise BlockcodecError(f"corrupt stream: entropy decoding failed ({exc})") from None
    t2 = time.perf_counter()
    del sink
    traces = _code_planes(geom, predictor, infos, coefs=coefs, keep_trace=keep_trace, progress=progress)
    del coefs
    if not keep_trace:
        for tr in traces:
            tr.coefs = None          # decoded: not held through the post-filter and colour conversion
    loop = Timings()
    for tr in traces:
        loop.add(tr.timings)
    t3 = time.perf_counter()
    planes = postfilter.apply(filter_name, [tr.recon for tr in traces], header.quality)
    t4 = time.perf_counter()
    image = _assemble(planes, geom)
    t5 = time.perf_counter()
    timings = {"container": t1 - t0, "entropy": t2 - t1, "prediction": loop.prediction,
               "transform": loop.transform, "glue": loop.glue, "postfilter": t4 - t3, "color": t5 - t4,
               "total": t5 - t0}
    return Result(image, header, traces, bytes(data), {}, timings, filter_name, carried)
