"""The ``blockcodec`` command line: a thin layer over the Python API.

    blockcodec encode photo.png -o photo.bkc -q 80
    blockcodec decode photo.bkc -o photo.png
    blockcodec info photo.bkc

Error policy: every bad input (unreadable file, not an image, corrupt stream,
invalid option, unwritable output, ...) ends with ONE line on stderr,
``blockcodec: error: <message>``, and exit status 1 (bad input or data) or 2
(usage error, as argparse does); never a traceback.  A signal ends it with
128 + its number (Ctrl-C 130, SIGTERM 143, SIGHUP 129; a closed pipe on
standard output 141), never 0.
Output files are written atomically (temp file in the same directory, fsync,
rename; the temp file is removed on any failure or signal), never replace the
input, and never replace an existing file unless ``--force`` is given.  An
output that is a symlink is written through: the file it points to is
replaced, and the link stays.  Outputs that are not regular files (devices,
FIFOs, sockets, ``/dev/stdout`` on a pipe) are refused; '-' is standard output.

Adding a subcommand (``train``, ``restore``, ...): write ``add_<name>_parser``
that adds a subparser and sets ``func=cmd_<name>`` via ``set_defaults``, write
``cmd_<name>(args) -> int``, and append the adder to ``SUBCOMMANDS``.  Inside a
command, raise ``CliError`` (or let ``BlockcodecError`` propagate) for bad input,
use ``read_input_bytes`` / ``load_image`` (``read_image`` with metadata) to read,
``check_output`` before doing any expensive work, and ``write_output`` to write.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import select
import stat
import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np

from . import __version__, bitstream, postfilter, predictors, rdoq, tempfiles
from .errors import BlockcodecError
from .images import ConversionWarning
from .metadata import Metadata, MetadataWarning, describe as describe_metadata, from_image as metadata_of
from .metadata import save_options as metadata_save_options

PROG = "blockcodec"
STDIO = "-"

EXIT_OK = 0
EXIT_DATA = 1      # bad input, corrupt data, I/O failure
EXIT_USAGE = 2     # invalid command line (argparse's convention)
EXIT_INTERRUPT = 130
EXIT_PIPE = 141    # 128 + SIGPIPE, like a process killed by a closed pipe


# --------------------------------------------------------------------------- errors and messages
class CliError(Exception):
    """A user-facing failure: one message line and an exit status."""

    def __init__(self, message: str, status: int = EXIT_DATA):
        super().__init__(message)
        self.status = status


class UsageError(CliError):
    def __init__(self, message: str):
        super().__init__(message, EXIT_USAGE)


def _one_line(message: object) -> str:
    return " ".join(str(message).split()) or "unknown error"


def error(message: object) -> None:
    print(f"{PROG}: error: {_one_line(message)}", file=sys.stderr, flush=True)


def warn(message: object) -> None:
    print(f"{PROG}: warning: {_one_line(message)}", file=sys.stderr, flush=True)


def _describe_os_error(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _name(path: str, *, output: bool = False) -> str:
    """A file name for messages: '<stdin>'/'<stdout>' for '-'."""
    if path == STDIO:
        return "<stdout>" if output else "<stdin>"
    return path


def _display(path: str, *, output: bool = False) -> str:
    """Like _name, quoted (so odd file names stay readable in one line)."""
    return _name(path, output=output) if path == STDIO else repr(path)


# --------------------------------------------------------------------------- argparse plumbing
class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors become one line (raised, not printed)."""

    def error(self, message):  # noqa: D401 - argparse API
        hint = f"; see '{self.prog} --help'"
        raise UsageError(_one_line(message) + hint)


_FORMATTER = argparse.RawDescriptionHelpFormatter


def _int_in(text: str, what: str, lo: int, hi: int | None = None) -> int:
    """An argparse integer in lo..hi (no upper bound without hi)."""
    span = f"in {lo}..{hi}" if hi is not None else f"at least {lo}"
    try:
        n = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be an integer {span}, got {text!r}") from None
    if n < lo or (hi is not None and n > hi):
        raise argparse.ArgumentTypeError(f"{what} must be {span}, got {n}")
    return n


def _quality(text: str) -> int:
    return _int_in(text, "quality", 1, 100)


def _positive_int(text: str) -> int:
    return _int_in(text, "the value", 1)


def _max_pixels(text: str) -> int:
    n = _positive_int(text)
    if n > bitstream.MAX_PIXELS:
        raise argparse.ArgumentTypeError(f"at most {bitstream.MAX_PIXELS} (the format's limit), got {n}")
    return n


def _add_max_pixels_argument(p, what: str) -> None:
    p.add_argument("--max-pixels", type=_max_pixels, default=bitstream.MAX_PIXELS, metavar="N",
                   help=f"refuse {what} of more than N pixels, from the header, before any work "
                        f"(default and most: {bitstream.MAX_PIXELS} = 2^27, the format's limit)")


