"""The scaling section of the echo benchmark: ritual with one and two workers, and
each server that takes --reuseport as one and two processes sharing a port, with
servers and generator all allowed both CPUs; its part of echo.md (between
<!-- scaling --> and <!-- /scaling -->), and --only-scaling, which runs just this
and updates just that part and echo.json's "scaling"."""

import json
import os
import re
import shutil
import time

from .common import HOST, cell_short, fmt, least, log, median, plural
from .echo_config import (RITUAL_LOAD_ARGS, SCALING_CPUS, SCALING_GEN_THREADS,
                          SCALING_REUSEPORT, SCALING_RITUAL_BACKENDS, SERVER_NAMES, cell_key)
from .echo_load import describe, generator_argv, load_run
from .echo_summary import round_spreads
from .machine import machine_info
from .report import write_json
from .servers import ServerError, ServerGroup, kill_live
from .session import date_and_invocation, interrupted


def scaling_variants(build, wanted):
    """(label, family, processes, workers, argv_for_port) for each scaling row whose
    binary is built: ritual-io_uring and ritual-epoll with 1 and 2 workers; each
    --reuseport server with 1 and 2 processes (x1 takes --reuseport too, so only the
    count differs)."""
    out = []
    ritual = os.path.join(build, "ritual")
    for b in SCALING_RITUAL_BACKENDS:
        family = f"ritual-{b}"
        if family not in wanted or not os.access(ritual, os.X_OK):
            continue
        for n in (1, 2):
            out.append((f"{family} x{n}", family, 1, n,
                        lambda port, n=n, b=b: [ritual, "echo", "--backend", b, "--listen",
                                                f"{HOST}:{port}"]
                        + RITUAL_LOAD_ARGS + ["--workers", str(n)]))  # the last --workers wins
    for name, binary in SCALING_REUSEPORT:
        path = os.path.join(build, binary)
        if name not in wanted or not os.access(path, os.X_OK):
            continue
        for n in (1, 2):
            out.append((f"{name} x{n}", name, n, 1,
                        lambda port, path=path: [path, "--listen", f"{HOST}:{port}",
                                                 "--reuseport"]))
    return out


