"""The codec's post-filter: a restoration network run on the decoded planes.

The post-filter sits outside the coding loop: the decoder reconstructs the
planes bit for bit as the encoder did, then (optionally) filters them before
colour conversion.  Nothing it computes feeds back into prediction, so its
floating-point convolutions cannot make the decoder drift; its output may
differ by an LSB between machines, the in-loop reconstruction never.

The encoder records which post-filter the stream is meant for (an id and the
first 4 bytes of the sha256 of the shipped weights file); the decoder applies
that one unless the caller picks another or ``"none"``.  Ids are part of the
bitstream and never reused.

Each plane is filtered with the quality feature of its own quantization table
(luma table for Y, chroma table for Cb and Cr): the networks were trained on
luma, and the table tells them how coarse the plane's quantizer was.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np

from . import quantization, zoo
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
    """The network the decoder runs: ``network(name)``, except where an int8
    calibration is shipped for it (WDSR, ``restoration/int8.py``, about four
    times faster) and this torch build runs int8 convolutions."""
    net = network(name)                 # its file verified against the zoo's sha256
    if f"{name}-int8" not in zoo.MODELS:
        return net
    from .restoration.int8 import Calibration, Int8WDSR
    cal = Calibration.from_json(zoo.path(f"{name}-int8").read_text())
    if cal.weights_sha256 != zoo.MODELS[name].sha256:
        raise BlockcodecError(f"the int8 calibration of {name!r} was measured for other weights")
    try:
        return Int8WDSR(net.eager, cal)
    except (RuntimeError, NotImplementedError):   # no quantized CPU kernels in this torch build
        return net


def apply(name: str, planes: list[np.ndarray], quality: int, exact: bool = False) -> list[np.ndarray]:
    """Filter decoded planes (Y, or Y Cb Cr) coded at ``quality``; 'none'
    returns them unchanged.  ``exact``: the float network even where the
    decoder would run its int8 form."""
    if check_name(name) == "none":
        return planes
    from .restoration import quality_feature
    from .restoration.tiling import restore

    net = network(name) if exact else decoder_network(name)
    return [restore(net, p, quality_feature(quantization.qtable(quality, i > 0)), TILE, net.margin)
            for i, p in enumerate(planes)]
