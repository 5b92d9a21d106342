"""Other projects' published Kodak curves, entered as data with their source
(kodak_eval/data/published_kodak.json); never measured here, and always
labelled so in tables."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .metrics import msssim_db

PATH = Path(__file__).resolve().parent / "data" / "published_kodak.json"


def curves(path: Path = PATH) -> dict[str, dict]:
    """name -> dict(bpp, psnr, msssim_db) arrays, bpp ascending; {} without the file."""
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())["curves"]
    return {f"{name} (published)": dict(bpp=np.array(c["bpp"]), psnr=np.array(c["psnr"]),
                                        msssim_db=np.array([msssim_db(v) for v in c["msssim"]]))
            for name, c in data.items()}


def source(path: Path = PATH) -> str:
    return json.loads(path.read_text())["_source"] if path.is_file() else ""
