"""Kodak rate-distortion evaluation of blockcodec against standard image codecs.

Run from the repository root:  python -m kodak_eval --help

Kept import-light on purpose: __main__ pins thread counts through environment
variables, which only works if numpy/torch have not been imported yet.
"""

__all__ = ["bdrate", "codecs", "evaluate", "metrics", "report"]
