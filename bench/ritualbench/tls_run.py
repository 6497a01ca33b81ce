"""The TLS benchmark from start to finish (`bench/run http --tls`): which servers are
here, the certificate and the document root, then every cell with the servers taking
turns, and last tls.json, tls.md and tls-cpu.png."""

import os
import shutil
import sys
import tempfile
import time

from .charts import tls_chart
from .common import LOAD_CPU, cell_short, log, other_load
from .http_config import http_generator_argv
from .http_load import HttpServer
from .http_session import (drop_unrunnable, find_tools, make_root, peer_versions, run_cells,
                           tool_version)
from .report import read_notes, write_json
from .session import (check_cpus, date_and_invocation, interrupt_on_signals, interrupted,
                      machine_at_start, raise_nofile, report_failures)
from .tls_config import (TLS_FILES, TLS_GENERATORS, TLS_TARGETS, make_cert, tls_cells,
                         tls_server_cmd_templates, tls_server_spec)
from .tls_load import tls_describe, tls_load_run, tls_probe
from .tls_report import tls_chart_panels, tls_summarize, tls_write_md


def main(cfg, wanted, build, build_rel, out_dir):
    """cfg: the mode's settings with --rounds and --duration applied; wanted: the
    servers asked for. Returns the exit status."""
    interrupt_on_signals()
    check_cpus()
    if not shutil.which("openssl"):
        sys.exit("bench/run: openssl not found (apt-get install openssl): it makes the "
                 "certificate")

    paths, names, missing, gens, gens_missing = find_tools(build, wanted, TLS_GENERATORS)
    versions = peer_versions(paths, names, gens)
    versions["openssl"] = tool_version(["openssl", "version"], r"OpenSSL (\S+)") or "?"

    os.sched_setaffinity(0, {LOAD_CPU})
    raise_nofile(4096)
    tmp = tempfile.mkdtemp(prefix="ritual-bench-tls-")
    os.chmod(tmp, 0o755)  # read by the servers, whoever they run as
    try:
        cert, key = make_cert(tmp)
    except (OSError, ValueError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        sys.exit(f"bench/run: could not make the certificate: {e}")
    root = make_root(tmp, TLS_FILES)
    logdir = os.path.join(tmp, "logs")
    os.mkdir(logdir)

    cells = tls_cells(cfg)
    started = time.monotonic()
    date, invocation = date_and_invocation()
    machine, busy = machine_at_start()
    negotiated = {}

    def start(s, cell):
        argv, port = tls_server_spec(s, paths, root, tmp, cell, cert, key)
        srv = HttpServer(s, argv, logdir, port, tls=True).start()
        if s not in negotiated:
            negotiated[s] = tls_probe(srv.port)
        return srv

    if not drop_unrunnable(names, missing, start, cells[0]):
        shutil.rmtree(tmp, ignore_errors=True)
        sys.exit("bench/run: no server to run")
    log(f"http --tls, {cfg['mode']}: {len(cells)} cells x {len(names)} servers "
        f"({', '.join(names)}) x {cfg['rounds']} rounds of {cfg['duration']:g} s; "
        f"output in {out_dir}")

    def load_run(server, gen, cell, rnd):
        return tls_load_run(server, gen, paths, cell, cfg["duration"], rnd, None)

    try:
        runs, failures = run_cells(cells, names, gens, cfg["rounds"], start, load_run,
                                   tls_describe)
    except KeyboardInterrupt:
        return interrupted(tmp, out_dir)

    summary = tls_summarize(runs, gens)
    elapsed = time.monotonic() - started
    bench_commands = [" ".join(["taskset", "-c", str(LOAD_CPU)] + http_generator_argv(
        g, dict(paths, ritual=os.path.join(build_rel, "ritual")), "PORT", cell,
        cfg["duration"], None)) for g in gens for cell in cells]
    doc = dict(
        date=date, invocation=invocation, elapsed_s=round(elapsed, 1), machine=machine,
        busy_before_start=busy, versions=versions,
        negotiated={s: negotiated.get(s) for s in names}, config=cfg, cells=cells,
        targets=TLS_TARGETS, servers=names, missing=missing, generators=gens,
        generators_missing=gens_missing, other_load=other_load(runs),
        server_commands=tls_server_cmd_templates(names, build_rel),
        bench_commands=bench_commands, summary=summary, failures=failures,
        flags=[f"{cell_short(r['cell'])}, round {r['round']}, {r['server']}: {r['flag']}"
               for r in runs if r.get("flag")], runs=runs)
    chart = tls_chart(out_dir, tls_chart_panels(next(iter(summary.values())), names),
                      names) if runs and summary else None
    doc["chart"] = os.path.basename(chart) if chart else None
    write_json(os.path.join(out_dir, "tls.json"), doc)
    md = os.path.join(out_dir, "tls.md")
    tls_write_md(md, doc, read_notes(md))
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"done in {elapsed:.0f} s: {md}, tls.json" + (", tls-cpu.png" if chart else ""))
    return report_failures(failures)
