"""The order in which blocks are visited: shared by the coding loop
(engine.py) and the entropy coder (entropy.py), neither of which needs the
other for it.

Block (r, c) depends on its top-left, top, top-right and left neighbours
only, so all blocks of one wavefront t = 2r + c are independent once the
wavefronts before t are done.  Only numpy is imported here.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=64)
def wavefronts(n_rows: int, n_cols: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """(rows, cols) int32 arrays of the blocks of each wavefront t = 2r + c."""
    fronts = []
    for t in range(2 * (n_rows - 1) + n_cols):
        r = np.arange(max(0, (t - n_cols + 2) // 2), min(n_rows - 1, t // 2) + 1, dtype=np.int32)
        if len(r):  # a one-column plane has no blocks on odd wavefronts
            fronts.append((r, (t - 2 * r).astype(np.int32)))
    return tuple(fronts)


@lru_cache(maxsize=64)
def all_blocks(n_rows: int, n_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) int32 arrays of every block in raster order: the one batch
    of a predictor that reads no context."""
    r, c = np.divmod(np.arange(n_rows * n_cols, dtype=np.int32), np.int32(n_cols))
    return r.astype(np.int32), c.astype(np.int32)
