"""The HTTP benchmark from start to finish (`bench/run http`): which servers and
generators are here, the document root, then every cell with the servers and
generators taking turns, and last http.json, http.md and http-cpu.png."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from .charts import http_chart
from .common import LOAD_CPU, cell_short, log, other_load
from .http_config import (HTTP_FILES, HTTP_RITUAL_NAMES, HTTP_TARGETS, WRK_PIPELINE_LUA,
                          http_generator_argv, http_server_cmd_templates, http_server_spec)
from .http_load import HttpServer, http_describe, http_load_run
from .http_report import http_summarize, http_write_md
from .report import read_notes, write_json
from .servers import ServerError, cannot_run_here, kill_live
from .session import (check_cpus, date_and_invocation, interrupt_on_signals, interrupted,
                      machine_at_start, raise_nofile, report_failures)


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


def main(cfg, wanted, wanted_gens, build, build_rel, out_dir):
    """cfg: the mode's settings with --rounds and --duration applied; wanted,
    wanted_gens: the servers and generators asked for. Returns the exit status."""
    interrupt_on_signals()
    check_cpus()

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
    versions = {}
    if "nginx" in names:
        versions["nginx"] = tool_version([paths["nginx"], "-v"], r"nginx/(\S+)")
    if "h2o" in names:
        versions["h2o"] = tool_version([paths["h2o"], "--version"], r"h2o version (\S+)")
    if "wrk" in gens:
        versions["wrk"] = tool_version([paths["wrk"], "--version"], r"wrk (\S+)")
    versions = {k: v or "?" for k, v in versions.items()}

    os.sched_setaffinity(0, {LOAD_CPU})
    raise_nofile(4096)
    tmp = tempfile.mkdtemp(prefix="ritual-bench-http-")
    os.chmod(tmp, 0o755)  # read by the servers, whoever they run as
    root = os.path.join(tmp, "root")
    os.mkdir(root)
    for f, data in HTTP_FILES.items():
        with open(os.path.join(root, f), "wb") as fh:
            fh.write(data)
    script = os.path.join(tmp, "pipeline.lua")
    with open(script, "w") as f:
        f.write(WRK_PIPELINE_LUA)
    logdir = os.path.join(tmp, "logs")
    os.mkdir(logdir)

    cells = [dict(connections=cfg["connections"], file=f, size=len(HTTP_FILES[f]), pipeline=p)
             for f in cfg["files"] for p in cfg["pipelines"]]
    started = time.monotonic()
    date, invocation = date_and_invocation()
    machine, busy = machine_at_start()

    def start(s, cell):
        argv, port = http_server_spec(s, paths, root, tmp, cell)
        return HttpServer(s, argv, logdir, port).start()

    # A ritual row whose backend this build and kernel cannot run (--backend io_uring
    # falls back to epoll where io_uring is refused) is left out, with the reason.
    for s in [n for n in names if n in HTTP_RITUAL_NAMES]:
        try:
            start(s, cells[0]).stop()
        except ServerError as e:
            why = cannot_run_here(s, e)
            log(f"warning: {s} skipped: {why}")
            missing.append(f"{s} ({why})")
            names.remove(s)
    if not names:
        kill_live()
        shutil.rmtree(tmp, ignore_errors=True)
        sys.exit("bench/run: no server to run")
    log(f"http, {cfg['mode']}: {len(cells)} cells x {len(names)} servers ({', '.join(names)}) x "
        f"{len(gens)} generators ({', '.join(gens)}) x {cfg['rounds']} rounds of "
        f"{cfg['duration']:g} s; output in {out_dir}")

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
                for rnd in range(cfg["rounds"]):
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
                        rec = http_load_run(live[s], g, paths, cell, cfg["duration"], rnd + 1,
                                            script)
                        runs.append(rec)
                        log(f"{label} round {rnd + 1}/{cfg['rounds']} {s:<15} [{g:<12}] "
                            f"{http_describe(rec)}")
                        if not rec["ok"]:
                            failures.append(f"{label}, round {rnd + 1}, {s} [{g}]: "
                                            f"{rec['problem']} (`{rec['command']}`)")
            finally:
                for s, srv in live.items():
                    problem = srv.stop()
                    if problem:
                        failures.append(f"{label}: {problem}")
                        log(f"{label}: {problem}")
    except KeyboardInterrupt:
        return interrupted(tmp, out_dir)
    finally:
        kill_live()

    summary = http_summarize(runs, gens)
    elapsed = time.monotonic() - started
    bench_commands = []
    for g in gens:
        for cell in cells:
            bench_commands.append(" ".join(
                ["taskset", "-c", str(LOAD_CPU)] + http_generator_argv(
                    g, dict(paths, ritual=os.path.join(build_rel, "ritual"), wrk="wrk"), "PORT",
                    cell, cfg["duration"], "pipeline.lua")))
    doc = dict(
        date=date, invocation=invocation, elapsed_s=round(elapsed, 1), machine=machine,
        busy_before_start=busy, versions=versions, config=cfg, targets=HTTP_TARGETS,
        servers=names, missing=missing, generators=gens, generators_missing=gens_missing,
        other_load=other_load(runs),
        server_commands=http_server_cmd_templates(names, build_rel),
        bench_commands=bench_commands, summary=summary, failures=failures, runs=runs)
    chart = http_chart(out_dir, summary, names) if runs else None
    doc["chart"] = os.path.basename(chart) if chart else None
    write_json(os.path.join(out_dir, "http.json"), doc)
    md = os.path.join(out_dir, "http.md")
    http_write_md(md, doc, read_notes(md))
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"done in {elapsed:.0f} s: {md}, http.json" + (", http-cpu.png" if chart else ""))
    return report_failures(failures)
