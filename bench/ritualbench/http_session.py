"""What both HTTP benchmarks (`bench/run http`, and `bench/run http --tls`) do around
and between their measurements: which servers and generators are here (and why the
others are not), their versions, the document root, the ritual rows this machine
cannot run, and the cells, run with the servers and generators taking turns."""

import os
import re
import shutil
import subprocess
import sys

from .common import cell_short, log
from .http_config import HTTP_RITUAL_NAMES
from .servers import ServerError, cannot_run_here, kill_live


def tool_version(argv, pattern):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(pattern, r.stdout + r.stderr)
    return m.group(1) if m else None


def ritual_has(ritual, *words):
    """True if `ritual WORDS... --help` exits 0: the subcommand exists in this build."""
    if not os.access(ritual, os.X_OK):
        return False
    try:
        return subprocess.run([ritual, *words, "--help"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def find_tools(build, wanted, wanted_gens):
    """(paths, names, missing, gens, gens_missing): where every binary is, and of the
    servers and generators asked for those that are here and, with the reason, those
    that are not (each one logged). Exits if no server or no generator is left."""
    sbin = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    ritual = os.path.join(build, "ritual")
    paths = dict(ritual=ritual, floor=os.path.join(build, "bench", "http_floor"),
                 nginx=shutil.which("nginx", path=sbin), h2o=shutil.which("h2o", path=sbin),
                 wrk=shutil.which("wrk"))
    no_http = None if ritual_has(ritual, "http") else \
        f"{ritual} has no `http` subcommand (or is not built)"
    why_not = {
        **{s: no_http for s in HTTP_RITUAL_NAMES},
        "floor": None if os.access(paths["floor"], os.X_OK) else
        f"{paths['floor']} is missing (cmake -DRITUAL_BENCH=ON builds it)",
        "nginx": None if paths["nginx"] else "nginx not installed (apt-get install nginx-light)",
        "h2o": None if paths["h2o"] else "h2o not installed (apt-get install h2o)",
        "ritual-bench": None if ritual_has(ritual, "bench", "http") else
        f"{ritual} has no `bench http` (or is not built)",
        "wrk": None if paths["wrk"] else "wrk not installed (apt-get install wrk)",
    }
    names, missing = [], []
    for s in wanted:
        if why_not[s]:
            log(f"warning: {s} skipped: {why_not[s]}")
            missing.append(f"{s} ({why_not[s]})")
        else:
            names.append(s)
    gens, gens_missing = [], []
    for g in wanted_gens:
        if why_not[g]:
            log(f"warning: generator {g} skipped: {why_not[g]}")
            gens_missing.append(f"{g} ({why_not[g]})")
        else:
            gens.append(g)
    if not names:
        sys.exit("bench/run: no server to run")
    if not gens:
        sys.exit("bench/run: no load generator to run")
    return paths, names, missing, gens, gens_missing


def peer_versions(paths, names, gens):
    """The versions of nginx, h2o and wrk, those of them that run ("?" if unknown)."""
    versions = {}
    if "nginx" in names:
        versions["nginx"] = tool_version([paths["nginx"], "-v"], r"nginx/(\S+)")
    if "h2o" in names:
        versions["h2o"] = tool_version([paths["h2o"], "--version"], r"h2o version (\S+)")
    if "wrk" in gens:
        versions["wrk"] = tool_version([paths["wrk"], "--version"], r"wrk (\S+)")
    return {k: v or "?" for k, v in versions.items()}


def make_root(tmp, files):
    """The document root, tmp/root, holding files (name -> contents). Returns its path."""
    root = os.path.join(tmp, "root")
    os.mkdir(root)
    for f, data in files.items():
        with open(os.path.join(root, f), "wb") as fh:
            fh.write(data)
    return root


def drop_unrunnable(names, missing, start, cell):
    """A ritual row whose backend this build and kernel cannot run (--backend io_uring
    falls back to epoll where io_uring is refused) is taken out of names, with the
    reason in missing, after a trial start(name, cell). Returns False if no server is
    left (every process ended)."""
    for s in [n for n in names if n in HTTP_RITUAL_NAMES]:
        try:
            start(s, cell).stop()
        except ServerError as e:
            why = cannot_run_here(s, e)
            log(f"warning: {s} skipped: {why}")
            missing.append(f"{s} ({why})")
            names.remove(s)
    if not names:
        kill_live()
        return False
    return True


def run_cells(cells, names, gens, rounds, start, load_run, describe):
    """Every cell in turn: each server started fresh (start(name, cell)), then rounds
    of load_run(server, generator, cell, round) with every server and generator taking
    turns, the order rotating every round; a server that died is restarted. Returns
    (runs, failures). KeyboardInterrupt goes through, every server stopped."""
    runs, failures = [], []
    try:
        for i, cell in enumerate(cells):
            label = f"[cell {i + 1}/{len(cells)} {cell_short(cell)}]"
            live = {}
            try:
                for s in names:
                    try:
                        live[s] = start(s, cell)
                    except ServerError as e:
                        failures.append(f"{label}: {s}: could not start: {e}")
                        log(f"{label} {s}: could not start: {e}")
                pairs = [(s, g) for s in names for g in gens]
                for rnd in range(rounds):
                    k = rnd % len(pairs)
                    for s, g in pairs[k:] + pairs[:k]:
                        if s not in live:
                            continue
                        if not live[s].alive():  # died in an earlier round: a fresh one
                            live[s].kill()
                            try:
                                live[s] = start(s, cell)
                            except ServerError as e:
                                failures.append(f"{label}: {s}: could not restart: {e}")
                                del live[s]
                                continue
                        rec = load_run(live[s], g, cell, rnd + 1)
                        runs.append(rec)
                        log(f"{label} round {rnd + 1}/{rounds} {s:<15} [{g:<12}] "
                            f"{describe(rec)}")
                        if not rec["ok"]:
                            failures.append(f"{label}, round {rnd + 1}, {s} [{g}]: "
                                            f"{rec['problem']} (`{rec['command']}`)")
            finally:
                for s, srv in live.items():
                    problem = srv.stop()
                    if problem:
                        failures.append(f"{label}: {problem}")
                        log(f"{label}: {problem}")
    finally:
        kill_live()
    return runs, failures