def _positive_float(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(x) and x > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return x


# --------------------------------------------------------------------------- input
def check_input(path: str) -> None:
    """Refuse missing files and directories early, with a clear message."""
    if path == STDIO:
        return
    if os.path.isdir(path):
        raise CliError(f"cannot read {path!r}: it is a directory")
    if not os.path.exists(path):
        raise CliError(f"cannot read {path!r}: no such file")


def read_input_bytes(path: str) -> bytes:
    """The whole of a file, or of stdin for '-'."""
    if path == STDIO:
        stdin = sys.stdin
        if stdin is None:
            raise CliError("no standard input to read from")
        if stdin.isatty():
            raise CliError("refusing to read binary data from a terminal; give a file or redirect stdin")
        data = stdin.buffer.read()
        if not data:
            raise CliError("standard input is empty")
        return data
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise CliError(f"cannot read {path!r}: {_describe_os_error(exc)}") from None


def load_image(path: str, max_pixels: int = bitstream.MAX_PIXELS) -> np.ndarray:
    """Read an image with Pillow and convert it to the uint8 gray/RGB array the
    codec codes.  Conversion warnings are printed.  An image of more than
    ``max_pixels`` is refused from its header: Pillow's own decompression-bomb
    limit is set to the same number while the file is read."""
    return read_image(path, max_pixels, metadata=False)[0]


def read_image(path: str, max_pixels: int = bitstream.MAX_PIXELS, *,
               metadata: bool = True) -> tuple[np.ndarray, Metadata]:
    """``load_image``, and the file's ICC profile, EXIF and XMP for the stream
    to carry (none unless ``metadata``)."""
    from PIL import Image

    name = _display(path)
    check_input(path)
    source = io.BytesIO(read_input_bytes(path)) if path == STDIO else path
    with warnings.catch_warnings(record=True) as caught, _pillow_pixel_limit(Image, max_pixels):
        warnings.simplefilter("always", ConversionWarning)
        warnings.simplefilter("always", MetadataWarning)
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(source) as im:
                frames = getattr(im, "n_frames", 1)
                if frames > 1:
                    warn(f"{name}: image has {frames} frames; only the first is encoded")
                from .images import as_image_array
                array = as_image_array(im)   # loads the pixels; before that, it reads the file's bit depth
                carried = metadata_of(im) if metadata else Metadata()   # after load: late PNG chunks too
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise CliError(f"refusing {name}: more than {max_pixels} pixels "
                           f"(--max-pixels; the format allows up to {bitstream.MAX_PIXELS})") from None
        except Image.UnidentifiedImageError:
            raise CliError(f"cannot read {name}: not an image format Pillow can read") from None
        except BlockcodecError as exc:
            raise CliError(f"cannot encode {name}: {exc}") from None
        except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
            raise CliError(f"cannot read {name}: {_describe_os_error(exc)}") from None
        except MemoryError:
            raise CliError(f"cannot read {name}: out of memory") from None
        except Exception as exc:  # Pillow reports damaged files with many exception types
            raise CliError(f"cannot read image {name}: {exc}") from None
    _report_warnings(caught, name)
    return array, carried


def _report_warnings(caught, name: str) -> None:
    """What reading an input lost, as one-line warnings; other warnings as Python shows them."""
    for w in caught:
        if issubclass(w.category, (ConversionWarning, MetadataWarning)):
            warn(f"{name}: {w.message}")
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _jpeg_metadata(data: bytes, name: str) -> Metadata:
    """The ICC profile, EXIF and XMP of a JPEG file already known to open."""
    from PIL import Image

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MetadataWarning)
        with Image.open(io.BytesIO(data)) as im:
            carried = metadata_of(im)
    _report_warnings(caught, name)
    return carried


@contextlib.contextmanager
def _pillow_pixel_limit(Image, max_pixels: int):
    """Pillow's bomb limit is a module global: set it for one read, then put back
    whatever it was (a library user's choice stays theirs)."""
    before = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = before


