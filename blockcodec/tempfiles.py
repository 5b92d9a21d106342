"""Temp files that do not outlive the process writing them.

The command line writes each output to a temp file beside its destination and
renames it into place (``cli.write_output``).  An exception removes the temp
file on the way out.  A signal can arrive between any two instructions, so
the name is recorded *before* the file is created (with O_EXCL, so a recorded
name is always ours), and the handlers that ``handle_signals`` installs remove
every recorded file before the process ends with status 128 + the signal
number.  SIGKILL cannot be caught; what a killed run leaves is harmless to the
next, which picks a fresh random name and never reads another's temp file.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_live: set[str] = set()


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived.  A BaseException, like KeyboardInterrupt for
    SIGINT, so that no ``except Exception`` on the way out swallows it."""

    def __init__(self, signo: int):
        super().__init__(signal.Signals(signo).name)
        self.status = 128 + signo


def remove_all() -> None:
    for name in list(_live):
        with contextlib.suppress(OSError):
            os.unlink(name)
        _live.discard(name)


def _on_signal(signo, frame):
    remove_all()
    if signo == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(signo)


@contextlib.contextmanager
def handle_signals():
    """Remove the temp files on SIGINT, SIGTERM and SIGHUP while the block
    runs, then restore the previous handlers.  A signal ignored on entry stays
    ignored (``nohup`` ignores SIGHUP, a shell's background job SIGINT).
    Signal handlers belong to the main thread; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _on_signal) for s in SIGNALS if signal.getsignal(s) != signal.SIG_IGN}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def temp_file(directory: str, prefix: str):
    """A new, empty file ``directory/prefix<random>.tmp`` as (fd, name),
    removed when the block ends unless it was renamed away."""
    while True:
        name = os.path.join(directory, f"{prefix}{secrets.token_hex(6)}.tmp")
        _live.add(name)   # first: from here on a signal removes it, should it exist
        try:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
            break
        except FileExistsError:   # someone else's: not ours to remove
            _live.discard(name)
        except BaseException:
            _live.discard(name)
            raise
    try:
        yield fd, name
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(name)       # gone already after a rename
        _live.discard(name)
