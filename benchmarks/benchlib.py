"""Helpers shared by bench_codec.py and mem_probe.py.

Only the standard library is imported at module level: bench_codec.py runs its
memory probes before it imports numpy, Pillow or blockcodec, so that the
probes (child processes) do not inherit a large peak RSS from it (Linux carries
the parent's ru_maxrss high-water mark over into a child at exec time).
"""
from __future__ import annotations

import os
import re

SMALL = "small"
LARGE = "large"


def list_kodak(kodak_dir: str, n: int | None) -> list[str]:
    if not os.path.isdir(kodak_dir):
        raise SystemExit(f"Kodak folder {kodak_dir!r} not found (give --kodak-dir)")
    names = sorted(f for f in os.listdir(kodak_dir) if re.fullmatch(r"kodim\d+\.png", f))
    if not names:
        raise SystemExit(f"no kodim*.png in {kodak_dir!r} (give --kodak-dir)")
    if n is not None:
        names = names[:n]
    return [os.path.join(kodak_dir, f) for f in names]


def make_codec(spec: str, quality: int):
    """A blockcodec.Codec from a benchmark setting: a predictor name, with
    '+FILTER' for the post-filter the stream records (the decoder runs it;
    '+default' is the shipped default).  A bare name means no post-filter,
    so that earlier settings keep measuring what they measured."""
    import blockcodec

    pred, _, filt = spec.partition("+")
    if filt == "default":
        filt = blockcodec.postfilters.DEFAULT
    return blockcodec.Codec(quality=quality, predictor=pred, postfilter=filt or "none")


def load_png(path: str):
    """Read an image the way the blockcodec CLI does: Pillow open + load, then
    blockcodec.images.as_image_array (uint8 H x W x 3, C-contiguous)."""
    from PIL import Image

    from blockcodec.images import as_image_array

    with Image.open(path) as im:
        im.load()
        return as_image_array(im)


def _landscape(a):
    import numpy as np

    return np.ascontiguousarray(np.rot90(a)) if a.shape[0] > a.shape[1] else a


def tile_members(paths: list[str], k: int) -> list[str]:
    """The four images of large image k in 'tile' mode: k, k+1, k+2, k+3 (cyclic).

    Over k = 0..n-1 every small image is used exactly four times, so the mean
    cost of the large set is directly comparable with 4x the mean of the small
    set (same content per pixel)."""
    n = len(paths)
    return [paths[(k + j) % n] for j in range(4)]


def large_members(paths: list[str], k: int, mode: str) -> list[str]:
    return tile_members(paths, k) if mode == "tile" else [paths[k]]


def make_large(member_paths: list[str], mode: str):
    """A 2x-by-2x image (1536x1024 from 768x512 Kodak images).

    tile:     2x2 mosaic of four Kodak images; portrait images (512x768) are
              rotated 90 degrees to landscape first.
    upsample: one Kodak image resized 2x with Pillow LANCZOS (smoother content,
              so it codes to fewer bits than a real 1536x1024 photo).
    """
    import numpy as np
    from PIL import Image

    if mode == "tile":
        out = None
        for j, p in enumerate(member_paths):   # one tile at a time: small transient peak
            a = _landscape(load_png(p))
            h, w = a.shape[:2]
            if out is None:
                out = np.empty((2 * h, 2 * w, 3), np.uint8)
            if out.shape != (2 * h, 2 * w, 3):
                raise ValueError(f"{p}: {w}x{h} does not tile with the first image")
            r, c = divmod(j, 2)
            out[r * h:(r + 1) * h, c * w:(c + 1) * w] = a
            del a
        return out
    if mode == "upsample":
        (p,) = member_paths
        with Image.open(p) as im:
            im = im.convert("RGB")
            big = im.resize((im.width * 2, im.height * 2), Image.Resampling.LANCZOS)
        return np.ascontiguousarray(np.asarray(big))
    raise ValueError(f"unknown large mode {mode!r}")


def large_name(member_paths: list[str], mode: str) -> str:
    stems = [os.path.splitext(os.path.basename(p))[0] for p in member_paths]
    return f"{mode}(" + "+".join(stems) + ")"


def proc_status_kib(field: str) -> int | None:
    """A VmRSS / VmHWM style field of /proc/self/status, in KiB (None if absent)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


TRAIN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data",
                         "train")
COMPOSITE_SET = "sunhays80_half"
COMPOSITE_TILE = (1000, 667)      # each training photo enlarged about 2x


def make_composite(width: int, height: int, train_dir: str = TRAIN_DIR, n_images: int = 36):
    """A natural-looking photo of any size: the first ``n_images`` Sun-Hays
    training photos, each centre-cropped to 3:2 and enlarged (LANCZOS) to
    COMPOSITE_TILE, tiled in reading order, 6 photos a row (cyclically) and cropped to
    ``width`` x ``height`` from the top left.  The content's scale does not
    depend on the size, so smaller sizes are crops of larger ones: bits and
    time per pixel compare across sizes.  (A 6000x4000 one is the README's
    24-MP test photo.)  Nothing is written to disk."""
    import numpy as np
    from PIL import Image

    folder = os.path.join(train_dir, COMPOSITE_SET)
    names = sorted(f for f in os.listdir(folder) if f.lower().endswith(".png"))[:n_images]
    if not names:
        raise SystemExit(f"no training photos in {folder!r}")
    tw, th = COMPOSITE_TILE
    out = np.empty((height, width, 3), np.uint8)
    for r, top in enumerate(range(0, height, th)):
        for c, left in enumerate(range(0, width, tw)):
            with Image.open(os.path.join(folder, names[(r * 6 + c) % len(names)])) as im:
                im = im.convert("RGB")
                w, h = im.size
                cw, ch = (w, w * 2 // 3) if w * 2 // 3 <= h else (h * 3 // 2, h)
                box = ((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch)
                tile = np.asarray(im.resize((tw, th), Image.Resampling.LANCZOS, box=box))
            bh, bw = min(th, height - top), min(tw, width - left)
            out[top:top + bh, left:left + bw] = tile[:bh, :bw]
    return out
