"""Running (codec, parameter, image) measurements, with an on-disk cache and a process pool."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .codecs import Codec
from .metrics import METRICS_VERSION, ms_ssim, msssim_db, psnr

# Bumped when the layout of a cached record changes.
CACHE_FORMAT = "1"


@dataclass(frozen=True)
class ImageRef:
    name: str      # file stem, e.g. kodim01
    path: str
    digest: str    # content hash: a replaced file must not hit a stale cache entry


@dataclass
class Task:
    codec: Codec
    param: object
    image: ImageRef


def load_rgb(path: str) -> np.ndarray:
    from PIL import Image
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def file_digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


_IMAGE_MEMO: dict[str, np.ndarray] = {}


def _image(path: str) -> np.ndarray:
    # Each worker decodes each PNG once; 24 Kodak images are ~28 MB in memory.
    if path not in _IMAGE_MEMO:
        _IMAGE_MEMO[path] = load_rgb(path)
    return _IMAGE_MEMO[path]


def measure(codec: Codec, param, image: ImageRef) -> dict:
    """Encode, decode and score one image; never raises (errors become a record)."""
    rec: dict = {"image": image.name}
    try:
        rgb = _image(image.path)
        # Wall and process CPU time: on a shared machine other jobs inflate wall time,
        # while CPU time of a single-threaded codec stays close to its idle wall time.
        t0, c0 = time.perf_counter(), time.process_time()
        data = codec.encode(rgb, param)
        t1, c1 = time.perf_counter(), time.process_time()
        out = codec.decode(data)
        t2, c2 = time.perf_counter(), time.process_time()
        out = np.asarray(out)
        if out.shape != rgb.shape or out.dtype != np.uint8:
            raise ValueError(f"decoded {out.dtype} array of shape {out.shape}, expected uint8 {rgb.shape}")
        h, w = rgb.shape[:2]
        ms = ms_ssim(rgb, out)
        rec.update(bytes=len(data), bpp=len(data) * 8.0 / (h * w), psnr=psnr(rgb, out),
                   msssim=ms, msssim_db=msssim_db(ms), enc_s=t1 - t0, dec_s=t2 - t1,
                   enc_cpu_s=c1 - c0, dec_cpu_s=c2 - c1)
    except Exception as exc:
        rec["error"] = f"{type(exc).__name__}: {exc}"
        rec["traceback"] = traceback.format_exc(limit=6)
    return rec


def _run_task(task: Task) -> dict:
    return measure(task.codec, task.param, task.image)


class ResultCache:
    """One small JSON file per anchor measurement under cache_dir/<codec>/.

    The key covers everything that can change the numbers: codec name, fixed
    settings, library versions, parameter, image name and content, metric version.
    Only the main process writes, and writes are atomic renames, so an interrupted
    run leaves no torn files and a rerun resumes where it stopped.
    """

    def __init__(self, root: Path, enabled: bool = True):
        self.root = Path(root)
        self.enabled = enabled

    def _path(self, task: Task, version: str) -> tuple[Path, dict]:
        key = {
            "format": CACHE_FORMAT,
            "metrics": METRICS_VERSION,
            "codec": task.codec.name,
            "settings": task.codec.settings(),
            "version": version,
            "param": task.param,
            "image": task.image.name,
            "image_digest": task.image.digest,
        }
        h = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
        return self.root / task.codec.name / f"{task.image.name}_{task.param}_{h}.json", key

    def get(self, task: Task, version: str) -> dict | None:
        if not (self.enabled and task.codec.cacheable):
            return None
        path, key = self._path(task, version)
        try:
            blob = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if blob.get("key") != key:
            return None
        return blob["record"]

    def put(self, task: Task, version: str, record: dict) -> None:
        if not (self.enabled and task.codec.cacheable) or "error" in record:
            return
        path, key = self._path(task, version)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"key": key, "record": record}))
        os.replace(tmp, path)


class _NoBar:
    """Stands in for tqdm when it is not installed."""

    def __init__(self, *args, **kwargs):
        pass

    def set_postfix_str(self, *args, **kwargs):
        pass

    def update(self, n=1):
        pass

    def close(self):
        pass


def run_tasks(tasks: list[Task], versions: dict[str, str], cache: ResultCache,
              jobs: int = 1, progress: bool = True) -> list[dict]:
    """Measure every task (cache first); returns records aligned with tasks.

    Each record gets 'cached': True/False. Timings of cached records are those of
    the run that computed them.
    """
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is an optional extra: run without a progress bar
        tqdm = _NoBar

    results: list[dict | None] = [None] * len(tasks)
    todo = []
    for i, t in enumerate(tasks):
        hit = cache.get(t, versions[t.codec.name])
        if hit is not None:
            results[i] = dict(hit, cached=True)
        else:
            todo.append(i)

    bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), unit="img",
               desc="kodak", disable=not progress, dynamic_ncols=True)

    def finish(i: int, rec: dict) -> None:
        t = tasks[i]
        rec["cached"] = False
        results[i] = rec
        cache.put(t, versions[t.codec.name], {k: v for k, v in rec.items() if k != "cached"})
        bar.set_postfix_str(f"{t.codec.name} {t.codec.param_name}={t.param}", refresh=False)
        bar.update(1)

    try:
        if jobs > 1 and len(todo) > 1:
            todo = _run_pool(tasks, todo, jobs, finish)
        for i in todo:  # serial path, or what a crashed pool left behind
            bar.set_postfix_str(f"{tasks[i].codec.name} {tasks[i].codec.param_name}={tasks[i].param}")
            finish(i, _run_task(tasks[i]))
    finally:
        bar.close()
    return results  # type: ignore[return-value]


def _run_pool(tasks, todo, jobs, finish) -> list[int]:
    """Run todo in a spawn-context pool; return the indices it could not finish.

    spawn, not fork: torch (imported by blockcodec) and some codec libraries keep
    thread pools that do not survive a fork. If a worker dies (e.g. a segfault
    inside a codec library), the remaining tasks fall back to the serial path
    rather than the whole run being lost.
    """
    import multiprocessing as mp

    left = set(todo)
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"))
    try:
        futures = {pool.submit(_run_task, tasks[i]): i for i in todo}
        for fut in as_completed(futures):
            i = futures[fut]
            rec = fut.result()
            left.discard(i)
            finish(i, rec)
    except BrokenProcessPool:
        print(f"\nwarning: a worker process died; running the {len(left)} remaining "
              "measurements in this process", file=sys.stderr)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True, cancel_futures=True)
    return sorted(left)
