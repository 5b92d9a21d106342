"""Shared test helpers: deterministic synthetic images and a PSNR helper.

The image generators are plain functions (usable from hypothesis tests, which
cannot take function-scoped fixtures) and are also exposed as fixtures.  All
images are uint8 and fully determined by their arguments.
"""
from __future__ import annotations

import numpy as np
import pytest

# Odd sizes (height, width) that exercise padding to whole blocks (and to
# whole 16x16 macroblocks in 4:2:0).
ODD_SIZES = [(1, 1), (1, 17), (17, 1), (9, 13), (33, 65)]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 images of equal shape
    (over all samples); +inf when they are identical."""
    a = np.asarray(a)
    b = np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(255.0**2 / mse))


def _grid(h: int, w: int):
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    return y / max(h - 1, 1), x / max(w - 1, 1)


def smooth_image(h: int, w: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A smooth image: a gradient plus a low-frequency wave per channel, with
    gentle chroma (channels differ by slow offsets), no noise."""
    rng = np.random.default_rng(seed)
    y, x = _grid(h, w)
    base = 60 + 120 * (0.55 * x + 0.45 * y)
    fy, fx, phase = rng.uniform(0.5, 1.5), rng.uniform(0.5, 1.5), rng.uniform(0, 2 * np.pi)
    base = base + 25 * np.sin(2 * np.pi * (fx * x + fy * y) + phase)
    planes = []
    for c in range(channels):
        gx, gy = rng.uniform(-20, 20, 2)
        planes.append(base + gx * x + gy * y + rng.uniform(-10, 10))
    img = np.stack(planes, axis=-1)
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return img[..., 0] if channels == 1 else img


def textured_image(h: int, w: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """Smooth gradients + an oriented texture + a sharp edge + Gaussian noise:
    a stand-in for a natural image."""
    rng = np.random.default_rng(seed + 1000)
    smooth = smooth_image(h, w, channels, seed).astype(np.float64)
    if channels == 1:
        smooth = smooth[..., None]
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    texture = 18 * np.sin(0.9 * x + 0.4 * y) * np.cos(0.3 * x - 0.7 * y)
    edge = np.where(x + 0.5 * y > 0.6 * w, 40.0, -10.0)
    noise = rng.normal(0, 6, smooth.shape)
    img = smooth + (texture + edge)[..., None] + noise
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return img[..., 0] if channels == 1 else img


def noise_image(h: int, w: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """Uniform white noise: the worst case for prediction and entropy coding."""
    rng = np.random.default_rng(seed + 2000)
    shape = (h, w) if channels == 1 else (h, w, channels)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def synthetic_kodak(folder, n: int = 2, shape=(40, 56)):
    """A stand-in Kodak folder: n small textured images named kodim01.png ..."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(textured_image(*shape, 3, seed=i)).save(folder / f"kodim{i + 1:02d}.png")
    return folder


@pytest.fixture
def smooth_rgb() -> np.ndarray:
    return smooth_image(37, 53, 3, seed=1)


@pytest.fixture
def smooth_gray() -> np.ndarray:
    return smooth_image(37, 53, 1, seed=2)


@pytest.fixture
def textured_rgb() -> np.ndarray:
    return textured_image(41, 35, 3, seed=3)


@pytest.fixture
def textured_gray() -> np.ndarray:
    return textured_image(41, 35, 1, seed=4)


@pytest.fixture
def noise_rgb() -> np.ndarray:
    return noise_image(24, 31, 3, seed=5)


@pytest.fixture(params=ODD_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def odd_size(request) -> tuple[int, int]:
    """(height, width) of an image whose sides are not multiples of 8 or 16."""
    return request.param


@pytest.fixture(scope="session")
def training_images(tmp_path_factory):
    """Eight small textured PNGs standing in for ../shared/data/train in the
    training tests (the every-10th split holds out the first one); each is
    at least 72x80, so 64x64 restoration patches fit."""
    from PIL import Image
    d = tmp_path_factory.mktemp("train")
    for i in range(8):
        Image.fromarray(textured_image(72 + 8 * i, 80, 3, seed=i)).save(d / f"img{i}.png")
    return d
