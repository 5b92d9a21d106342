"""Classical predictors: no parameters, integer arithmetic only."""
from __future__ import annotations

import numpy as np

from .. import _cext
from .base import FILL, LEFT, TOP, TOP_RIGHT, Predictor


class NonePredictor(Predictor):
    """Predicts mid-grey: plain DCT coding of level-shifted samples, as JPEG does."""

    name = "none"

    def predict(self, contexts, avail, plane, guides=None):
        return np.full((len(contexts), 8, 8), FILL, dtype=np.uint8)

    @property
    def causal(self) -> bool:
        return False


def boundary(contexts: np.ndarray, avail: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference samples of each block as int32: the 16 pixels above (top
    then top-right block) and the 8 to the left, with missing ones substituted
    from the nearest available ones (as HEVC does), FILL when there are none."""
    top = contexts[:, 7, 8:24].astype(np.int32)
    left = contexts[:, 8:16, 7].astype(np.int32)
    has_top = avail[:, TOP].astype(bool)
    has_left = avail[:, LEFT].astype(bool)
    has_tr = avail[:, TOP_RIGHT].astype(bool)
    # Missing top-right: repeat the last top pixel.
    m = has_top & ~has_tr
    top[m, 8:] = top[m, 7:8]
    # Missing top: repeat the first left pixel; missing left: the first top pixel.
    m = ~has_top & has_left
    top[m] = left[m, 0:1]
    m = has_top & ~has_left
    left[m] = top[m, 0:1]
    m = ~has_top & ~has_left
    top[m] = FILL
    left[m] = FILL
    return top, left


class DCPredictor(Predictor):
    """Mean of the 8 pixels above and the 8 to the left."""

    name = "dc"

    def predict(self, contexts, avail, plane, guides=None):
        top, left = boundary(contexts, avail)
        dc = (top[:, :8].sum(1) + left.sum(1) + 8) >> 4
        return np.broadcast_to(dc[:, None, None], (len(dc), 8, 8)).astype(np.uint8)


_X = np.arange(8, dtype=np.int32)


class PlanarPredictor(Predictor):
    """HEVC-style planar prediction: the average of a horizontal interpolation
    between the left pixel and the top-right pixel, and a vertical one between
    the top pixel and the bottom-left pixel (taken as the last left pixel,
    since the block below-left is not decoded yet).  Smooth surfaces and
    gradients, the bulk of natural images, are predicted well."""

    name = "planar"

    def predict(self, contexts, avail, plane, guides=None):
        contexts = np.ascontiguousarray(contexts, dtype=np.uint8)
        out = np.empty((len(contexts), 8, 8), np.uint8)
        _cext.planar_predict(contexts, np.ascontiguousarray(avail, dtype=np.uint8), FILL, out)
        return out


def planar_reference(contexts: np.ndarray, avail: np.ndarray) -> np.ndarray:
    """The planar rule written out in numpy (the C core runs it in the codec)."""
    top, left = boundary(contexts, avail)
    tr = top[:, 8][:, None, None]
    bl = left[:, 7][:, None, None]
    x = _X[None, None, :]
    y = _X[None, :, None]
    horiz = (7 - x) * left[:, :, None] + (x + 1) * tr
    vert = (7 - y) * top[:, None, :8] + (y + 1) * bl
    return ((horiz + vert + 8) >> 4).astype(np.uint8)
