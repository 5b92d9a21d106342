"""A long-running fuzzer for ``blockcodec.decode``.

    python tools/fuzz_decode.py --make-corpus            # (re)write tools/fuzz_corpus/
    python tools/fuzz_decode.py --minutes 60             # coverage-guided with atheris, else random
    python tools/fuzz_decode.py --minutes 60 --random    # random mutation, no coverage

The property is the decoder's contract (README, docs/FORMAT.md 1.1): any byte
string either decodes to a uint8 image of the shape its header announces, or
raises ``BlockcodecError``.  Anything else is a finding: another exception
type, an input that runs past ``--timeout`` seconds, or one that exhausts the
address-space budget (``--memory-mb`` above what the process held when the run
started; MemoryError).  Each finding is saved under ``--workdir``/findings with
its traceback and logged; the run goes on.

A valid CRC-32 guards nearly everything behind the header, so a mutated stream
would almost always stop at check 9.  Every input is therefore decoded up to
three times: as it is, with its CRC recomputed, and with its length field and
CRC made consistent with its size.  The post-filter is off ('none') except for
one input in eight that claims at most ``POSTFILTER_PIXELS`` pixels, which runs
the one its header records: the networks are far slower than the rest of the
decoder, and a short payload may legally claim a large image.

With atheris (``pip install -e ".[fuzz]"``), blockcodec's Python code is
instrumented and libFuzzer steers the mutations by coverage; the C core and
constriction are not instrumented.  Without it, or with ``--random``, a plain
loop mutates the corpus at random (bit flips, byte edits, truncations, splices,
header fields, payload words).  Either way the run writes a status line every
``--status-every`` seconds to ``--log``: inputs decoded, peak RSS, the slowest
input so far, findings.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import signal
import struct
import sys
import time
import traceback
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "fuzz_corpus"
HEADER_SIZE, CRC_SIZE = 34, 4
LENGTH_OFFSET = 30
POSTFILTER_PIXELS = 4096

# Header fields worth editing: (offset, struct format).
FIELDS = [(4, "<B"), (5, "<B"), (6, "<B"), (7, "<I"), (11, "<I"), (15, "<B"), (16, "<B"), (17, "<I"),
          (21, "<B"), (22, "<I"), (26, "<I"), (30, "<I")]
BOUNDARY = [0, 1, 2, 3, 7, 8, 15, 16, 17, 100, 101, 127, 128, 255, 256, 4096, 65535, 65536, 65537,
            1 << 27, (1 << 31) - 1, 1 << 31, (1 << 32) - 1]


# ------------------------------------------------------------------ seeds
def seed_streams() -> dict[str, bytes]:
    """Small valid streams: every mode (gray, 4:2:0, 4:4:4) with every
    predictor, DC prediction on and off, low and high quality, no post-filter;
    and two that record one (WDSR, on a tiny image)."""
    import blockcodec

    rng = np.random.default_rng(16)
    out = {}
    shapes = {"gray": (11, 13), "420": (17, 9, 3), "444": (9, 10, 3)}
    for predictor in ("none", "dc", "planar", "blockcnn"):
        for mode, shape in shapes.items():
            y, x = np.mgrid[0:shape[0], 0:shape[1]]
            ramp = (x * 9 + y * 5)[..., None] if len(shape) == 3 else x * 9 + y * 5
            img = np.clip(ramp + rng.normal(0, 20, shape), 0, 255).astype(np.uint8)
            for quality, dc in ((20, True), (90, False)):
                out[f"{mode}-{predictor}-q{quality}"] = blockcodec.encode(
                    img, quality, subsampling="444" if mode == "444" else "420", predictor=predictor,
                    dc_prediction=dc, postfilter="none")
    out["gray-planar-wdsr"] = blockcodec.encode(np.full((8, 8), 90, np.uint8), 50, predictor="planar")
    out["420-planar-wdsr"] = blockcodec.encode(np.full((8, 16, 3), 90, np.uint8), 50, predictor="planar")
    return out


def make_corpus(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    seeds = seed_streams()
    for name, data in seeds.items():
        (directory / f"{name}.bkc").write_bytes(data)
    print(f"wrote {len(seeds)} seeds to {directory}")


# ------------------------------------------------------------------ oracle
class Finding(Exception):
    """The decoder broke its contract on an input."""


class Slow(BaseException):
    """Raised by the per-input timer; a BaseException so no ``except
    Exception`` in the decoder swallows it."""


def with_crc(data: bytes) -> bytes:
    """``data`` with its last 4 bytes replaced by the CRC-32 of the rest."""
    body = data[:-CRC_SIZE]
    return body + struct.pack("<I", zlib.crc32(body))


def variants(data: bytes) -> list[bytes]:
    """The input as it is, with its CRC recomputed, and with its length field
    and CRC consistent with its size (those that differ)."""
    out = [data]
    if len(data) >= HEADER_SIZE + CRC_SIZE:
        out.append(with_crc(data))
        fixed = bytearray(data)
        struct.pack_into("<I", fixed, LENGTH_OFFSET, len(data) - HEADER_SIZE - CRC_SIZE)
        out.append(with_crc(bytes(fixed)))
    return list(dict.fromkeys(out))


def claimed_pixels(data: bytes) -> int:
    if len(data) < HEADER_SIZE:
        return 0
    width, height = struct.unpack_from("<II", data, 7)
    return width * height


def check(data: bytes, postfilter: str | None = "none") -> str:
    """Decode once; 'decoded' or 'refused', or raise Finding."""
    import blockcodec

    try:
        image = blockcodec.decode(data, postfilter=postfilter)
    except blockcodec.BlockcodecError as exc:
        if not str(exc) or "\n" in str(exc):
            raise Finding(f"BlockcodecError message is not one line: {exc!r}") from exc
        return "refused"
    except Slow:
        raise
    except MemoryError as exc:
        raise Finding(f"MemoryError for a {len(data)}-byte input (address-space budget)") from exc
    except Exception as exc:
        raise Finding(f"{type(exc).__name__}: {exc}") from exc
    width, height = struct.unpack_from("<II", data, 7)
    shape = (height, width) if data[5] == 0 else (height, width, 3)
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.shape != shape:
        raise Finding(f"decoded to {getattr(image, 'dtype', type(image))} {getattr(image, 'shape', '')}, "
                      f"header says uint8 {shape}")
    return "decoded"


def postfilter_for(data: bytes) -> str | None:
    small = claimed_pixels(data) <= POSTFILTER_PIXELS
    return None if small and zlib.crc32(data) % 8 == 0 else "none"


# ------------------------------------------------------------------ the run
class Run:
    """Counts, budgets and logging shared by both fuzzing modes."""

    def __init__(self, args):
        self.args = args
        self.workdir = Path(args.workdir)
        (self.workdir / "findings").mkdir(parents=True, exist_ok=True)
        self.log = open(args.log, "a", buffering=1)
        self.start = time.time()
        self.inputs = self.decodes = self.refused = self.decoded = 0
        self.findings = 0
        self.slowest = (0.0, "", 0)
        self.last_status = 0.0
        self.mode = ""
        signal.signal(signal.SIGALRM, self._alarm)

    @staticmethod
    def _alarm(signum, frame):
        raise Slow

    def limit_memory(self) -> None:
        """Cap the address space at what the warmed-up process maps plus the budget."""
        with open("/proc/self/statm") as f:
            mapped = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        cap = mapped + self.args.memory_mb * (1 << 20)
        resource.setrlimit(resource.RLIMIT_AS, (cap, resource.getrlimit(resource.RLIMIT_AS)[1]))
        self.emit({"event": "memory budget", "address_space_mb": cap >> 20})

    def one(self, data: bytes) -> None:
        """Everything the fuzzer runs per input."""
        self.inputs += 1
        for variant in variants(data):
            choice = postfilter_for(variant)
            t0 = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, self.args.timeout)
            try:
                outcome = check(variant, choice)
            except Slow:
                self.finding(variant, f"slow: still decoding after {self.args.timeout} s", choice)
                outcome = "slow"
            except Finding as exc:
                self.finding(variant, "".join(traceback.format_exception(exc)), choice)
                outcome = "finding"
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            seconds = time.perf_counter() - t0
            self.decodes += 1
            self.decoded += outcome == "decoded"
            self.refused += outcome == "refused"
            if seconds > self.slowest[0]:
                self.slowest = (seconds, hashlib.sha1(variant).hexdigest()[:12], len(variant))
                (self.workdir / "slowest.bkc").write_bytes(variant)
        if time.time() - self.last_status > self.args.status_every:
            self.status()

    def finding(self, data: bytes, what: str, choice) -> None:
        self.findings += 1
        digest = hashlib.sha1(data).hexdigest()[:12]
        (self.workdir / "findings" / f"{digest}.bkc").write_bytes(data)
        (self.workdir / "findings" / f"{digest}.txt").write_text(f"postfilter={choice!r}\n{what}\n")
        self.emit({"event": "finding", "input": f"findings/{digest}.bkc", "postfilter": choice,
                   "what": what.strip().splitlines()[-1]})

    def status(self, final: bool = False) -> None:
        self.last_status = time.time()
        seconds, digest, size = self.slowest
        self.emit({"event": "final" if final else "status", "mode": self.mode,
                   "elapsed_s": round(self.last_status - self.start), "inputs": self.inputs,
                   "decodes": self.decodes, "decoded": self.decoded, "refused": self.refused,
                   "findings": self.findings,
                   "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                   "slowest_s": round(seconds, 3), "slowest_input": f"{digest} ({size} bytes)"})

    def emit(self, record: dict) -> None:
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **record}
        self.log.write(json.dumps(record) + "\n")


def load_corpus(directory: Path) -> list[bytes]:
    """The committed corpus (seeds, past findings) and freshly made seeds:
    those stay valid when the entropy tables or the weights change."""
    files = sorted(directory.glob("*.bkc")) if directory.is_dir() else []
    return list(dict.fromkeys([f.read_bytes() for f in files] + list(seed_streams().values())))


def mutate(data: bytes, corpus: list[bytes], rng: random.Random) -> bytes:
    """One to four random edits of a stream."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(9)
        if op == 0 and b:                                    # bit flip
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and b:                                  # random or boundary byte
            b[rng.randrange(len(b))] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)])
        elif op == 2:                                        # truncation
            del b[rng.randrange(len(b) + 1):]
        elif op == 3:                                        # extension
            b += bytes(rng.randrange(256) for _ in range(rng.choice([1, 4, 8, rng.randrange(64)])))
        elif op == 4 and b:                                  # delete or duplicate a range
            i = rng.randrange(len(b))
            j = min(len(b), i + rng.randrange(1, 33))
            b[i:j] = b[i:j] * rng.choice([0, 2])
        elif op == 5:                                        # splice with another stream
            other = rng.choice(corpus)
            i, j = rng.randrange(len(b) + 1), rng.randrange(len(other) + 1)
            b = b[:i] + other[j:]
        elif op in (6, 7) and len(b) >= HEADER_SIZE:         # a header field
            offset, fmt = rng.choice(FIELDS)
            bits = 8 * struct.calcsize(fmt)
            value = rng.choice(BOUNDARY + [rng.getrandbits(bits)]) % (1 << bits)
            struct.pack_into(fmt, b, offset, value)
        elif op == 8 and len(b) >= HEADER_SIZE + CRC_SIZE + 4:   # a payload word
            i = HEADER_SIZE + 4 * rng.randrange((len(b) - HEADER_SIZE - CRC_SIZE) // 4)
            struct.pack_into("<I", b, i, rng.getrandbits(32))
    return bytes(b)


def run_random(run: Run, corpus: list[bytes], seconds: float, seed: int) -> None:
    run.mode = "random mutation (no coverage)"
    rng = random.Random(seed)
    deadline = time.time() + seconds
    while time.time() < deadline:
        run.one(mutate(rng.choice(corpus), corpus, rng))


def run_atheris(run: Run, corpus: list[bytes], seconds: float, args) -> None:
    import atheris

    run.mode = "atheris (coverage-guided)"
    live = run.workdir / "corpus"
    live.mkdir(exist_ok=True)
    for data in corpus:
        (live / f"{hashlib.sha1(data).hexdigest()[:12]}.bkc").write_bytes(data)
    libfuzzer = [sys.argv[0], str(live), f"-max_total_time={int(seconds)}", f"-max_len={args.max_len}",
                 f"-timeout={int(4 * args.timeout) + 1}", "-rss_limit_mb=0", "-print_final_stats=1",
                 f"-seed={args.seed}", f"-artifact_prefix={run.workdir}/"]   # not the current directory
    atheris.Setup(libfuzzer, run.one)
    atheris.Fuzz()


def _instrumented(atheris):
    """Instrument blockcodec's modules for edge coverage only.  atheris's
    ``instrument_imports`` also traces every comparison's operands, and with
    numpy arrays as operands that leaked about 10 MB a second (atheris 3.0)."""
    try:
        from atheris.import_hook import HookManager
        return HookManager({"blockcodec"}, set(), True, trace_dataflow=False)
    except (ImportError, TypeError):   # another atheris: its public hook, leak or not
        return atheris.instrument_imports(include=["blockcodec"])


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--make-corpus", action="store_true", help=f"write the seed streams to {CORPUS} and stop")
    p.add_argument("--minutes", type=float, default=10.0, help="how long to fuzz (default 10)")
    p.add_argument("--random", action="store_true", help="random mutation even if atheris is installed")
    p.add_argument("--corpus", default=str(CORPUS), help="seed corpus directory")
    p.add_argument("--workdir", default="/tmp/blockcodec_fuzz", help="findings, live corpus, slowest input")
    p.add_argument("--log", default=None, help="JSON-lines log (default WORKDIR/fuzz.log)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per decode before it is a finding")
    p.add_argument("--memory-mb", type=int, default=3072, help="address space allowed above the start")
    p.add_argument("--max-len", type=int, default=4096, help="largest input atheris makes (bytes)")
    p.add_argument("--status-every", type=float, default=30.0, help="seconds between status lines")
    p.add_argument("--seed", type=int, default=16)
    args = p.parse_args(argv)
    args.log = args.log or str(Path(args.workdir) / "fuzz.log")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.make_corpus:
        make_corpus(Path(args.corpus))
        return 0
    use_atheris = not args.random
    if use_atheris:
        try:
            import atheris
        except ImportError:
            print("atheris is not installed: random mutation without coverage", file=sys.stderr)
            use_atheris = False
    if use_atheris:
        with _instrumented(atheris):
            import blockcodec  # noqa: F401
            from blockcodec import bitstream, codec, engine, entropy, postfilter  # noqa: F401
            from blockcodec.predictors import blockcnn, classical  # noqa: F401
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    run = Run(args)
    corpus = load_corpus(Path(args.corpus))
    for data in corpus:      # warm-up: imports, weights, tables; each seed must pass the oracle
        run.one(data)
    run.limit_memory()
    run.emit({"event": "start", "corpus": len(corpus), "seconds": args.minutes * 60,
              "timeout_s": args.timeout, "memory_mb": args.memory_mb})
    try:
        if use_atheris:
            import atexit
            atexit.register(run.status, True)
            run_atheris(run, corpus, args.minutes * 60, args)
        else:
            run_random(run, corpus, args.minutes * 60, args.seed)
    finally:
        run.status(final=True)
    return 0 if run.findings == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
