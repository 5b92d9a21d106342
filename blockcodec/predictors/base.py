"""The predictor interface the coding engine calls once per wavefront."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

CONTEXT = 24   # contexts are 3x3 blocks of 8x8 pixels
FILL = 128     # value of masked (not yet decoded) and out-of-image context pixels

# Order of the availability flags in `avail`.
TOP_LEFT, TOP, TOP_RIGHT, LEFT = range(4)


@dataclass(frozen=True)
class PlaneInfo:
    """What a predictor may condition on besides the pixels: which plane it
    predicts and the plane's quantizer (one model serves every quality)."""

    index: int            # 0 = Y (or gray), 1 = Cb, 2 = Cr
    chroma: bool
    quality: int
    qtable: np.ndarray    # uint16[64], natural order


class Predictor(ABC):
    """Predicts 8x8 blocks from their causal neighbourhood.

    ``predict`` receives a batch of blocks that do not depend on each other (one
    wavefront): ``contexts`` uint8[n, 24, 24] holds the decoded top-left, top,
    top-right and left blocks around each block, everything else set to FILL;
    ``avail`` uint8[n, 4] says which of those four neighbours exist; ``guides``
    (only for predictors whose ``guides`` property is true) holds co-located
    windows of previously decoded planes.  It returns
    uint8[n, 8, 8].  The result must be a deterministic function of the inputs,
    independent of batch size, thread count and machine: the decoder calls it
    with the same inputs and must get the same bits.
    """

    #: Registry name; also the id written to the bitstream via the registry.
    name: str = ""

    @abstractmethod
    def predict(self, contexts: np.ndarray, avail: np.ndarray, plane: PlaneInfo,
                guides: np.ndarray | None = None) -> np.ndarray:
        ...

    def predict_many(self, parts: list[tuple]) -> list[np.ndarray]:
        """``predict`` for several batches at once, each a tuple (contexts,
        avail, plane, guides), possibly of different planes.  The engine uses
        it to cover every plane of a group in one call per step; predictors
        with a high per-call cost run the batches together."""
        return [self.predict(*part) for part in parts]

    def weights_hash(self) -> bytes:
        """4-byte hash of the predictor's parameters (zeros for classical ones);
        the bitstream records it so a decoder with other weights refuses."""
        return bytes(4)

    @property
    def guides(self) -> bool:
        """True for predictors that read co-located, already decoded planes
        (cross-component prediction): the engine then passes ``guides``
        uint8[n, g, 24, 24], the unmasked 3x3-block windows around each block
        of the decoded luma (at this plane's resolution) and, for Cr, of Cb."""
        return False

    @property
    def causal(self) -> bool:
        """False for predictors that ignore their contexts: the engine may then
        code a whole plane as one batch."""
        return True


def by_plane_kind(parts: list[tuple], run) -> list[np.ndarray]:
    """``predict_many`` for predictors with separate luma and chroma
    machinery: ``run(chroma, sub_parts)`` is called once for the luma parts
    and once for the chroma parts (when there are any), and the predictions
    come back in the order of ``parts``."""
    out: list = [None] * len(parts)
    for chroma in (False, True):
        mine = [i for i, part in enumerate(parts) if part[2].chroma == chroma]
        if mine:
            for i, pred in zip(mine, run(chroma, [parts[i] for i in mine])):
                out[i] = pred
    return out
