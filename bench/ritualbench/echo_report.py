"""echo.md: the summary and the issue's targets, the CPU per message of every cell
and server, the per-cell figures, the idle test, the cross-check, the scaling
section, the failures and the exact commands."""

from .common import LOAD_CPU, SERVER_CPU, cell_short, fmt, plural
from .echo_config import OWN_FLOOR, PEERS, TARGETS, cell_name
from .echo_scaling import scaling_md
from .echo_summary import verdict
from .report import failures_lines, head_lines


def targets_md(doc):
    """The summary of echo.md: the issue's targets, each with what was measured and
    met/missed, then ritual's like-for-like ratios in every cell."""
    cfg, summary = doc["config"], doc["summary"]
    targets = doc.get("targets") or []
    L = []
    w = L.append
    conns = " and ".join(f"{n:,}" for n in TARGETS["connections"])
    w("## Summary: ritual's backends against the floors, and the targets\n")
    w(f"Server CPU per message, least of {plural(cfg['rounds'], 'round')}, as ratios: "
      "ritual-io_uring against the io_uring floor and against the better of "
      f"{' and '.join(PEERS)}, ritual-epoll against the epoll floor (below 1: ritual is "
      f"cheaper). The targets apply to the cells with {conns} connections at pipeline "
      f"{TARGETS['pipeline']}, whatever the message size; other cells show the ratios "
      "without a verdict.")
    if cfg["mode"] == "quick-check":
        w("\n**Quick-check mode: short runs of one cell. These verdicts test the script, "
          "not ritual.**")
    elif cfg["rounds"] < 3:
        w(f"\nOnly {plural(cfg['rounds'], 'round')} per cell: a verdict within several "
          "percent of its limit says little.")
    else:
        w("\nA verdict within a few percent of its limit is within the noise (see above).")
    w("")
    for t in targets:
        v = t["verdict"]
        mark = f"**{v}**" if v in ("met", "missed") else v
        if t["target"] == "idle_rss_io_uring_below_epoll":
            u, e = t["io_uring"], t["epoll"]
            got = f" ({t['why_not_measured']})" if t.get("why_not_measured") else ""
            if v != "not measured":
                got = f": io_uring {u:,.0f} bytes, epoll {e:,.0f} bytes" + (
                    f" ({u / e:.2f}x)" if e > 0 and u >= 0 else "")
            w(f"- RSS per idle connection lower on io_uring than on epoll "
              f"({cfg['idle_conns']:,} idle connections, the idle test below): {mark}{got}.")
            continue
        several = len(t["cells"]) > 1  # then say which cells missed
        got = "; ".join(
            f"{m['value']:.3f} at {m['cell']}" +
            (f" against {m['best_peer']}" if m.get("best_peer") else "") +
            (f" ({m['verdict']})" if several else "") for m in t["cells"])
        head = ("ritual-io_uring within 5% of floor-uring" if t["target"] ==
                "io_uring_vs_floor_uring" else
                f"ritual-io_uring at most {t['limit']:g}x the better of {' and '.join(PEERS)}")
        w(f"- {head} (ratio <= {t['limit']:g}) at {conns} connections, pipeline "
          f"{TARGETS['pipeline']}: {mark}" +
          (f": {got}." if got else f" ({t.get('why_not_measured') or 'no figure'})."))
    w("")
    w("The issue gives the first two as one target (within 5% of the floor, \"i.e.\" at "
      "most 0.9x the better peer); they are checked separately, since they agree only "
      "where floor-uring itself is at most "
      f"{TARGETS['uring_vs_best_peer'] / TARGETS['uring_vs_floor_uring']:.2f}x the better "
      f"peer ({TARGETS['uring_vs_best_peer']:g} / {TARGETS['uring_vs_floor_uring']:g}): the "
      "last column shows where it is.\n")
    w("| cell | ritual-io_uring / floor-uring | ritual-io_uring / best of libuv, libev | "
      "ritual-epoll / floor-epoll | floor-uring / best of libuv, libev |")
    w("|---|---:|---:|---:|---:|")
    for c in summary.values():
        r, sv = c["ritual"], c["servers"]

        def with_verdict(v, limit, peer=False):
            if v is None:
                return "-"
            out = f"{v:.3f}" + (f" against {c['best_peer']}" if peer and c.get("best_peer")
                                else "")
            return out + (f" ({verdict(v, limit)}: <= {limit:g})" if c["target_cell"] else "")
        fu = (sv.get("floor-uring") or {}).get("vs_best_peer")
        w(f"| {cell_short(c['cell'])} | "
          f"{with_verdict(r['io_uring_vs_floor_uring'], TARGETS['uring_vs_floor_uring'])} | "
          f"{with_verdict(r['io_uring_vs_best_peer'], TARGETS['uring_vs_best_peer'], True)} | "
          f"{fmt(r['epoll_vs_floor_epoll'], '.3f')} | {fmt(fu, '.3f')} |")
    w("")
    return L


