"""Many files in one command: ``blockcodec encode a.png b.png -d out/``.

Output names come from the input stems (a.png -> out/a.bkc).  A file that
fails is reported on one line, ``blockcodec: error: a.png: ...``, and the
others still run; the exit status is 1 if any failed.  ``--jobs N`` codes N
files at a time in worker processes (each file is independent, and the coding
loop of one image is sequential).  A worker's messages (warnings, -v
summaries) are passed back and printed by the parent, so they never tear the
progress bar or interleave mid-line.
"""
from __future__ import annotations

import io
import os
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager, redirect_stderr
from typing import Callable

from . import engine, progress
from .cli import PROG, STDIO, CliError, UsageError, _one_line
from .errors import BlockcodecError

# work(input, output, args, bar): code one file, raising CliError/BlockcodecError on bad input.
Work = Callable[[str, str, object, progress.Bar], None]


def output_paths(inputs: list[str], outdir: str, extension: str) -> list[str]:
    """OUTDIR/<stem><extension> for each input; refuses names that would collide."""
    if STDIO in inputs:
        raise UsageError("'-' (standard input) cannot be used with -d/--output-dir; use -o")
    stems = [os.path.splitext(os.path.basename(path))[0] for path in inputs]
    clashes = sorted(stem for stem, n in Counter(stems).items() if n > 1)
    if clashes:
        raise UsageError(f"several inputs would write {os.path.join(outdir, clashes[0] + extension)!r}; "
                         f"give inputs with distinct names")
    return [os.path.join(outdir, stem + extension) for stem in stems]


def prepare_dir(outdir: str) -> None:
    if os.path.isdir(outdir):
        return
    if os.path.lexists(outdir):
        raise CliError(f"output directory {outdir!r} is not a directory")
    try:
        os.makedirs(outdir)
    except OSError as exc:
        raise CliError(f"cannot create output directory {outdir!r}: {exc.strerror or exc}") from None


@contextmanager
def quiet_warnings(quiet: bool):
    """With --quiet, drop the ``blockcodec: warning:`` lines printed inside."""
    if not quiet:
        yield
        return
    captured = io.StringIO()
    try:
        with redirect_stderr(captured):
            yield
    finally:
        for line in _without_warnings(captured.getvalue(), quiet):
            print(line, file=sys.stderr, flush=True)


def _without_warnings(printed: str, quiet: bool) -> list[str]:
    lines = printed.splitlines()
    return [line for line in lines if not line.startswith(f"{PROG}: warning:")] if quiet else lines


def _run_one(work: Work, src: str, dst: str, args, bar: progress.Bar | None = None) -> tuple[str | None, str]:
    """(error message or None, what the work printed to standard error)."""
    captured = io.StringIO()
    with redirect_stderr(captured):
        try:
            work(src, dst, args, bar or progress.Bar(False, "block"))
            return None, captured.getvalue()
        except (CliError, BlockcodecError) as exc:
            message = str(exc)
        except MemoryError:
            message = "out of memory"
        except OSError as exc:
            message = f"I/O error: {exc.strerror or exc}"
        except Exception as exc:  # one broken file must not end the batch
            message = f"internal error ({type(exc).__name__}: {exc})"
    return message, captured.getvalue()


def _share_cores(threads: int) -> None:
    """Worker initializer: N workers share the cores, rather than each running
    a thread per core.  The BlockCNN kernel takes its count from
    ``engine.threads()``; OMP_NUM_THREADS sizes torch's pools (the post-filter)
    if torch loads later, and torch is told directly if it already has."""
    engine.set_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if "torch" in sys.modules:   # already loaded in the parent before the fork
        sys.modules["torch"].set_num_threads(threads)


def run(work: Work, inputs: list[str], outputs: list[str], args, *, jobs: int = 1, quiet: bool = False) -> int:
    """Code every (input, output) pair; returns the exit status."""
    show = progress.wanted(quiet)
    failed = 0
    single = len(inputs) == 1
    with progress.Bar(show, "block" if single else "file", total=0 if single else len(inputs)) as bar:
        def report(src: str, outcome: tuple[str | None, str]) -> None:
            nonlocal failed
            message, printed = outcome
            for line in _without_warnings(printed, quiet):
                bar.write(line)
            if message is not None:
                failed += 1
                bar.write(f"{PROG}: error: {_one_line(f'{src}: {message}')}")
            if not single:
                bar()

        if single or jobs == 1:
            for src, dst in zip(inputs, outputs):
                report(src, _run_one(work, src, dst, args, bar if single else None))
        else:
            workers = min(jobs, len(inputs))
            with ProcessPoolExecutor(max_workers=workers, initializer=_share_cores,
                                     initargs=(getattr(args, "threads", None)
                                               or max(1, engine.available_cpus() // workers),)) as pool:
                futures = {pool.submit(_run_one, work, src, dst, args): src for src, dst in zip(inputs, outputs)}
                try:
                    for future in as_completed(futures):
                        report(futures[future], future.result())
                except BaseException:   # a signal: finish the files in hand, start no others
                    pool.shutdown(cancel_futures=True)
                    raise
    if failed and not single:
        print(f"{PROG}: {failed} of {len(inputs)} files failed", file=sys.stderr, flush=True)
    return 1 if failed else 0
