"""Block predictors and their registry.

The id of each predictor is written to the bitstream; ids are never reused.
"""
from __future__ import annotations

from typing import Callable

from ..errors import BlockcodecError
from .base import CONTEXT, FILL, PlaneInfo, Predictor
from .classical import DCPredictor, NonePredictor, PlanarPredictor


def _shipped_blockcnn(name: str) -> Callable[[], Predictor]:
    def load() -> Predictor:
        from .. import zoo
        from .blockcnn import BlockCNNPredictor   # loads its weights: only when asked for
        return BlockCNNPredictor(zoo.path(name), name)
    return load


# name -> (bitstream id, factory)
REGISTRY: dict[str, tuple[int, Callable[[], Predictor]]] = {
    "none": (0, NonePredictor),
    "dc": (1, DCPredictor),
    "planar": (2, PlanarPredictor),
    "blockcnn": (3, _shipped_blockcnn("blockcnn")),      # weights: blockcodec/zoo.py
    "blockcnn-cl": (4, _shipped_blockcnn("blockcnn-cl")),   # trained on its own codec's reconstructions
}
DEFAULT = "blockcnn-cl"

_instances: dict[str, Predictor] = {}


def get(name: str) -> Predictor:
    if not isinstance(name, str) or name not in REGISTRY:   # a list or dict is not hashable
        raise BlockcodecError(f"unknown predictor {name!r} (available: {', '.join(REGISTRY)})")
    if name not in _instances:
        _instances[name] = REGISTRY[name][1]()
    return _instances[name]


def id_of(name: str) -> int:
    return REGISTRY[name][0]


def name_of(pid: int) -> str:
    for name, (i, _) in REGISTRY.items():
        if i == pid:
            return name
    raise BlockcodecError(f"stream uses predictor id {pid}, which this version of blockcodec does not know")


__all__ = ["CONTEXT", "FILL", "PlaneInfo", "Predictor", "REGISTRY", "DEFAULT", "get", "id_of", "name_of"]
