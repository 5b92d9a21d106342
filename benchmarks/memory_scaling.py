"""How peak memory and time grow with the image size, from 0.4 to 24 megapixels.

For each size, one encode and one decode, each in a fresh process
(``mem_probe.py --measure rss``), of a natural-looking photo made from the
training photos (``benchlib.make_composite``: Sun-Hays photos enlarged about
2x and tiled; smaller sizes are crops of the larger ones, so the content's
scale is the same at every size).  Default settings: BlockCNN, the default
post-filter (WDSR, which the decoder runs), quality 75, effort 2, 4:2:0.

    python benchmarks/memory_scaling.py                   # 0.4, 1.5, 6, 24 MP (~3 min, 2 cores)
    python benchmarks/memory_scaling.py --sizes 768x512,6000x4000 --tracemalloc
    python benchmarks/memory_scaling.py --before ../ref     # and an earlier checkout, interleaved

Memory is reported two ways, in bytes per image pixel:
  * increase: the probe's peak RSS minus its RSS at the baseline, which already
    holds the interpreter, numpy, the weights, the entropy tables and the input
    (the image array for encode, the coded bytes for decode); this is the
    operation's own working memory, output included (mem_probe.py).
  * process: the fresh process's whole peak RSS (ru_maxrss), all of the above
    included: what a user's ``blockcodec encode`` / ``decode`` needs at most,
    less the CLI's PNG reading and writing.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PROBE = os.path.join(HERE, "mem_probe.py")
sys.path.insert(0, HERE)
import benchlib  # noqa: E402

DEFAULT_SIZES = "768x512,1500x1000,3000x2000,6000x4000"


def run_probe(cmd: list[str], code: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = code + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"memory probe failed ({p.returncode}): {shlex.join(cmd)}\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def measure_size(args, size: str, code: str, tmp: str) -> dict:
    w, h = (int(v) for v in size.lower().split("x"))
    stream = os.path.join(tmp, f"{w}x{h}.bkc")
    common = [sys.executable, PROBE, "--predictor", args.setting, "--quality", str(args.quality)]
    row = {"width": w, "height": h, "pixels": w * h, "code": os.path.abspath(code)}
    for measure_kind in ["rss"] + (["tracemalloc"] if args.tracemalloc else []):
        enc = run_probe(common + ["--op", "encode", "--measure", measure_kind, "--composite", size,
                                  "--data-out", stream], code)
        dec = run_probe(common + ["--op", "decode", "--measure", measure_kind, "--data-in", stream], code)
        row[f"encode_{measure_kind}"], row[f"decode_{measure_kind}"] = enc, dec
    with open(stream, "rb") as f:
        row["stream_sha256"] = hashlib.sha256(f.read()).hexdigest()
    row["bytes"] = row["encode_rss"]["bytes"]
    e, d = row["encode_rss"], row["decode_rss"]
    label = "before" if code != args.code else "now"
    print(f"{label} {w}x{h}: encode {e['seconds']:.1f} s, +{increase_mib(e):.0f} MiB "
          f"(process {process_mib(e):.0f}); decode {d['seconds']:.1f} s, "
          f"+{increase_mib(d):.0f} MiB (process {process_mib(d):.0f})", flush=True)
    return row


def measure(args) -> tuple[list[dict], list[dict]]:
    """Per size, the checkout measured and (--before) the earlier one, in
    alternating order, so that outside load falls on both alike."""
    rows, before = [], []
    with tempfile.TemporaryDirectory(prefix="bkc_memscale_") as tmp:
        for i, size in enumerate(args.sizes.split(",")):
            codes = [args.code] + ([args.before] if args.before else [])
            for code in (codes if i % 2 == 0 else codes[::-1]):
                (rows if code == args.code else before).append(measure_size(args, size, code, tmp))
    return rows, before


MIB = 2 ** 20


def increase_mib(r: dict) -> float:
    """The operation's peak over the baseline: VmHWM (reset at the baseline)
    minus VmRSS at the baseline where the reset worked, else from ru_maxrss.
    (The reset also resets ru_maxrss on some kernels, this VM's among them,
    so ru_maxrss after minus before can read low.)"""
    hwm = r.get("hwm_peak_increase_mib")
    return hwm if hwm is not None else r["rss_peak_increase_mib"]


def process_mib(r: dict) -> float:
    """The fresh process's whole peak RSS."""
    return max(r["peak_rss_mib"], r["ru_maxrss_before_mib"], (r.get("rss_before_mib") or 0) + increase_mib(r))


def per_pixel(row: dict, op: str) -> dict:
    r = row[f"{op}_rss"]
    inc, proc = increase_mib(r), process_mib(r)
    out = {"s": r["seconds"], "us_px": r["seconds"] * 1e6 / row["pixels"],
           "inc": inc * MIB / row["pixels"], "proc": proc * MIB / row["pixels"],
           "inc_mib": inc, "proc_mib": proc}
    tm = row.get(f"{op}_tracemalloc")
    out["tm"] = None if tm is None else tm["tracemalloc_peak_mib"] * MIB / row["pixels"]
    return out


