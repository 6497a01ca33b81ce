"""The HTTP benchmark from start to finish (`bench/run http`): which servers and
generators are here, the document root, then every cell with the servers and
generators taking turns, and last http.json, http.md and http-cpu.png."""

import os
import shutil
import sys
import tempfile
import time

from .charts import http_chart
from .common import LOAD_CPU, log, other_load
from .http_config import (HTTP_FILES, HTTP_TARGETS, WRK_PIPELINE_LUA, http_generator_argv,
                          http_server_cmd_templates, http_server_spec)
from .http_load import HttpServer, http_describe, http_load_run
from .http_report import http_summarize, http_write_md
from .http_session import drop_unrunnable, find_tools, make_root, peer_versions, run_cells
from .report import read_notes, write_json
from .session import (check_cpus, date_and_invocation, interrupt_on_signals, interrupted,
                      machine_at_start, raise_nofile, report_failures)


def main(cfg, wanted, wanted_gens, build, build_rel, out_dir):
    """cfg: the mode's settings with --rounds and --duration applied; wanted,
    wanted_gens: the servers and generators asked for. Returns the exit status."""
    interrupt_on_signals()
    check_cpus()

    paths, names, missing, gens, gens_missing = find_tools(build, wanted, wanted_gens)
    versions = peer_versions(paths, names, gens)

    os.sched_setaffinity(0, {LOAD_CPU})
    raise_nofile(4096)
    tmp = tempfile.mkdtemp(prefix="ritual-bench-http-")
    os.chmod(tmp, 0o755)  # read by the servers, whoever they run as
    root = make_root(tmp, HTTP_FILES)
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

    if not drop_unrunnable(names, missing, start, cells[0]):
        shutil.rmtree(tmp, ignore_errors=True)
        sys.exit("bench/run: no server to run")
    log(f"http, {cfg['mode']}: {len(cells)} cells x {len(names)} servers ({', '.join(names)}) x "
        f"{len(gens)} generators ({', '.join(gens)}) x {cfg['rounds']} rounds of "
        f"{cfg['duration']:g} s; output in {out_dir}")

    def load_run(server, gen, cell, rnd):
        return http_load_run(server, gen, paths, cell, cfg["duration"], rnd, script)

    try:
        runs, failures = run_cells(cells, names, gens, cfg["rounds"], start, load_run,
                                   http_describe)
    except KeyboardInterrupt:
        return interrupted(tmp, out_dir)

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
