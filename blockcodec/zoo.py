"""The model zoo: every trained weights file shipped in the package.

One entry per file, with the sha256 of its bytes (checked on load, so a
modified file is refused rather than silently decoding differently), the
command that trained it and the data it saw.  The bitstream records the
short weights hash of the model it was coded with.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .errors import BlockcodecError


@dataclass(frozen=True)
class ModelCard:
    name: str
    kind: str            # "predictor" or "postfilter"
    file: str            # inside blockcodec/data/
    sha256: str          # of the file's bytes
    command: str         # how it was trained
    data: str            # what it was trained on
    notes: str = ""


MODELS: dict[str, ModelCard] = {
    card.name: card for card in [
        ModelCard(
            name="blockcnn",
            kind="predictor",
            file="blockcnn.npz",
            sha256="2d605a445a5273088e705f673f0a6e88c31a1d4a8d6bba9894b85ad3ed70c28a",
            command="blockcodec train predictor --minutes 40 --workdir runs/predictor "
                    "--output runs/predictor/blockcnn.npz",
            data="../shared/data/train (671 images, 92.7 MP; every 10th image held out for "
                 "validation), each coded by blockcodec-planar at 3 random qualities in 5..95",
            notes="luma: width 24, depth 1; chroma (reads decoded luma and Cb): width 24, depth 1; "
                  "predicts a correction to the planar prediction; Laplace-rate loss (sum |DCT "
                  "residual| / q); Adam 1e-3, weight decay 1e-4; first 60% float with batch norm, "
                  "then BN folded and int8 quantization-aware fine-tuning (Adam 2e-4); 31020 steps of "
                  "256 luma + 256 chroma blocks, about 30 min on the 2-core CPU; the shipped file was "
                  "exported from the last checkpoint by the same command with --resume --steps 31020 "
                  "--output blockcodec/data/blockcnn.npz",
        ),
    ]
}


def path(name: str) -> Path:
    """The verified path of a shipped weights file."""
    card = MODELS.get(name)
    if card is None:
        raise BlockcodecError(f"no shipped model named {name!r}")
    p = Path(str(resources.files("blockcodec") / "data" / card.file))
    try:
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
    except OSError as exc:
        raise BlockcodecError(f"shipped model {name!r} is missing ({p}): {exc.strerror}") from None
    if card.sha256 and digest != card.sha256:
        raise BlockcodecError(f"shipped model {name!r} ({p}) does not match its registered sha256")
    return p
