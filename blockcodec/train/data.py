"""Training images: ../shared/data/train, with a fixed held-out split."""
from __future__ import annotations

import os
from pathlib import Path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def default_data_dir() -> Path:
    """../shared/data/train relative to the repository root, else the cwd's."""
    here = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "train"
    return here if here.is_dir() else Path.cwd() / ".." / "shared" / "data" / "train"


def list_images(data_dir: str | os.PathLike | None = None) -> list[Path]:
    root = Path(data_dir) if data_dir else default_data_dir()
    if not root.is_dir():
        raise FileNotFoundError(f"training data folder not found: {root}")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def split(paths: list[Path], every: int = 10) -> tuple[list[Path], list[Path]]:
    """Every `every`-th image (in sorted order) is held out for validation."""
    train = [p for i, p in enumerate(paths) if i % every]
    val = [p for i, p in enumerate(paths) if not i % every]
    return train, val


def progress(iterable, desc: str, enabled: bool = True, unit: str = "img", **kwargs):
    """A tqdm progress bar over ``iterable`` when tqdm is installed and enabled,
    else the iterable itself."""
    if enabled:
        try:
            from tqdm import tqdm
            return tqdm(iterable, desc=desc, unit=unit, **kwargs)
        except ImportError:
            pass
    return iterable