def write_md(path, doc, notes):
    cfg, summary = doc["config"], doc["summary"]
    servers = doc["servers"]
    rounds = cfg["rounds"]
    L = head_lines("Echo benchmark: ritual, libuv, libevent, libev and the bare floors",
                   "bench/run", doc, notes)
    w = L.append
    env = doc.get("ritual_backend_env")
    rows = [s for s in servers if s.startswith("ritual-")]
    w(f"- Servers pinned to CPU {SERVER_CPU}, load generators to CPU {LOAD_CPU} (`taskset`). " +
      ("ritual runs as one row per backend: " + ", ".join(
          f"`{s}` (`ritual echo --backend {s[len('ritual-'):]}`)" for s in rows) +
       "; each one checked, once started, to hold the descriptors of that backend (io_uring "
       "rings, an epoll instance, or neither for poll). " if rows else "") +
      "The generator, `ritual bench echo`, runs on libritual's default backend (auto: "
      "io_uring where the kernel allows it, else epoll" +
      (f"; here RITUAL_BACKEND={env} in the environment" if env else "") + ").")
    braces = lambda xs: "{" + ", ".join(f"{x:,}" for x in xs) + "}"
    w(f"- Matrix: connections {braces(cfg['connections'])} x size {braces(cfg['sizes'])} B x "
      f"pipeline {braces(cfg['pipelines'])}; {plural(rounds, 'round')} of {cfg['duration']:g} s "
      "per server and cell. "
      "Within a cell the servers take turns, and the order rotates every round. Each server "
      "is started fresh for each cell and serves all of that cell's rounds (the servers "
      "waiting for their turn sleep in the kernel and cost nothing).")
    ol = doc.get("other_load")
    if ol:
        w(f"- CPU used during the load runs by neither the server nor the generator (other "
          f"processes, interrupts): median {ol['median']:.3f} cores, at most {ol['max']:.3f}"
          f"{'; runs above 0.05 cores were disturbed' if ol['max'] > 0.05 else ''}.")
    missing = doc.get("missing", [])
    if missing:
        why = doc.get("missing_why") or {}
        w("- Not run: " + "; ".join(f"{m} ({why.get(m, 'binary missing')})"
                                    for m in missing) + ".")
    w("")
    w("## How to read this\n")
    spread = doc.get("spread")
    w("**Server CPU per message is the figure that matters.** On a 2-core machine the "
      "generator has one core and the server the other, so throughput is bound by the "
      "generator and says little about the server; what the server spends per message "
      "(the on-CPU nanoseconds of all its threads before and after each run, divided by "
      "the messages the generator counted) is what differs between servers. That is the "
      "kernel's per-thread `sum_exec_runtime`, the first field of "
      "`/proc/PID/task/*/schedstat`, read through the process's CPU-time clock "
      "(`clock_gettime` on the clock of `clock_getcpuclockid(PID)`), which also keeps the "
      "time of threads that end during the run, such as io_uring workers; the per-thread "
      "schedstat sum is kept in `echo.json` as a cross-check.\n")
    w("Run-to-run noise on this machine was put at about +-6%" +
      (f"; in this run the rounds of one server in one cell spread by a median of "
       f"{spread['median']:.0%} (largest over least, minus 1), at most {spread['max']:.0%}"
       if spread else "") +
      f". Hence the **least** CPU per message of the {plural(rounds, 'round')}, the round "
      "that interference (other work, cache and frequency effects, the server catching up "
      "in smaller batches) inflated least; throughput and latency are medians. Differences "
      "of a few percent between servers are within the noise.\n")
    w("The server's CPU is taken over the generator's whole run, so it also covers "
      "accepting and closing the connections and the messages still in flight when the "
      "measured window closes (at most connections x pipeline): a bias of a few percent in "
      "the largest cells, the same for every server, so the ratios stand. The generator's "
      "own CPU per message is shown beside it (`ritual bench` reports it for its measured "
      "window): when it is near the server's, the generator is the bottleneck. Ratios "
      "compare with the two bare floors, in the same cell: `floor-epoll` (one read and one "
      "write per ready socket, the least an epoll server can do) and `floor-uring` (a "
      "multishot recv per connection into provided buffers, each buffer sent back as it "
      "is, one submit-and-wait per turn: the least an io_uring server can do); and with the "
      "better of libuv and libev; below 1 is cheaper. Every row is compared with both "
      "floors; like for like, ritual-io_uring goes with floor-uring and ritual-epoll and "
      "ritual-poll with floor-epoll (those ratios are in bold in the per-cell table). "
      "\"Other load\" is the CPU time, from "
      "`/proc/stat`, that neither the server nor the generator used during a run (other "
      "processes, interrupts): above about 0.05 cores the run was disturbed.\n")

    L.extend(targets_md(doc))

    # the headline: server CPU per message, cells x servers
    w(f"## Server CPU per message (us, least of {plural(rounds, 'round')})\n")
    if doc.get("chart"):
        w("![server CPU per message](echo-cpu.png)\n")
    w("| cell | " + " | ".join(servers) + " |")
    w("|---|" + "---:|" * len(servers))
    for c in summary.values():
        row = []
        for s in servers:
            x = c["servers"].get(s)
            if not x:
                row.append("-")
                continue
            row.append(fmt(x["server_cpu_us_per_msg"], ".3f", "FAILED") +
                       (" (!)" if x["failed"] and x["server_cpu_us_per_msg"] else ""))
        w(f"| {cell_name(c['cell'])} | " + " | ".join(row) + " |")
    w("")
    if any(x["failed"] for c in summary.values() for x in c["servers"].values()):
        w("(!) some rounds of this cell failed for this server (FAILED: all of them): "
          "see Failures.\n")

    w("## Per cell\n")
    w("Throughput and latency: median of the rounds. CPU: least of the rounds. "
      "Latency from `ritual bench` (closed loop).\n")
    w("| cell | server | msg/s | p50 us | p99 us | server CPU us/msg | vs floor-epoll | "
      "vs floor-uring | vs best of libuv/libev | generator CPU us/msg | "
      "other load, cores (max) | rounds ok |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in summary.values():
        for s in servers:
            x = c["servers"].get(s)
            if not x:
                continue
            mark = " **(!)**" if x["failed"] else ""

            def ratio(floor):  # in bold where it is this ritual row's own floor
                v = fmt(x.get(f"vs_{floor.replace('-', '_')}"), ".3f")
                return f"**{v}**" if OWN_FLOOR.get(s) == floor and v != "-" else v
            w(f"| {cell_short(c['cell'])} | {s}{mark} | {fmt(x['messages_per_s'], ',.0f')} | "
              f"{fmt(x['p50_us'], '.1f')} | {fmt(x['p99_us'], '.1f')} | "
              f"{fmt(x['server_cpu_us_per_msg'], '.3f')} | {ratio('floor-epoll')} | "
              f"{ratio('floor-uring')} | "
              f"{fmt(x['vs_best_peer'], '.3f')} | {fmt(x['generator_cpu_us_per_msg'], '.3f')} | "
              f"{fmt(x['other_cpu_cores_max'], '.2f')} | {x['ok']}/{x['runs']} |")
    w("")

    idle = doc.get("idle") or []
    w(f"## Idle connections ({cfg['idle_conns']:,})\n")
    if idle:
        w(f"The script opens {cfg['idle_conns']:,} connections in batches of 500 "
          "(non-blocking connects; each one echoes one byte, so it is certainly accepted), "
          "after one warm-up connection. RSS is the server's `VmRSS` before and after: user "
          "space only, the kernel's socket memory is not in it. Then the connections stay "
          f"idle for {cfg['idle_hold']:g} s and the server's CPU time over that hold is "
          "divided by connections and seconds. One row per ritual backend, each keeping "
          "ritual's default idle timeout (300 s) here, so every connection has a timer "
          "armed. On io_uring (ritual-io_uring, floor-uring) each connection's one-byte echo is "
          "received into a buffer of the loop's provided-buffer ring, and the pages that "
          "touches count here too: that memory is shared by all the connections and bounded "
          "by the ring, so its share per connection falls as connections grow; compare runs "
          "with the same number of idle connections.\n")
        w("| server | connections | RSS before (KiB) | RSS after (KiB) | RSS per connection "
          "(bytes) | CPU during the hold (us) | CPU per connection per second (ns) |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        for r in idle:
            mark = " **(!)**" if not r["ok"] else ""
            kib = lambda v: fmt(v / 1024 if v else None, ",.0f")
            w(f"| {r['server']}{mark} | {fmt(r.get('established'), ',')} | "
              f"{kib(r.get('rss_before'))} | {kib(r.get('rss_after'))} | "
              f"{fmt(r.get('rss_per_conn_bytes'), ',.0f')} | "
              f"{fmt(r['cpu_ns'] / 1000 if r.get('cpu_ns') is not None else None, ',.1f')} | "
              f"{fmt(r.get('cpu_ns_per_conn_per_s'), '.3f')} |")
        w("")
    else:
        w("Not run.\n")

    cross = doc.get("crosscheck")
    w("## Cross-check with an independent generator\n")
    if cross and cross.get("summary"):
        cc = cross["cell"]
        w(f"Cell {cell_name(cc)}, {plural(rounds, 'round')}, generators alternating: "
          "`ritual bench` "
          "and `bench/tools/pingpong` (plain epoll, not built on libritual; one message in "
          "flight per connection; checks every echoed byte). If `ritual bench` flattered "
          "ritual, ritual's figures would move between the two columns and the peer's "
          "would not.\n")
        w("| server | msg/s, ritual bench | msg/s, pingpong | server CPU us/msg, ritual bench "
          "| server CPU us/msg, pingpong | pingpong / ritual bench | other load, cores (max) |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        for s, g in cross["summary"].items():
            a, b = g.get("ritual-bench", {}), g.get("pingpong", {})
            ra, rb = a.get("server_cpu_us_per_msg"), b.get("server_cpu_us_per_msg")
            other = max([x["other_cpu_cores_max"] for x in (a, b)
                         if x.get("other_cpu_cores_max") is not None], default=None)
            w(f"| {s} | {fmt(a.get('messages_per_s'), ',.0f')} | "
              f"{fmt(b.get('messages_per_s'), ',.0f')} | {fmt(ra, '.3f')} | {fmt(rb, '.3f')} | "
              f"{fmt(rb / ra if ra and rb else None, '.3f')} | {fmt(other, '.2f')} |")
        w("")
        gs = cross.get("generator_cost")
        if gs:
            w(f"### What the generator costs, against {gs['server']}\n")
            w("Both processes' CPU per message in the same runs (least of the rounds): the "
              "server's as above; the generator's for its whole process (rusage; "
              "pingpong's from its own schedstat) and, for `ritual bench`, as it reports "
              "itself for the measured window. A generator cheaper than the server means the "
              "server, not the generator, is what the CPU figures measure.\n")
            w("| generator | server CPU us/msg | generator CPU us/msg (process) | "
              "generator CPU us/msg (own report) | generator / server |")
            w("|---|---:|---:|---:|---:|")
            for gname, x in gs["generators"].items():
                sv, gp = x.get("server_cpu_us_per_msg"), x.get("generator_cpu_us_per_msg_process")
                w(f"| {gname} | {fmt(sv, '.3f')} | {fmt(gp, '.3f')} | "
                  f"{fmt(x.get('generator_cpu_us_per_msg_own'), '.3f')} | "
                  f"{fmt(gp / sv if sv and gp else None, '.2f')} |")
            w("")
    else:
        w("Not run" + (f": {cross['skipped']}" if cross and cross.get("skipped") else "") +
          ".\n")

    L.extend(scaling_md(doc.get("scaling")))

    L.extend(failures_lines(
        doc, "None: every run exited 0 with no errors, every echoed byte checked."))

    w("## Commands\n")
    w("Servers (`PORT` 0: the server picks one and prints it):\n")
    w("```")
    for s in doc["server_commands"]:
        w(s)
    w("```\n")
    w("Load, one run per server, cell and round (`PORT` from the server's `listening on` "
      "line):\n")
    w("```")
    for s in doc["bench_commands"]:
        w(s)
    w("```\n")
    w(f"Raw runs and summaries: [echo.json](echo.json). Reproduce: `{doc['invocation']}` "
      "after `cmake -S . -B build -DRITUAL_BENCH=ON && cmake --build build`.")
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")