def markdown(info: dict, rows: list[dict], before: list[dict]) -> str:
    lines = ["# Peak memory and time from 0.4 to 24 megapixels", "",
             f"Command: `{info['command']}`", "",
             f"Date {info['date']}; {info['cpu']}, {info['cores']} cores; Python {info['python']}; "
             f"load average at start {info['load_start'][0]:.2f} / {info['load_start'][1]:.2f} / "
             f"{info['load_start'][2]:.2f}, at end {info['load_end'][0]:.2f} / {info['load_end'][1]:.2f} / "
             f"{info['load_end'][2]:.2f}.", "",
             f"Code: `{info['code']}` ({info.get('code_commit') or 'not a git checkout'}).", "",
             f"Setting: `{info['setting']}` (BlockCNN predictor, the default post-filter, which decode runs), "
             f"quality {info['quality']}, 4:2:0, effort 2. Images: `benchlib.make_composite` (36 Sun-Hays "
             "training photos enlarged about 2x and tiled; smaller sizes are top-left crops of the 24-MP one). "
             "Each number is one encode or one decode in a fresh process (`mem_probe.py --measure rss`).", "",
             "*increase*: the operation's peak RSS minus the RSS at the baseline, which already holds the "
             "interpreter, numpy, the weights, the tables and the input (the RGB array for encode, 3 B/px; the "
             "stream for decode); measured as VmHWM, reset at the baseline, minus VmRSS there. *process*: the "
             "fresh process's whole peak RSS, all of that included. B/px: bytes per image pixel "
             "(MiB × 2^20 / pixels).", ""]
    ref_rows = {(r["width"], r["height"]): r for r in before}
    for op in ("encode", "decode"):
        lines += [f"## {op.capitalize()}", ""]
        head = "| size | MP | bpp | time s | µs/px | increase MiB | increase B/px | process MiB | process B/px |"
        sep = "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        if ref_rows:
            head += " before: time s | before: increase B/px | before: process B/px |"
            sep += "---:|---:|---:|"
        if any(r.get(f"{op}_tracemalloc") for r in rows):
            head += " tracemalloc B/px |"
            sep += "---:|"
        lines += [head, sep]
        for r in rows:
            p = per_pixel(r, op)
            cells = [f"{r['width']}×{r['height']}", f"{r['pixels'] / 1e6:.2f}",
                     f"{r['bytes'] * 8 / r['pixels']:.3f}", f"{p['s']:.2f}", f"{p['us_px']:.2f}",
                     f"{p['inc_mib']:.0f}", f"{p['inc']:.1f}", f"{p['proc_mib']:.0f}", f"{p['proc']:.1f}"]
            if ref_rows:
                b = ref_rows.get((r["width"], r["height"]))
                if b:
                    q = per_pixel(b, op)
                    cells += [f"{q['s']:.2f}", f"{q['inc']:.1f}", f"{q['proc']:.1f}"]
                else:
                    cells += ["", "", ""]
            if any(x.get(f"{op}_tracemalloc") for x in rows):
                cells.append("" if p["tm"] is None else f"{p['tm']:.1f}")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if before:
        same = all(a["stream_sha256"] == b["stream_sha256"] for a, b in zip(rows, before))
        lines += [f"*before*: the checkout `{info['before']}` ({info.get('before_commit') or 'not a git checkout'}), "
                  "measured in the same run, size by size in alternating order. "
                  + ("Its streams are byte for byte the same as this code's at every size." if same else
                     "**Its streams differ from this code's.**"), ""]
    return "\n".join(lines)


def _commit(path: str) -> str | None:
    p = subprocess.run(["git", "-C", path, "describe", "--always", "--dirty"], capture_output=True, text=True)
    return p.stdout.strip() or None if p.returncode == 0 else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default=DEFAULT_SIZES, help=f"WxH,... (default {DEFAULT_SIZES})")
    ap.add_argument("--setting", default="blockcnn+default",
                    help="predictor[+post-filter] as in bench_codec.py (default blockcnn+default)")
    ap.add_argument("--quality", type=int, default=75)
    ap.add_argument("--tracemalloc", action="store_true", help="also a tracemalloc probe of each (slower)")
    ap.add_argument("--code", default=REPO, help="the checkout whose blockcodec the probes import (default: this one)")
    ap.add_argument("--before", metavar="DIR",
                    help="also measure the blockcodec of this checkout (e.g. a git worktree of an earlier "
                         "commit, its C extension built), in the same run, and show it beside")
    ap.add_argument("--before-label", help="what --before is, for the table (default: its git commit)")
    ap.add_argument("--code-label", help="what --code is, for the table (default: its git commit)")
    ap.add_argument("--json-out", default=os.path.join(HERE, "results", "memory_scaling.json"))
    ap.add_argument("--md-out", default=os.path.join(HERE, "results", "memory_scaling.md"))
    ap.add_argument("--no-md", action="store_true")
    args = ap.parse_args(argv)

    info = {"command": "python " + shlex.join(["benchmarks/memory_scaling.py", *(argv or sys.argv[1:])]),
            "date": datetime.datetime.now().isoformat(timespec="seconds"), "cpu": benchlib.cpu_model(),
            "cores": os.cpu_count(), "python": platform.python_version(), "setting": args.setting,
            "quality": args.quality, "load_start": os.getloadavg()}
    for key in ("code", "before"):
        d = getattr(args, key)
        if d:
            info[key] = os.path.abspath(d)
            info[f"{key}_commit"] = _commit(d)
    if args.before_label:
        info["before_commit"] = args.before_label
    if args.code_label:
        info["code_commit"] = args.code_label
    rows, before = measure(args)
    info["load_end"] = os.getloadavg()
    with open(args.json_out, "w") as f:
        json.dump({"info": info, "rows": rows, "before": before}, f, indent=1)
    if not args.no_md:
        with open(args.md_out, "w") as f:
            f.write(markdown(info, rows, before))
    return 0


if __name__ == "__main__":
    sys.exit(main())