def run_scaling(build, wanted, scfg, logdir, build_rel):
    """The scaling section: every variant, each cell, rounds alternating with the order
    rotating. Returns its document (runs, summary, failures, commands)."""
    variants = scaling_variants(build, wanted)
    cells = [dict(connections=scfg["connections"], size=scfg["size"], pipeline=p)
             for p in scfg["pipelines"]]
    runs, failures = [], []
    for i, cell in enumerate(cells):
        label = f"[scaling {i + 1}/{len(cells)} {cell_short(cell)}]"
        live = {}
        try:
            for v in variants:
                try:
                    live[v[0]] = ServerGroup(v[0], v[4], v[2], logdir, SCALING_CPUS).start()
                except ServerError as e:
                    failures.append(f"{label}: {v[0]}: could not start: {e}")
                    log(f"{label} {v[0]}: could not start: {e}")
            order = [v for v in variants if v[0] in live]
            for rnd in range(scfg["rounds"]):
                k = rnd % len(order) if order else 0
                for v in order[k:] + order[:k]:
                    name = v[0]
                    if not live[name].alive():
                        live[name].kill()
                        try:
                            live[name] = ServerGroup(name, v[4], v[2], logdir,
                                                     SCALING_CPUS).start()
                        except ServerError as e:
                            failures.append(f"{label}: {name}: could not restart: {e}")
                            continue
                    rec = load_run(live[name], "ritual-bench", build, cell, scfg["duration"],
                                   "scaling", rnd + 1, gen_cpus=SCALING_CPUS,
                                   threads=SCALING_GEN_THREADS)
                    rec.update(family=v[1], processes=v[2], workers=v[3])
                    runs.append(rec)
                    log(f"{label} round {rnd + 1}/{scfg['rounds']} {name:<18} {describe(rec)}")
                    if not rec["ok"]:
                        failures.append(f"{label}, round {rnd + 1}, {name}: {rec['problem']} "
                                        f"(`{rec['command']}`)")
        finally:
            for name, g in live.items():
                problem = g.stop()
                if problem:
                    failures.append(f"{label}: {problem}")
                    log(f"{label}: {problem}")
    summary = {}
    for cell in cells:
        rows = {}
        for v in variants:
            mine = [r for r in runs if r["server"] == v[0] and
                    cell_key(r["cell"]) == cell_key(cell)]
            ok = [r for r in mine if r["ok"]]
            rows[v[0]] = dict(
                family=v[1], processes=v[2], workers=v[3], runs=len(mine), ok=len(ok),
                failed=len(ok) < len(mine) or not ok,
                messages_per_s=median([r["result"]["messages_per_s"] for r in ok]),
                server_cpu_us_per_msg=least([r["server_cpu_us_per_msg"] for r in ok]),
                server_cpu_us_per_msg_median=median([r["server_cpu_us_per_msg"] for r in ok]),
                generator_cpu_us_per_msg=least(
                    [r["generator_cpu_us_per_msg_process"] for r in ok]),
                generator_cpu_us_per_msg_own=least(
                    [r["generator_cpu_us_per_msg"] for r in ok
                     if r.get("generator_cpu_us_per_msg")]),
                other_cpu_cores_max=max([r["other_cpu_cores"] for r in ok
                                         if r.get("other_cpu_cores") is not None],
                                        default=None))
        for row in rows.values():
            one = rows.get(f"{row['family']} x1", {}).get("server_cpu_us_per_msg")
            v = row["server_cpu_us_per_msg"]
            row["vs_x1"] = v / one if v and one else None
        summary[cell_key(cell)] = dict(cell=cell, rows=rows)
    commands = ["# ritual-B xN (B: " + ", ".join(SCALING_RITUAL_BACKENDS) + "): " + " ".join(
        ["taskset", "-c", SCALING_CPUS, os.path.join(build_rel, "ritual"), "echo", "--backend",
         "B", "--listen", f"{HOST}:0"] + RITUAL_LOAD_ARGS + ["--workers", "N"])]
    commands.append("# PEER xN: N processes, the first on port 0, the others on its port:")
    for name, binary in SCALING_REUSEPORT:
        commands.append(" ".join(["taskset", "-c", SCALING_CPUS, os.path.join(build_rel, binary),
                                  "--listen", f"{HOST}:0", "--reuseport"]))
    commands.append("# load, one run per row, cell and round:")
    for cell in cells:
        commands.append(" ".join(["taskset", "-c", SCALING_CPUS] + generator_argv(
            "ritual-bench", build_rel, "PORT", cell, scfg["duration"], SCALING_GEN_THREADS)))
    return dict(config=dict(scfg, cpus=SCALING_CPUS, generator_threads=SCALING_GEN_THREADS),
                variants=[v[0] for v in variants],
                skipped=[n for n in SERVER_NAMES if n not in {v[1] for v in variants}],
                summary=summary, failures=failures, commands=commands, runs=runs)


