"""Progress bars for the command line, on standard error.

A bar is drawn only for someone watching: when standard error is a terminal
and --quiet was not given.  Logs, pipes and tests see nothing, not even
carriage returns.  Without tqdm installed there is simply no bar.
"""
from __future__ import annotations

import sys


def wanted(quiet: bool) -> bool:
    stderr = sys.stderr
    return not quiet and stderr is not None and stderr.isatty()


class Bar:
    """A bar whose total can grow while it runs (``--target-bpp`` adds one full
    encode at a time); calling it advances it, so it serves directly as the
    coding loop's ``progress`` callback.  It appears on the first ``expect``
    (or at once, given a total), so warnings printed while an input is still
    being read do not land in the middle of it."""

    def __init__(self, enabled: bool, unit: str, total: int = 0):
        self._enabled, self._unit, self._bar = enabled, unit, None
        # shown once the total is reached, for work that follows without a count (the post-filter)
        self.finishing = ""
        self._stream = sys.stderr   # the terminal, even if the work later redirects sys.stderr
        if total:
            self.expect(total)

    def expect(self, n: int) -> None:
        if self._bar is not None:
            self._bar.total += n
            self._bar.refresh()
        elif self._enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                self._enabled = False
                return
            self._bar = tqdm(total=n, unit=self._unit, file=self._stream, leave=False, dynamic_ncols=True,
                             unit_scale=self._unit == "block")

    def __call__(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)
            if self.finishing and self._bar.n >= self._bar.total:
                self._bar.set_description_str(self.finishing)

    def write(self, line: str) -> None:
        """Print a line to standard error without tearing the bar."""
        if self._bar is not None:
            self._bar.write(line, file=self._stream)
        else:
            print(line, file=self._stream, flush=True)

    def close(self) -> None:
        """Remove the bar (before printing a summary); it does not come back."""
        self._enabled = False
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "Bar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
