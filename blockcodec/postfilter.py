"""The codec's post-filter: a restoration network run on the decoded planes.

The post-filter sits outside the coding loop: the decoder reconstructs the
planes bit for bit as the encoder did, then (optionally) filters them before
colour conversion.  The default post-filter (WDSR) runs as an integer
program in the C core (``convnet8``), so the filtered image too is a
function of the bytes alone, on every machine, kernel and thread count.
The other post-filters run their float networks in torch: their output may
differ by an LSB between machines (never the in-loop reconstruction).

The encoder records which post-filter the stream is meant for (an id and the
first 4 bytes of the sha256 of the shipped weights file); the decoder applies
that one unless the caller picks another or ``"none"``.  Ids are part of the
bitstream and never reused.

Each plane is filtered with the quality feature of its own quantization table
(luma table for Y, chroma table for Cb and Cr): the networks were trained on
luma, and the table tells them how coarse the plane's quantizer was.  The
integer programs read it as a byte computed in integers
(``convnet8.quality_byte``).
"""
from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np

from . import convnet8, engine, quantization, zoo
from .errors import BlockcodecError

# name -> bitstream id.  The weights are the zoo's card of the same name.
IDS: dict[str, int] = {
    "none": 0,
    "blockcnn-ar": 1,
    "arcnn": 2,
    "hourglass": 3,
    "reshuffle": 4,
    "wdsr": 5,
}
NAMES = tuple(IDS)
# The best measured trade-off of Kodak BD-rate gain and decode time
# (kodak_eval/results/postfilter.md).
DEFAULT = "wdsr"

# Tiles of 256 pixels, each run with the network's own margin of context
# (``RestorationNet.margin``): memory stays bounded (tens of MB of
# activations, which then stay in the last-level cache) and, measured for
# WDSR on a Kodak plane, 256 is faster than 192 or 384.
TILE = 256


def check_name(name: str) -> str:
    if not isinstance(name, str) or name not in IDS:   # a list or dict is not hashable
        raise BlockcodecError(f"unknown post-filter {name!r} (available: {', '.join(NAMES)})")
    return name


def id_of(name: str) -> int:
    return IDS[check_name(name)]


def name_of(fid: int) -> str:
    for name, i in IDS.items():
        if i == fid:
            return name
    raise BlockcodecError(f"stream asks for post-filter id {fid}, which this version of blockcodec does not "
                          f"know; decode with post-filter 'none' or one of {', '.join(NAMES[1:])}")


@lru_cache(maxsize=None)
def weights_hash(name: str) -> bytes:
    """The 4-byte hash the bitstream records (zero bytes for 'none')."""
    if check_name(name) == "none":
        return bytes(4)
    return hashlib.sha256(zoo.path(name).read_bytes()).digest()[:4]


@lru_cache(maxsize=None)
def network(name: str):
    """The shipped network, loaded and frozen for inference once per process."""
    from .restoration.inference import frozen       # imports torch: only when a filter runs
    from .restoration.weights import load_weights
    if check_name(name) == "none":
        raise BlockcodecError("post-filter 'none' has no network")
    net, _ = load_weights(zoo.path(name))
    return frozen(net)


@lru_cache(maxsize=None)
def decoder_network(name: str):
    """What the decoder runs for ``name``: its integer program where one is
    shipped (``{name}-int8`` in the zoo; WDSR, the default), run by the C
    core without torch and exact on every machine; otherwise the float
    network (torch)."""
    check_name(name)
    if f"{name}-int8" not in zoo.MODELS:
        return network(name)
    program = convnet8.load(zoo.path(f"{name}-int8"))      # its file verified against the zoo's sha256
    if program.meta.get("source_sha256") != zoo.MODELS[name].sha256:
        raise BlockcodecError(f"the integer program of {name!r} was made from other weights")
    return program


def apply(name: str, planes: list[np.ndarray], quality: int, exact: bool = False,
          threads: int | None = None) -> list[np.ndarray]:
    """Filter decoded planes (Y, or Y Cb Cr) coded at ``quality``; 'none'
    returns them unchanged.  ``exact``: the float network even where the
    decoder runs an integer program (for measuring what quantization costs).
    ``threads``: for the integer program (default ``engine.threads()``, the
    codec's one thread setting)."""
    if check_name(name) == "none":
        return planes
    tables = [quantization.qtable(quality, i > 0) for i in range(len(planes))]
    net = network(name) if exact else decoder_network(name)
    if isinstance(net, convnet8.Program):
        threads = engine.threads() if threads is None else threads
        return [net.run(p, bytes([convnet8.quality_byte(t)]) + bytes(net.input_channels - 2), threads=threads)
                for p, t in zip(planes, tables)]
    from .restoration import quality_feature                   # the float networks: torch
    from .restoration.tiling import restore
    return [restore(net, p, quality_feature(t), TILE, net.margin) for p, t in zip(planes, tables)]
