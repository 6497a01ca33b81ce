"""The echo benchmark from start to finish (`bench/run`): the rows this build and
kernel can run, then the matrix, the idle test, the cross-check with pingpong and
the scaling section, and last echo.json, echo.md and echo-cpu.png."""

import os
import shutil
import sys
import tempfile
import time

from .charts import echo_chart
from .common import HOST, LOAD_CPU, cell_short, log, median, other_load
from .echo_config import (CROSS_CELL, CROSS_SERVERS, SCALING_CPUS, SERVERS, TARGETS,
                          server_cmd_template)
from .echo_idle import idle_test
from .echo_load import describe, generator_argv, load_run
from .echo_report import write_md
from .echo_scaling import only_scaling, run_scaling
from .echo_summary import check_targets, cross_summary, round_spreads, summarize
from .report import read_notes, write_json
from .servers import Server, ServerError, asked_backend, cannot_run_here, kill_live
from .session import (check_cpus, date_and_invocation, interrupt_on_signals, interrupted,
                      machine_at_start, raise_nofile, report_failures)


def main(cfg, scfg, wanted, build, build_rel, out_dir, only):
    """cfg, scfg: the mode's matrix and scaling settings with --rounds and --duration
    applied; wanted: the rows asked for; only: --only-scaling. Returns the exit status."""
    interrupt_on_signals()
    check_cpus()
    ritual_bin = os.path.join(build, "ritual")
    if not os.access(ritual_bin, os.X_OK):
        sys.exit(f"bench/run: {ritual_bin} not found: build first (make), or pass --build DIR")
    # Our own bookkeeping (and the idle test's client sockets) on the load CPU,
    # away from the server's.
    os.sched_setaffinity(0, {LOAD_CPU})
    nofile = raise_nofile(cfg["idle_conns"] + 1024)  # inherited by every child
    if nofile < cfg["idle_conns"] + 256:
        log(f"warning: RLIMIT_NOFILE is {nofile}: idle test reduced")
        cfg["idle_conns"] = max(100, nofile - 256)

    logdir = tempfile.mkdtemp(prefix="ritual-bench-logs-")
    servers, missing, missing_why = [], [], {}
    for name, binary, pre, load_args, idle_args in SERVERS:
        if name not in wanted:
            continue
        path = os.path.join(build, binary)
        why = None
        if not os.access(path, os.X_OK):
            why = f"{os.path.join(build_rel, binary)} not built"
            log(f"warning: {name}: {path} is missing, skipped "
                "(cmake -S . -B build -DRITUAL_BENCH=ON builds the peers and floors)")
        elif asked_backend(pre):
            # A ritual row: once, check that this build and kernel run its backend
            # (--backend io_uring falls back to epoll where io_uring is refused).
            try:
                Server(name, [path] + pre + ["--listen", f"{HOST}:0"] + load_args,
                       logdir).start().stop()
            except ServerError as e:
                why = cannot_run_here(name, e)
                log(f"warning: {name} skipped: {why}")
        if why:
            missing.append(name)
            missing_why[name] = why
        else:
            servers.append((name, binary, pre, load_args, idle_args))
    if not servers:
        shutil.rmtree(logdir, ignore_errors=True)
        sys.exit("bench/run: no server to run")
    names = [s[0] for s in servers]
    argv_of = {s[0]: [os.path.join(build, s[1])] + s[2] + ["--listen", f"{HOST}:0"] + s[3]
               for s in servers}
    idle_argv_of = {s[0]: [os.path.join(build, s[1])] + s[2] + ["--listen", f"{HOST}:0"] + s[4]
                    for s in servers}
    pingpong = os.path.join(build, "bench", "pingpong")
    have_pingpong = os.access(pingpong, os.X_OK)

    if only:
        return only_scaling(build, build_rel, [s for s in wanted if s not in missing], scfg,
                            logdir, out_dir)
    cells = [dict(connections=c, size=s, pipeline=p)
             for c in cfg["connections"] for s in cfg["sizes"] for p in cfg["pipelines"]]
    started = time.monotonic()
    date, invocation = date_and_invocation()
    machine, busy = machine_at_start()
    log(f"mode {cfg['mode']}: {len(cells)} cells x {len(names)} servers ({', '.join(names)}) x "
        f"{cfg['rounds']} rounds of {cfg['duration']:g} s; output in {out_dir}")

    runs, failures, idle, cross, scaling = [], [], [], {}, None

    def run_cell(cell, cell_servers, gens, section, label):
        """All rounds of one cell: servers (and generators) alternate, order rotating."""
        live = {}
        pairs = [(s, g) for s in cell_servers for g in gens]
        try:
            for s in cell_servers:
                try:
                    live[s] = Server(s, argv_of[s], logdir).start()
                except ServerError as e:
                    failures.append(f"{label}: {s}: could not start: {e}")
                    log(f"{label} {s}: could not start: {e}")
            for rnd in range(cfg["rounds"]):
                k = rnd % len(pairs)
                for s, g in pairs[k:] + pairs[:k]:
                    if s not in live:
                        continue
                    if not live[s].alive():  # died in an earlier round: a fresh one
                        live[s].kill()
                        try:
                            live[s] = Server(s, argv_of[s], logdir).start()
                        except ServerError as e:
                            failures.append(f"{label}: {s}: could not restart: {e}")
                            del live[s]
                            continue
                    rec = load_run(live[s], g, build, cell, cfg["duration"], section, rnd + 1)
                    runs.append(rec)
                    gl = "" if len(gens) == 1 else f" [{g}]"
                    log(f"{label} round {rnd + 1}/{cfg['rounds']} {s:<15}{gl} {describe(rec)}")
                    if not rec["ok"]:
                        failures.append(f"{label}, round {rnd + 1}, {s}{gl}: {rec['problem']} "
                                        f"(`{rec['command']}`)")
        finally:
            for s, srv in live.items():
                problem = srv.stop()
                if problem:
                    failures.append(f"{label}: {problem}")
                    log(f"{label}: {problem}")

    try:
        # 1. the matrix
        for i, cell in enumerate(cells):
            run_cell(cell, names, ["ritual-bench"], "matrix",
                     f"[cell {i + 1}/{len(cells)} {cell_short(cell)}]")

        # 2. idle connections
        for s in names:
            log(f"[idle] {s}: {cfg['idle_conns']:,} connections, hold {cfg['idle_hold']:g} s")
            rec = idle_test(s, idle_argv_of[s], cfg["idle_conns"], cfg["idle_hold"], logdir)
            idle.append(rec)
            if rec["ok"]:
                log(f"[idle] {s}: RSS {rec['rss_before'] / 1024:,.0f} -> "
                    f"{rec['rss_after'] / 1024:,.0f} KiB, {rec['rss_per_conn_bytes']:,.0f} "
                    f"bytes/conn; {rec['cpu_ns_per_conn_per_s']:.2f} ns CPU per conn per s")
            else:
                failures.append(f"idle test, {s}: {rec['problem']}")
                log(f"[idle] {s}: FAILED: {rec['problem']}")

        # 3. the cross-check
        cross_servers = [s for s in CROSS_SERVERS if s in names]
        if not have_pingpong:
            cross["skipped"] = f"{pingpong} is missing"
            log(f"warning: {pingpong} is missing: no cross-check")
        elif not cross_servers:
            cross["skipped"] = f"none of {', '.join(CROSS_SERVERS)} is among the servers run"
        else:
            cross["cell"] = dict(CROSS_CELL)
            n0 = len(runs)
            run_cell(CROSS_CELL, cross_servers, ["ritual-bench", "pingpong"], "crosscheck",
                     f"[cross-check {cell_short(CROSS_CELL)}]")
            cs = cross_summary(runs[n0:], cross_servers)
            cross["summary"] = cs
            against = "libev" if "libev" in cs else cross_servers[0]
            cross["generator_cost"] = dict(server=against, generators=cs[against])

        # 4. scaling
        log(f"[scaling] {len(scfg['pipelines'])} cells x {scfg['rounds']} rounds of "
            f"{scfg['duration']:g} s; servers and generator on CPUs {SCALING_CPUS}")
        scaling = run_scaling(build, [s for s in wanted if s not in missing], scfg, logdir,
                              build_rel)
        failures.extend(scaling["failures"])
    except KeyboardInterrupt:
        return interrupted(logdir, out_dir)
    finally:
        kill_live()

    summary = summarize([r for r in runs if r["section"] == "matrix"])
    elapsed = time.monotonic() - started
    server_commands = [server_cmd_template(s[0], s[1], s[2], s[3], build_rel) for s in servers]
    for s in servers:
        if s[3] != s[4]:  # the ritual rows: the idle test keeps the default idle timeout
            server_commands.append(f"# idle test, {s[0]}: " + server_cmd_template(
                s[0], s[1], s[2], s[4], build_rel))
    bench_commands = []
    for cell in cells:
        bench_commands.append(" ".join(["taskset", "-c", str(LOAD_CPU)] + generator_argv(
            "ritual-bench", build_rel, "PORT", cell, cfg["duration"])))
    if cross.get("cell"):
        bench_commands.append("# cross-check, alternating with the ritual bench line of "
                              "the same cell:")
        bench_commands.append(" ".join(["taskset", "-c", str(LOAD_CPU)] + generator_argv(
            "pingpong", build_rel, "PORT", CROSS_CELL, cfg["duration"])))
    spreads = round_spreads([r for r in runs if r["section"] == "matrix"], summary, "servers")
    doc = dict(
        other_load=other_load(runs),
        spread=dict(median=median(spreads), max=max(spreads)) if spreads else None,
        busy_before_start=busy, date=date, invocation=invocation,
        elapsed_s=round(elapsed, 1), machine=machine,
        config=cfg, servers=names, missing=missing, missing_why=missing_why,
        ritual_backend_env=os.environ.get("RITUAL_BACKEND") or None,
        server_commands=server_commands, bench_commands=bench_commands, summary=summary,
        targets=check_targets(summary, idle), target_limits=TARGETS, idle=idle,
        crosscheck=cross, scaling=scaling, failures=failures, runs=runs)
    chart = echo_chart(out_dir, summary, names) if summary else None
    doc["chart"] = os.path.basename(chart) if chart else None
    write_json(os.path.join(out_dir, "echo.json"), doc)
    md = os.path.join(out_dir, "echo.md")
    write_md(md, doc, read_notes(md))
    shutil.rmtree(logdir, ignore_errors=True)

    log(f"done in {elapsed:.0f} s: {md}, echo.json" + (", echo-cpu.png" if chart else ""))
    return report_failures(failures)
