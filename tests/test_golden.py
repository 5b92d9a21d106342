"""Golden test vectors: committed streams whose decoded pixels are pinned by
sha256.  They must decode identically forever, on every machine; a change to
any normative part (tables, transform, predictors, colour, the integer
post-filter's arithmetic) breaks them and needs a new bitstream VERSION, not a
regenerated vector.  The ``_wdsr`` vectors pin the default post-filter's
output too: it is exact (docs/FORMAT.md section 6.2).

Regenerate only together with a version bump:  python tests/test_golden.py --regenerate
A new vector (a new predictor id) is added with --add, which writes only the
vectors that have no file yet.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import blockcodec

DATA = Path(__file__).parent / "data"
VECTORS = {
    # name: (image kind, quality, predictor, subsampling, post-filter)
    "golden_rgb420_q50_planar": ("rgb", 50, "planar", "420", "none"),
    "golden_rgb444_q80_dc": ("rgb", 80, "dc", "444", "none"),
    "golden_gray_q30_none": ("gray", 30, "none", "420", "none"),
    # BlockCNN: integer network inference, cross-component guides (4:2:0 and 4:4:4).
    "golden_rgb420_q40_blockcnn": ("rgb", 40, "blockcnn", "420", "none"),
    "golden_rgb444_q70_blockcnn": ("rgb", 70, "blockcnn", "444", "none"),
    # The default codec as users get it: BlockCNN and the integer WDSR post-filter.
    "golden_rgb420_q20_blockcnn_wdsr": ("rgb", 20, "blockcnn", "420", "wdsr"),
    "golden_gray_q60_blockcnn_wdsr": ("gray", 60, "blockcnn", "420", "wdsr"),
    # The default since 0.2 (id 4, same network trained closed loop).
    "golden_rgb420_q40_blockcnn-cl": ("rgb", 40, "blockcnn-cl", "420", "none"),
    "golden_rgb420_q20_blockcnn-cl_wdsr": ("rgb", 20, "blockcnn-cl", "420", "wdsr"),
}


def golden_image(kind: str) -> np.ndarray:
    """A 53x37 test image built with integer arithmetic only (edges, ramps, texture)."""
    y, x = np.mgrid[0:37, 0:53].astype(np.int64)
    lcg = (x * 1103515245 + y * 12345 + 7) % 2147483648 // 65536 % 41
    r = (x * 4 + y * 2 + lcg) % 256
    g = np.where((x // 9 + y // 7) % 2 == 0, 40, 200) + lcg
    b = (255 - 3 * y + (x * x) // 16) % 256
    rgb = np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)
    return rgb if kind == "rgb" else rgb[:, :, 1].copy()


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_golden_vector_decodes_identically(name):
    data = (DATA / f"{name}.bkc").read_bytes()
    expected = json.loads((DATA / "golden.json").read_text())[name]
    out = blockcodec.decode(data)
    assert list(out.shape) == expected["shape"]
    assert _sha(out) == expected["sha256"]


@pytest.mark.parametrize("name", sorted(n for n in VECTORS if VECTORS[n][4] != "none"))
def test_post_filtered_vectors_decode_identically_with_the_plain_kernels(name, monkeypatch):
    monkeypatch.setenv("BLOCKCODEC_SIMD", "none")
    data = (DATA / f"{name}.bkc").read_bytes()
    expected = json.loads((DATA / "golden.json").read_text())[name]
    assert _sha(blockcodec.decode(data)) == expected["sha256"]


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_encoder_reproduces_golden_bytes(name):
    # The encoder is integer-only too, so it reproduces the committed bytes.
    kind, quality, predictor, sub, pf = VECTORS[name]
    data = blockcodec.encode(golden_image(kind), quality, predictor=predictor, subsampling=sub,
                             postfilter=pf)
    assert data == (DATA / f"{name}.bkc").read_bytes()


def regenerate(only_new: bool = False) -> None:
    DATA.mkdir(exist_ok=True)
    meta = json.loads((DATA / "golden.json").read_text()) if only_new else {}
    for name, (kind, quality, predictor, sub, pf) in VECTORS.items():
        if only_new and (DATA / f"{name}.bkc").exists():
            continue
        data = blockcodec.encode(golden_image(kind), quality, predictor=predictor, subsampling=sub,
                                 postfilter=pf)
        (DATA / f"{name}.bkc").write_bytes(data)
        out = blockcodec.decode(data)
        meta[name] = {"shape": list(out.shape), "sha256": _sha(out), "bytes": len(data)}
    (DATA / "golden.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta, indent=2))


if __name__ == "__main__" and ("--regenerate" in sys.argv or "--add" in sys.argv):
    regenerate(only_new="--add" in sys.argv)