def scaling_md(sc):
    """The scaling section of echo.md, between its markers."""
    L = ["<!-- scaling -->"]
    w = L.append
    w("## Scaling: one and two workers or processes\n")
    if not sc:
        w("Not run.\n")
        w("<!-- /scaling -->")
        return L
    cfg = sc["config"]
    if sc.get("date"):
        w(f"Run on {sc['date']} (`{sc['invocation']}`), {sc['elapsed_s']:.0f} s.\n")
    w("**On this 2-core machine the generator competes with the servers' workers for the "
      "same two cores, so messages/s cannot show scaling: CPU per message is the figure "
      "that matters here**, and what it shows is whether two workers (or processes) cost "
      "more per message than one. A second worker cannot add throughput when the generator "
      "already takes about half of the machine; it can only add cost (more wake-ups, "
      "smaller batches per wake-up, cache lines moving between cores) or not.\n")
    w(f"Servers and generator are both allowed CPUs {cfg['cpus']} (`taskset -c "
      f"{cfg['cpus']}`), not pinned to one each; the generator is `ritual bench` with "
      f"{cfg['generator_threads']} threads. `ritual-B xN` is `ritual echo --backend B "
      "--workers N` (accept mode reuseport: one listening socket per worker), for B = " +
      " and ".join(SCALING_RITUAL_BACKENDS) + "; `PEER xN` is N processes of the "
      "peer on one port with SO_REUSEPORT (`--reuseport`; x1 takes it too, so only the count "
      "differs), the second started on the port the first printed. Server CPU is the sum "
      "over all the server's processes and threads, divided by the messages; the least "
      f"over {plural(cfg['rounds'], 'round')} of {cfg['duration']:g} s. Generator CPU is its "
      "whole process (rusage, all threads), least of the rounds. msg/s: median. "
      "x2 / x1: server CPU per message against the same server's x1 row; above 1, the "
      "second worker or process costs more per message.")
    w("")
    if sc.get("skipped"):
        has = {f"ritual-{b}" for b in SCALING_RITUAL_BACKENDS} | {
            n for n, _ in SCALING_REUSEPORT}

        def why(n):
            if n in has:
                return "not built, not selected or not available here"
            if n.startswith("ritual-"):
                return "no scaling rows for this backend"
            return "no `--reuseport`"
        w("Not in this table: " + ", ".join(f"{n} ({why(n)})" for n in sc["skipped"]) + ".\n")
    w("| cell | server | processes x workers | msg/s | server CPU us/msg | x2 / x1 | "
      "generator CPU us/msg | other load, cores (max) | rounds ok |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for c in sc["summary"].values():
        for name, x in c["rows"].items():
            mark = " **(!)**" if x["failed"] else ""
            w(f"| {cell_short(c['cell'])} | {name}{mark} | {x['processes']} x {x['workers']} | "
              f"{fmt(x['messages_per_s'], ',.0f')} | {fmt(x['server_cpu_us_per_msg'], '.3f')} | "
              f"{fmt(x['vs_x1'], '.3f') if name.endswith('x2') else ''} | "
              f"{fmt(x['generator_cpu_us_per_msg'], '.3f')} | "
              f"{fmt(x['other_cpu_cores_max'], '.2f')} | {x['ok']}/{x['runs']} |")
    w("")
    said = []
    for c in sc["summary"].values():
        for name, x in c["rows"].items():
            if name.endswith("x2") and x["vs_x1"]:
                said.append(f"{x['family']} {cell_short(c['cell'])}: "
                            f"{(x['vs_x1'] - 1) * 100:+.0f}%")
    if said:
        spreads = round_spreads(sc.get("runs", []), sc["summary"], "rows")
        w("Server CPU per message, two against one (negative: the second worker or process "
          "made each message cheaper): " + "; ".join(said) + "." + (
              f" Unpinned, the figures are noisier than the matrix's: the rounds of one row "
              f"spread by a median of {median(spreads):.0%} (largest over least, minus 1), "
              f"at most {max(spreads):.0%}, so only differences well beyond that say "
              "anything." if spreads else " Differences of a few percent are within the "
              "noise.") + "\n")
    if sc.get("failures"):
        w("Failures in this section:\n")
        for f in sc["failures"]:
            w(f"- {f}")
        w("")
    w("Commands:\n")
    w("```")
    for line in sc["commands"]:
        w(line)
    w("```")
    w("<!-- /scaling -->\n")
    return L


def update_scaling_md(path, sc):
    """Put the scaling section into an existing echo.md: between its markers, or else
    before "## Failures", or else at the end."""
    with open(path) as f:
        text = f.read()
    block = "\n".join(scaling_md(sc)) + "\n"
    m = re.search(r"<!-- scaling -->.*?<!-- /scaling -->\n*", text, re.S)
    if m:
        text = text[:m.start()] + block + text[m.end():]
    elif "\n## Failures\n" in text:
        i = text.index("\n## Failures\n") + 1
        text = text[:i] + block + text[i:]
    else:
        text = text.rstrip("\n") + "\n\n" + block
    with open(path, "w") as f:
        f.write(text)



def only_scaling(build, build_rel, wanted, scfg, logdir, out_dir):
    """--only-scaling: run the scaling section and put it into the existing echo.md
    and echo.json (created if missing), leaving the rest of them as they are."""
    started = time.monotonic()
    date, invocation = date_and_invocation()
    log(f"only the scaling section: {len(scfg['pipelines'])} cells x {scfg['rounds']} rounds "
        f"of {scfg['duration']:g} s; servers and generator on CPUs {SCALING_CPUS}; "
        f"output in {out_dir}")
    try:
        sc = run_scaling(build, wanted, scfg, logdir, build_rel)
    except KeyboardInterrupt:
        return interrupted(logdir, out_dir)
    finally:
        kill_live()
    sc.update(date=date, invocation=invocation,
              elapsed_s=round(time.monotonic() - started, 1), machine=machine_info())
    jpath, md = os.path.join(out_dir, "echo.json"), os.path.join(out_dir, "echo.md")
    doc = {}
    try:
        with open(jpath) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        pass
    doc["scaling"] = sc
    write_json(jpath, doc)
    if not os.path.exists(md):
        with open(md, "w") as f:
            f.write("# Echo benchmark: ritual, libuv, libevent, libev and the bare floors\n\n")
    update_scaling_md(md, sc)
    shutil.rmtree(logdir, ignore_errors=True)
    log(f"done in {sc['elapsed_s']:.0f} s: {md} (scaling section), echo.json (\"scaling\")")
    for f in sc["failures"]:
        log(f"  {f}")
    return 1 if sc["failures"] else 0