# --------------------------------------------------------------------------- output
def _same_file(a: str, b: str) -> bool:
    try:
        if os.path.samefile(a, b):
            return True
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def check_output(path: str, *, inputs: tuple[str, ...] = (), force: bool = False) -> None:
    """Refuse, before any work is done, outputs that could not or must not be written."""
    if path == STDIO:
        stdout = sys.stdout
        if stdout is None:
            raise CliError("no standard output to write to")
        if stdout.isatty():
            raise CliError("refusing to write binary data to a terminal; use -o FILE or redirect stdout")
        return
    if not path or path.endswith(("/", os.sep)):
        raise CliError(f"invalid output file name {path!r}")
    for src in inputs:
        if src != STDIO and _same_file(src, path):
            raise CliError(f"output {path!r} is the input file; refusing to overwrite it")
    if os.path.isdir(path):
        raise CliError(f"output {path!r} is a directory")
    directory = os.path.dirname(output_target(path)) or "."   # refuses special files, even with --force
    if os.path.lexists(path) and not force:
        raise CliError(f"output {path!r} already exists; use -f/--force to overwrite it")
    if not os.path.isdir(directory):
        raise CliError(f"cannot write {path!r}: directory {directory!r} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise CliError(f"cannot write {path!r}: directory {directory!r} is not writable")


_FILE_KINDS = [(stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISFIFO, "a pipe (FIFO)"), (stat.S_ISSOCK, "a socket")]


def output_target(path: str) -> str:
    """The file an output path names: the path itself, or through symlinks
    the file they point to (which need not exist yet).  Only a regular file
    can be replaced atomically, so anything else that exists is refused."""
    try:
        mode = os.stat(path).st_mode       # follows links, /proc/self/fd/N included
    except FileNotFoundError:
        return os.path.realpath(path)
    except OSError as exc:
        raise CliError(f"cannot write {path!r}: {_describe_os_error(exc)}") from None
    if stat.S_ISREG(mode):
        return os.path.realpath(path)
    if stat.S_ISDIR(mode):
        raise CliError(f"output {path!r} is a directory")
    kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")
    raise CliError(f"cannot write {path!r}: it is {kind}; outputs are regular files "
                   f"(use '-o -' for standard output)")


def _write_all(write, data: bytes, stream=None) -> None:
    """Call ``write`` until every byte is out.  An unbuffered stream (python -u)
    or a raw file may take fewer bytes than offered, and a short write must
    never pass for success; a non-blocking ``stream`` may take none for a while."""
    view = memoryview(data)
    while view:
        n = write(view)
        if n is None and stream is not None:
            select.select([], [stream], [])
        view = view[n or 0:]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_output(path: str, data: bytes, *, force: bool = False) -> None:
    """Write bytes to stdout ('-') or atomically to a file.

    The bytes go to a temp file next to the destination, which is fsynced and
    then renamed over it; on any failure (Ctrl-C included) the temp file is
    removed.  Without ``force`` an existing destination is never replaced, even
    one that appeared while we were working.  Through a symlink, the temp file
    goes beside the file it points to and replaces that file (``output_target``)."""
    if path == STDIO:
        out = sys.stdout.buffer
        _write_all(out.write, data, sys.stdout)
        out.flush()
        return
    target = output_target(path)
    directory = os.path.dirname(target)
    try:
        with tempfiles.temp_file(directory, f".{os.path.basename(target)}.") as (fd, tmp_name):
            _write_all(lambda b: os.write(fd, b), data)
            os.fsync(fd)
            os.chmod(tmp_name, 0o666 & ~_umask())  # made 0600; give the usual mode
            if force:
                os.replace(tmp_name, target)
            else:
                try:
                    os.link(tmp_name, target)   # atomic "create, but never replace"
                except FileExistsError:
                    raise CliError(f"output {path!r} already exists; use -f/--force to overwrite it") from None
                except OSError:               # file systems without hard links
                    if os.path.lexists(target):
                        raise CliError(f"output {path!r} already exists; use -f/--force to overwrite it") from None
                    os.replace(tmp_name, target)
            _fsync_dir(directory)
    except OSError as exc:
        raise CliError(f"cannot write {path!r}: {_describe_os_error(exc)}") from None


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def image_file_bytes(image: np.ndarray, fmt: str, path: str, carried: Metadata) -> bytes:
    """``image`` as a file of Pillow format ``fmt`` for ``path``, holding the
    metadata items that format can (a one-line warning names the others)."""
    from PIL import Image

    options, dropped = metadata_save_options(carried, fmt)
    if dropped:
        items = dropped[0] if len(dropped) == 1 else ", ".join(dropped[:-1]) + " and " + dropped[-1]
        warn(f"{_name(path, output=True)}: {fmt} files cannot hold the {items}; not written")
    buf = io.BytesIO()
    try:
        Image.fromarray(image).save(buf, format=fmt, **options)
    except Exception as exc:  # Pillow writers refuse some modes/sizes
        raise CliError(f"cannot write {_display(path, output=True)} as {fmt}: {exc}") from None
    return buf.getvalue()


def _pillow_format_for(path: str) -> str:
    """The Pillow format that writes ``path`` (by extension); PNG for stdout."""
    if path == STDIO:
        return "PNG"
    from PIL import Image

    ext = os.path.splitext(path)[1].lower()
    if not ext:
        raise CliError(f"cannot tell the image format of {path!r}: give it an extension such as .png")
    fmt = Image.registered_extensions().get(ext)
    if fmt is None or fmt not in Image.SAVE:
        raise CliError(f"cannot write {path!r}: Pillow has no writer for {ext!r} files (try .png)")
    return fmt


# --------------------------------------------------------------------------- helpers
def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def _fmt_psnr(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.2f}"


@dataclass
class _Encoded:
    quality: int
    result: object   # blockcodec.Result


def _encode_at(image: np.ndarray, quality: int, args, progress=None, metadata=False) -> _Encoded:
    from .codec import Codec, CodecConfig

    cfg = CodecConfig(quality=quality, subsampling=args.subsampling, predictor=args.predictor,
                      postfilter=args.postfilter, effort=args.effort)
    return _Encoded(quality, Codec(cfg).encode(image, keep_trace=False, progress=progress, metadata=metadata))


def _block_count(width: int, height: int, mode: int) -> int:
    """Blocks the coding loop visits: the unit of the progress bar."""
    from .codec import Geometry

    return sum(h * w // 64 for h, w in Geometry(width, height, mode).plane_shapes)


# --------------------------------------------------------------------------- encode
ENCODE_EPILOG = """\
IN is any image Pillow can read (PNG, JPEG, TIFF, BMP, WebP, ...) or '-' for
standard input; OUT is a file name or '-' for standard output.  Gray images are
coded as one plane; alpha is dropped and 16-bit samples are reduced to 8 bits,
each with a warning.

The ICC profile, EXIF and XMP of IN are kept in the stream (--strip drops
them), and 'blockcodec decode' writes them back to PNG, JPEG, TIFF and WebP.
EXIF orientation is kept as a tag, not applied: the pixels are coded as
stored (as cwebp and avifenc do).

examples:
  blockcodec encode photo.png -o photo.bkc              quality 75
  blockcodec encode photo.png -o photo.bkc -q 90        higher quality, larger file
  blockcodec encode photo.png -o photo.bkc --target-bpp 1.0
                                                        best quality within 1 bit/pixel
  blockcodec encode photo.png -o photo.bkc --subsampling 444 --predictor dc -v
  cat photo.png | blockcodec encode - -o - > photo.bkc  pipes
  blockcodec encode photo.png -o photo.bkc -f           replace an existing photo.bkc
  blockcodec encode photo.jpg -o photo.bkc --strip      without ICC profile, EXIF and XMP
  blockcodec encode *.png -d bkc/ --jobs 2              many files: bkc/<name>.bkc, 2 at a time

With -d, a file that fails is reported on one line and the others still run;
the exit status is 1 if any failed.  A progress bar is shown on standard error
when it is a terminal (over files for a batch, over 8x8 blocks for one image).
"""


def _add_batch_arguments(p, what: str, output: str) -> None:
    """IN..., and -o OUT for one file or -d OUTDIR for many, --jobs, --quiet."""
    p.add_argument("inputs", metavar="IN", nargs="+",
                   help=f"input {what}(s), or '-' for standard input (with -o)")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("-o", "--output", metavar="OUT", help=f"for a single IN: the output {output}")
    out.add_argument("-d", "--output-dir", metavar="OUTDIR",
                     help="output directory for any number of INs, each named after its input "
                          "(created if missing)")
    p.add_argument("--jobs", type=_positive_int, default=1, metavar="N",
                   help="with -d: code N files at a time, in separate processes (default 1)")
    p.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                   help="threads per file for the C kernels (default: the cores this process may run "
                        "on, shared among --jobs); the output never depends on it")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar and no warnings (errors are still reported)")


def add_encode_parser(sub) -> None:
    names = ", ".join(predictors.REGISTRY)
    p = sub.add_parser(
        "encode", help="compress images to .bkc streams",
        description="Compress an image (or many, with -d) to a blockcodec stream.",
        epilog=ENCODE_EPILOG, formatter_class=_FORMATTER)
    _add_batch_arguments(p, "image file", ".bkc file, or '-' for standard output")
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("-q", "--quality", type=_quality, default=None, metavar="Q",
                      help="quality 1 (smallest) .. 100 (best); default 75")
    rate.add_argument("--target-bpp", type=_positive_float, default=None, metavar="X",
                      help="pick the highest quality whose size is at most X bits per pixel "
                           "(estimated on a sample of the image, then 2-3 full encodes; warns if even "
                           "quality 1 is larger)")
    p.add_argument("--subsampling", choices=["420", "444"], default="420",
                   help="chroma subsampling of colour images: 420 (default, half-resolution "
                        "chroma) or 444 (full); ignored for gray images")
    p.add_argument("--predictor", choices=list(predictors.REGISTRY), default=predictors.DEFAULT,
                   metavar="NAME", help=f"block predictor, one of: {names} (default {predictors.DEFAULT})")
    p.add_argument("--postfilter", choices=list(postfilter.NAMES), default=postfilter.DEFAULT, metavar="NAME",
                   help=f"restoration network the stream asks its decoder to run, one of: "
                        f"{', '.join(postfilter.NAMES)} (default {postfilter.DEFAULT}); it does not "
                        f"change the coded bits")
    p.add_argument("-e", "--effort", type=int, choices=list(rdoq.EFFORTS), default=rdoq.DEFAULT_EFFORT,
                   metavar="N", help=f"encoder effort {rdoq.EFFORTS[0]}..{rdoq.EFFORTS[-1]} (default "
                                     f"{rdoq.DEFAULT_EFFORT}): 0 quantizes with fixed rounding; 1 and up choose "
                                     f"each block's levels by rate-distortion optimization, more passes at higher "
                                     f"efforts (smaller files, slower encodes; decoding is the same speed)")
    p.add_argument("--strip", action="store_true",
                   help="drop the ICC profile, EXIF and XMP of IN (kept by default; EXIF orientation is "
                        "kept as a tag, not applied to the pixels, as cwebp and avifenc do)")
    _add_max_pixels_argument(p, "images")
    p.add_argument("-f", "--force", action="store_true", help="overwrite OUT if it exists")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print a summary (size, bpp, quality, PSNR before the post-filter) to standard error")
    p.set_defaults(func=cmd_encode)


def _run_files(args, work, extension: str) -> int:
    """The -o form (one file, errors raised as usual) or the -d form (batch.py)."""
    from . import batch, engine, progress

    if args.threads is not None:
        engine.set_threads(args.threads)
    if args.output is not None:
        if len(args.inputs) > 1:
            raise UsageError(f"{len(args.inputs)} inputs need -d OUTDIR, not -o")
        with progress.Bar(progress.wanted(args.quiet), "block") as bar, batch.quiet_warnings(args.quiet):
            work(args.inputs[0], args.output, args, bar)
        return EXIT_OK
    outputs = batch.output_paths(args.inputs, args.output_dir, extension)
    batch.prepare_dir(args.output_dir)
    return batch.run(work, args.inputs, outputs, args, jobs=args.jobs, quiet=args.quiet)


def cmd_encode(args) -> int:
    return _run_files(args, encode_file, ".bkc")


def encode_file(src: str, dst: str, args, bar) -> None:
    from . import ratecontrol
    from .codec import GRAY, SUBSAMPLINGS

    check_input(src)
    check_output(dst, inputs=(src,), force=args.force)
    image, carried = read_image(src, args.max_pixels, metadata=not args.strip)
    mode = GRAY if image.ndim == 2 else SUBSAMPLINGS[args.subsampling]
    blocks = _block_count(image.shape[1], image.shape[0], mode)

    full_encodes = []

    def encode_at(q: int) -> _Encoded:
        bar.expect(blocks)
        full_encodes.append(q)
        return _encode_at(image, q, args, progress=bar, metadata=carried)

    def estimate_bpp(sample: np.ndarray, q: int) -> float:   # the mosaic's encodes move the bar too
        bar.expect(_block_count(sample.shape[1], sample.shape[0], mode))
        return _encode_at(sample, q, args, progress=bar).result.bpp

    if args.target_bpp is not None:
        estimate_at = ratecontrol.estimator(image, estimate_bpp)
        enc, reached = ratecontrol.find_quality(encode_at, args.target_bpp, estimate_at)
        if not reached:
            warn(f"even quality 1 needs {enc.result.bpp:.3f} bpp, more than the target "
                 f"{args.target_bpp:g}; using quality 1")
    else:
        enc = encode_at(75 if args.quality is None else args.quality)
    bar.close()
    result = enc.result
    write_output(dst, result.data, force=args.force)
    if args.verbose:
        h = result.header
        target = "" if args.target_bpp is None else \
            f" (target {args.target_bpp:g}, {len(full_encodes)} full encodes)"
        print(f"{PROG}: {_name(dst, output=True)}: {h.width}x{h.height} "
              f"{bitstream.MODE_NAMES[h.mode]}, {len(result.data)} bytes, {result.bpp:.3f} bpp{target}, "
              f"quality {enc.quality}, predictor {args.predictor}, "
              f"PSNR {_fmt_psnr(psnr(image, result.image))} dB",
              file=sys.stderr)


# --------------------------------------------------------------------------- decode
DECODE_EPILOG = """\
The output format follows OUT's extension (.png, .bmp, .tif, .ppm, .jpg, ... -
anything Pillow can write); '-' writes PNG to standard output.  Gray streams
decode to a grayscale image, colour streams to RGB.

The post-filter the stream records (a restoration network run on the decoded
planes, outside the coding loop) is applied unless --postfilter picks another
or 'none'.

The ICC profile, EXIF and XMP the stream carries are written to PNG, JPEG,
TIFF and WebP outputs (--strip leaves them out); for other formats, which
cannot hold them, a warning says so.  EXIF orientation stays a tag: the
pixels are not rotated.

examples:
  blockcodec decode photo.bkc -o photo.png
  blockcodec decode photo.bkc -o raw.png --postfilter none
                                                        the exact in-loop reconstruction
  blockcodec decode photo.bkc -o photo.ppm -f           replace an existing photo.ppm
  blockcodec decode - -o - < photo.bkc > photo.png      pipes
  blockcodec decode *.bkc -d png/ --jobs 2              many files: png/<name>.png
  blockcodec decode *.bkc -d tif/ --format tif          ... in another format
"""


def _extension(text: str) -> str:
    return "." + text.lower().lstrip(".")


def add_decode_parser(sub) -> None:
    p = sub.add_parser(
        "decode", help="decompress .bkc streams to images",
        description="Decompress a blockcodec stream (or many, with -d) to an image file.",
        epilog=DECODE_EPILOG, formatter_class=_FORMATTER)
    _add_batch_arguments(p, ".bkc file", "image (format from the extension), or '-' for PNG on standard output")
    p.add_argument("--format", type=_extension, default=".png", metavar="EXT",
                   help="with -d: the output files' extension, which sets their format (default png)")
    p.add_argument("--postfilter", choices=list(postfilter.NAMES), default=None, metavar="NAME",
                   help=f"post-filter to run instead of the stream's own, one of: {', '.join(postfilter.NAMES)}")
    p.add_argument("--strip", action="store_true", help="write none of the stream's ICC profile, EXIF and XMP")
    _add_max_pixels_argument(p, "streams")
    p.add_argument("-f", "--force", action="store_true", help="overwrite OUT if it exists")
    p.add_argument("-v", "--verbose", action="store_true", help="print a summary to standard error")
    p.set_defaults(func=cmd_decode)


def cmd_decode(args) -> int:
    if args.output_dir is not None:   # an unwritable format fails once, before any work
        try:
            _pillow_format_for("x" + args.format)
        except CliError:
            raise UsageError(f"--format {args.format[1:]!r}: Pillow cannot write that format (try png)") from None
    return _run_files(args, decode_file, args.format)


def decode_file(src: str, dst: str, args, bar) -> None:
    from .codec import decode_result

    check_input(src)
    check_output(dst, inputs=(src,), force=args.force)
    fmt = _pillow_format_for(dst)   # before decoding: no work for an unwritable format
    data = read_input_bytes(src)
    header, _ = bitstream.unpack(data)
    bar.expect(_block_count(header.width, header.height, header.mode))
    if (args.postfilter or postfilter.name_of(header.postfilter_id)) != "none":
        bar.finishing = "post-filter"   # after the last block, for about as long again
    result = decode_result(data, postfilter_choice=args.postfilter, progress=bar, max_pixels=args.max_pixels)
    bar.close()
    out = image_file_bytes(result.image, fmt, dst, Metadata() if args.strip else result.metadata)
    write_output(dst, out, force=args.force)
    if args.verbose:
        h = result.header
        print(f"{PROG}: {_name(src)}: {h.width}x{h.height} "
              f"{bitstream.MODE_NAMES[h.mode]}, quality {h.quality}, {len(data)} bytes, "
              f"{result.bpp:.3f} bpp, post-filter {result.postfilter} -> {fmt}", file=sys.stderr)


# --------------------------------------------------------------------------- info
INFO_EPILOG = """\
Only the container is parsed and checked (magic, version, fields, length, CRC32,
metadata chunks); the payload is not decoded.  The predictor and entropy-table
hashes are compared with this build's: a mismatch means this blockcodec cannot
decode the stream.  'metadata' lists the ICC profile, EXIF and XMP the stream
carries, with their sizes (and the profile's name, EXIF orientation and camera).

examples:
  blockcodec info photo.bkc
  blockcodec encode photo.png -o - | blockcodec info -
"""


def add_info_parser(sub) -> None:
    p = sub.add_parser(
        "info", help="print a .bkc stream's header",
        description="Print the header of a blockcodec stream without decoding it.",
        epilog=INFO_EPILOG, formatter_class=_FORMATTER)
    p.add_argument("input", metavar="FILE", help="a .bkc file, or '-' for standard input")
    p.set_defaults(func=cmd_info)


def _hash_note(stream_hash: bytes, ours) -> str:
    if isinstance(ours, Exception):
        return f"(cannot check: {_one_line(ours)})"
    return "(matches this build)" if ours == stream_hash else f"(this build has {ours.hex()}: cannot decode)"


def _filter_hash_note(stream_hash: bytes, ours) -> str:
    if isinstance(ours, Exception):
        return "(unknown here: decode with --postfilter)"
    return "(matches this build)" if ours == stream_hash else \
        f"(this build has {ours.hex()}: decode with --postfilter)"


def cmd_info(args) -> int:
    check_input(args.input)
    data = read_input_bytes(args.input)
    header, payload, carried = bitstream.unpack_with_metadata(data)
    try:
        pname = predictors.name_of(header.predictor_id)
    except BlockcodecError:
        pname = None
    ours_p: object
    if pname is None:
        ours_p = BlockcodecError("predictor unknown to this version")
    else:
        try:
            ours_p = predictors.get(pname).weights_hash()
        except Exception as exc:  # a learned predictor whose weights cannot be loaded
            ours_p = exc
    try:
        from . import entropy
        ours_t: object = entropy.default_tables().hash
    except Exception as exc:
        ours_t = exc
    try:
        fname = postfilter.name_of(header.postfilter_id)
        ours_f: object = postfilter.weights_hash(fname)
    except BlockcodecError as exc:
        fname, ours_f = None, exc
    if header.postfilter_id == 0:
        filter_row = "none (id 0)"
    else:
        filter_row = (f"{fname or 'unknown'} (id {header.postfilter_id}), hash {header.postfilter_hash.hex()} "
                      f"{_filter_hash_note(header.postfilter_hash, ours_f)}")
    pixels = header.width * header.height
    rows = [
        ("file", "<stdin>" if args.input == STDIO else args.input),
        ("format", f"blockcodec stream version {bitstream.VERSION}"),
        ("dimensions", f"{header.width}x{header.height}"),
        ("colour mode", bitstream.MODE_NAMES[header.mode]),
        ("quality", str(header.quality)),
        ("predictor", f"{pname if pname else 'unknown'} (id {header.predictor_id})"),
        ("predictor hash", f"{header.predictor_hash.hex()} {_hash_note(header.predictor_hash, ours_p)}"),
        ("dc prediction", "on" if header.dc_prediction else "off"),
        ("post-filter", filter_row),
        ("entropy tables", f"{header.tables_hash.hex()} {_hash_note(header.tables_hash, ours_t)}"),
        ("payload", f"{len(payload)} bytes"),
        ("metadata", describe_metadata(carried)),
        ("file size", f"{len(data)} bytes"),
        ("bpp", f"{len(data) * 8 / pixels:.4f}"),
    ]
    width = max(len(k) for k, _ in rows) + 1
    for key, value in rows:
        print(f"{key + ':':<{width}} {value}")
    return EXIT_OK


# --------------------------------------------------------------------------- train
TRAIN_EPILOG = """\
examples:
  blockcodec train predictor --minutes 45 --output blockcnn.npz
  blockcodec train predictor --resume              continue runs/predictor/checkpoint.pt
  torchrun --nproc_per_node 2 -m blockcodec train predictor --steps 20000
                                                   data-parallel (DDP, gloo)
  blockcodec train restoration --arch wdsr --minutes 60
  blockcodec train int8 --weights runs/restoration-wdsr/wdsr.npz
                                                   a WDSR as the decoder's integer program

Training reads ../shared/data/train only (every 10th image held out for
validation), logs to WORKDIR/log.jsonl and checkpoints every 5 minutes.
"""


def add_train_parser(sub) -> None:
    p = sub.add_parser(
        "train", help="train a shipped network (the BlockCNN predictor, restoration networks)",
        description="Train one of blockcodec's networks.", epilog=TRAIN_EPILOG, formatter_class=_FORMATTER)
    what = p.add_subparsers(dest="model", metavar="MODEL", title="models", required=True)
    # (name, help, description, module under train/ with add_arguments and run).
    # The argument modules are free of torch: it loads only when a command runs.
    trainers = [
        ("predictor", "the BlockCNN block predictor, closed loop on the codec's reconstructions",
         "Closed-loop training of the BlockCNN predictor (luma and chroma networks), float with batch "
         "norm, then quantization-aware; exports integer weights.", "config", "predictor"),
        ("restoration", "a restoration network (post-filter and JPEG artifact remover)",
         "Train one of the five restoration designs on luminance patches decoded by JPEG and by "
         "blockcodec, conditioned on the quantizer; exports plain .npz weights.",
         "restoration_config", "restoration"),
        ("int8", "quantize a WDSR post-filter into the decoder's integer program (no training)",
         "Measure the float network's activations on blockcodec decodes of training images and write "
         "the integer program (.npz) the decoder runs in its C runtime.", "postfilter_export",
         "postfilter_export"),
    ]
    import importlib
    for name, help_text, description, arguments, trainer in trainers:
        sp = what.add_parser(name, help=help_text, description=description, formatter_class=_FORMATTER)
        importlib.import_module(f".train.{arguments}", __package__).add_arguments(sp)
        sp.set_defaults(func=cmd_train, trainer=trainer)


def cmd_train(args) -> int:
    """Every trainer: ``args.trainer`` names the module, whose ``run(args)``
    returns the file it wrote."""
    import importlib
    module = importlib.import_module(f".train.{args.trainer}", __package__)
    try:
        out = module.run(args)
    except (FileNotFoundError, ValueError) as exc:
        raise CliError(str(exc)) from None
    print(f"wrote {out}", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- restore
# The shipped network with the best measured LIVE1 gain (kodak_eval/results/artifacts.md).
RESTORE_DEFAULT = "wdsr"

RESTORE_EPILOG = """\
The JPEG's own quantization tables set the network's conditioning, so one
model serves every JPEG quality.  Colour JPEGs are restored plane by plane
in YCbCr; grayscale ones stay grayscale.

Shipped models (--model): blockcnn-ar, arcnn, hourglass, reshuffle, wdsr; the
default is the one measured best on LIVE1 (kodak_eval/results/artifacts.md).

examples:
  blockcodec restore photo.jpg -o photo.png
  blockcodec restore photo.jpg -o photo.png --model arcnn
  blockcodec restore photo.jpg -o photo.png --weights runs/restoration-wdsr/wdsr.npz
"""


def add_restore_parser(sub) -> None:
    p = sub.add_parser(
        "restore", help="remove JPEG artifacts (a restoration network)",
        description="Remove blocking and ringing from a JPEG file with a restoration network.",
        epilog=RESTORE_EPILOG, formatter_class=_FORMATTER)
    p.add_argument("input", metavar="IN", help="input JPEG file, or '-' for standard input")
    p.add_argument("-o", "--output", metavar="OUT", required=True,
                   help="output image (format from the extension; PNG keeps it lossless)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--model", choices=list(postfilter.NAMES[1:]), default=None, metavar="NAME",
                       help=f"shipped network, one of: {', '.join(postfilter.NAMES[1:])} "
                            f"(default {RESTORE_DEFAULT})")
    which.add_argument("--weights", metavar="NPZ", default=None,
                       help="restoration weights from 'blockcodec train restoration' instead of a shipped model")
    p.add_argument("--ensemble", action="store_true",
                   help="average the network over the 8 rotations and flips of the image "
                        "(self-ensemble: a little better, 8x slower)")
    p.add_argument("--strip", action="store_true",
                   help="do not copy the JPEG's ICC profile, EXIF and XMP to OUT (copied by default)")
    _add_max_pixels_argument(p, "JPEGs")
    p.add_argument("-f", "--force", action="store_true", help="overwrite OUT if it exists")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print a summary (size, colour, model, time) to standard error")
    p.set_defaults(func=cmd_restore)


def cmd_restore(args) -> int:
    from .restoration.inference import frozen
    from .restoration.jpeg import restore_jpeg
    from .restoration.weights import load_weights

    check_input(args.input)
    if args.weights is not None:
        check_input(args.weights)
    check_output(args.output, inputs=(args.input,) + ((args.weights,) if args.weights else ()), force=args.force)
    fmt = _pillow_format_for(args.output)
    data = read_input_bytes(args.input)
    if args.weights is None:
        net = postfilter.network(args.model or RESTORE_DEFAULT)
    else:
        try:
            net = frozen(load_weights(args.weights)[0])
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise CliError(f"cannot load restoration weights {args.weights!r}: {_one_line(exc)}") from None
    from PIL import Image
    with _pillow_pixel_limit(Image, args.max_pixels), warnings.catch_warnings():   # both of Pillow's reads
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)   # restore_jpeg refuses those
        started = time.perf_counter()
        image = restore_jpeg(data, net, ensemble=args.ensemble, max_pixels=args.max_pixels)
        seconds = time.perf_counter() - started
        carried = Metadata() if args.strip else _jpeg_metadata(data, _display(args.input))
    write_output(args.output, image_file_bytes(image, fmt, args.output, carried), force=args.force)
    if args.verbose:
        model = args.weights or args.model or RESTORE_DEFAULT
        print(f"{PROG}: {_name(args.input)}: {image.shape[1]}x{image.shape[0]} "
              f"{'gray' if image.ndim == 2 else 'colour'} JPEG, {len(data)} bytes, model {model}"
              f"{' (x8 ensemble)' if args.ensemble else ''}, {seconds:.2f} s -> {fmt}", file=sys.stderr)
    return EXIT_OK


# --------------------------------------------------------------------------- compare
COMPARE_EPILOG = """\
The whole image is coded by blockcodec at quality Q (and decoded with its
post-filter, as a user would see it), and by JPEG (libjpeg-turbo, 4:2:0) at
the quality whose file is nearest in size.  The sheet shows one crop of the
original, blockcodec and JPEG side by side, enlarged with nearest-neighbour
pixels, each labelled with its file size (bytes, bits per pixel) and its PSNR
over the whole image.

examples:
  blockcodec compare photo.png -q 30                 writes photo-compare.png
  blockcodec compare photo.png -q 50 -o sheet.png --crop 200x150+400+300 --zoom 3
"""


def _zoom(text: str) -> int:
    return _int_in(text, "zoom", 1, 8)


def _crop(text: str) -> str:
    from .compare import parse_crop

    try:
        parse_crop(text, bitstream.MAX_DIMENSION, bitstream.MAX_DIMENSION)   # the syntax; the image clips it later
    except BlockcodecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_compare_parser(sub) -> None:
    p = sub.add_parser(
        "compare", help="a side-by-side picture: original, blockcodec and JPEG of the same size",
        description="Write a PNG comparing a crop of the original with blockcodec and with a JPEG "
                    "of the same file size.",
        epilog=COMPARE_EPILOG, formatter_class=_FORMATTER)
    p.add_argument("input", metavar="IN", help="input image file")
    p.add_argument("-q", "--quality", type=_quality, required=True, metavar="Q", help="blockcodec quality 1..100")
    p.add_argument("-o", "--output", metavar="OUT", default=None,
                   help="output PNG (default: IN's name with -compare.png, in the current directory)")
    p.add_argument("--crop", type=_crop, metavar="WxH[+X+Y]", default=None,
                   help="the region to show, in original pixels (default: a centred 256x256; "
                        "WxH alone is centred)")
    p.add_argument("--zoom", type=_zoom, default=2, metavar="N",
                   help="enlarge the crop N times, nearest neighbour (default 2)")
    p.add_argument("--subsampling", choices=["420", "444"], default="420", help="blockcodec's chroma subsampling")
    p.add_argument("-f", "--force", action="store_true", help="overwrite OUT if it exists")
    p.set_defaults(func=cmd_compare)


def cmd_compare(args) -> int:
    from .compare import compare

    output = args.output or os.path.splitext(os.path.basename(args.input))[0] + "-compare.png"
    check_input(args.input)
    check_output(output, inputs=(args.input,), force=args.force)
    image = load_image(args.input)
    sheet, _ = compare(image, args.quality, crop=args.crop, zoom=args.zoom, subsampling=args.subsampling)
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    write_output(output, buf.getvalue(), force=args.force)
    return EXIT_OK


# --------------------------------------------------------------------------- top level
SUBCOMMANDS = [add_encode_parser, add_decode_parser, add_info_parser, add_restore_parser,
               add_compare_parser, add_train_parser]

MAIN_EPILOG = """\
examples:
  blockcodec encode photo.png -o photo.bkc -q 80     compress at quality 80
  blockcodec encode photo.png -o photo.bkc --target-bpp 0.5
  blockcodec decode photo.bkc -o photo.png           decompress to PNG (runs the post-filter)
  blockcodec encode *.png -d bkc/ --jobs 2           many files, two at a time
  blockcodec restore photo.jpg -o clean.png          remove JPEG artifacts
  blockcodec compare photo.png -q 30                 blockcodec beside JPEG of the same size
  blockcodec info photo.bkc                          show the stream's header
  blockcodec train predictor --minutes 45            train the BlockCNN predictor
  blockcodec encode --help                           options of one command

Files are written atomically; an existing output is only replaced with
-f/--force, and the input is never overwritten.

exit status: 0 success, 1 bad input or data (unreadable file, not an image,
corrupt stream, I/O error), 2 invalid command line, 130 interrupted.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG, formatter_class=_FORMATTER, epilog=MAIN_EPILOG,
        description="blockcodec: a learned block-predictive image codec "
                    "(8x8 block prediction, integer DCT residuals, range coding).")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def _quiet_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the exit flush is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (never raises, bar SystemExit
    from nowhere)."""
    try:
        with tempfiles.handle_signals():
            try:
                args = build_parser().parse_args(argv)
            except SystemExit as exc:   # --help, --version
                return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)
            status = args.func(args)
            if sys.stdout is not None:
                sys.stdout.flush()      # here, not at exit, where a broken pipe would go unreported
            return status
    except KeyboardInterrupt:
        return EXIT_INTERRUPT
    except tempfiles.Terminated as exc:
        return exc.status
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_PIPE
    except CliError as exc:
        error(exc)
        return exc.status
    except BlockcodecError as exc:
        error(exc)
        return EXIT_DATA
    except MemoryError:
        error("out of memory")
        return EXIT_DATA
    except OSError as exc:
        name = f" {exc.filename!r}" if getattr(exc, "filename", None) else ""
        error(f"I/O error{name}: {_describe_os_error(exc)}")
        return EXIT_DATA
    except Exception as exc:
        if os.environ.get("BLOCKCODEC_DEBUG"):
            raise
        error(f"internal error ({type(exc).__name__}: {exc}); "
              "set BLOCKCODEC_DEBUG=1 for a traceback and please report it")
        return EXIT_DATA


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
