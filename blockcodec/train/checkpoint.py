"""Training checkpoints: written atomically, so an interrupted save never
leaves a broken file where a good one was."""
from __future__ import annotations

import os
from pathlib import Path

import torch

NAME = "checkpoint.pt"


def save(workdir: Path, state: dict) -> None:
    tmp = Path(workdir) / (NAME + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, Path(workdir) / NAME)


def load(workdir: Path) -> dict | None:
    """The last checkpoint, or None.  It holds optimizer state and numpy RNG
    state, so it is unpickled: load only checkpoints you wrote yourself."""
    path = Path(workdir) / NAME
    return torch.load(path, weights_only=False) if path.exists() else None
