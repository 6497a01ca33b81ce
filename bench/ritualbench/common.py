"""What every part of the benchmarks shares: where the repository is, which CPU the
servers and the load get, the log line, number formats and the two statistics the
summaries keep (median and least)."""

import os
import statistics
import sys
import time

# This file is bench/ritualbench/common.py: the repository is three levels up.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVER_CPU, LOAD_CPU = 0, 1
HOST = "127.0.0.1"


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def plural(n, word):
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def fmt(v, spec, missing="-"):
    return missing if v is None else format(v, spec)


def median(xs):
    return statistics.median(xs) if xs else None


def least(xs):
    return min(xs) if xs else None


def other_load(runs):
    """The CPU used during the runs by neither the server nor the generator, in cores:
    median and largest over the runs that measured it, or None."""
    other = [r["other_cpu_cores"] for r in runs if r.get("other_cpu_cores") is not None]
    return dict(median=median(other), max=max(other)) if other else None


def cell_short(c):
    """A cell as the tables' first column shows it (echo and HTTP cells alike; a TLS
    cell with a connection per request ends in /close, or /resume if resumed)."""
    return f"{c['connections']}c/{c['size']}B/p{c['pipeline']}" + \
        ("/resume" if c.get("resume") else "/close" if c.get("close") else "")
