"""``python -m blockcodec``: the command line (see blockcodec.cli)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
