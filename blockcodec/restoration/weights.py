"""Restoration weights files: plain .npz (float32 tensors plus a JSON ``meta``
entry naming the architecture and its config), no pickles, so a weights file
can be read without trusting it to run code."""
from __future__ import annotations

import io
import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from . import ARCHITECTURES
from .base import RestorationNet


def save_weights(path, net: RestorationNet, arch: str, meta: dict) -> None:
    """Write atomically (temporary file, then rename)."""
    arrays = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in net.state_dict().items()
              if v.dtype.is_floating_point}
    arrays.update({k: v.cpu().numpy() for k, v in net.state_dict().items() if not v.dtype.is_floating_point})
    info = dict(meta, arch=arch, config=asdict(net.config))
    arrays["meta"] = np.frombuffer(json.dumps(info, sort_keys=True).encode(), np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    tmp = Path(str(path) + ".tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)


def load_weights(path) -> tuple[RestorationNet, dict]:
    """A network (in eval mode) and its metadata from a weights file; raises
    ValueError if the file does not fit its architecture."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    if "meta" not in arrays:
        raise ValueError(f"{path}: no 'meta' entry (not a restoration weights file)")
    meta = json.loads(bytes(arrays.pop("meta")).decode())
    arch = ARCHITECTURES.get(meta.get("arch"))
    if arch is None:
        raise ValueError(f"{path}: unknown architecture {meta.get('arch')!r}")
    cfg = dict(meta["config"])
    for k, v in cfg.items():           # JSON turns tuples into lists
        if isinstance(v, list):
            cfg[k] = tuple(v)
    net = arch.model(type(arch.small)(**cfg))
    state = {k: torch.from_numpy(v) for k, v in arrays.items()}
    net.load_state_dict(state, strict=True)
    return net.eval(), meta
