"""The HTTP runs summed up (per generator, cell and server: median requests/s and
latency, least CPU per request, ratios against the floor and the better of nginx
and h2o) and written out as http.md: one table and one per-cell table per
generator, the failures, and the exact commands and configuration files."""

from .common import HOST, LOAD_CPU, SERVER_CPU, cell_short, fmt, least, median, plural
from .http_config import (H2O_CONF, HTTP_FILES, HTTP_PEERS, HTTP_RITUAL_NAMES, HTTP_TARGETS,
                          NGINX_CONF, WRK_PIPELINE_LUA, http_cell_key, http_cell_name)
from .report import failures_lines, head_lines


def http_summarize(runs, generators, target=None):
    """Per generator, per cell, per server: medians and least-of-rounds over the ok
    runs, and the ratios against the floor and the better of nginx and h2o. target:
    a cell's target against the better peer (default: HTTP_TARGETS by pipeline depth)."""
    out = {}
    for g in generators:
        cells = {}
        for r in runs:
            if r["generator"] != g:
                continue
            c = cells.setdefault(http_cell_key(r["cell"]), {"cell": r["cell"], "servers": {}})
            s = c["servers"].setdefault(r["server"], {"runs": 0, "ok": 0, "_ok": []})
            s["runs"] += 1
            if r["ok"]:
                s["ok"] += 1
                s["_ok"].append(r)
        for c in cells.values():
            for s in c["servers"].values():
                ok = s.pop("_ok")
                res = [r["result"] for r in ok]
                lat = [x.get("latency_us") or {} for x in res]
                s["failed"] = s["ok"] < s["runs"] or s["ok"] == 0
                s["requests_per_s"] = median([x["requests_per_s"] for x in res])
                s["p50_us"] = median([x["p50"] for x in lat if "p50" in x])
                s["p99_us"] = median([x["p99"] for x in lat if "p99" in x])
                s["server_cpu_us_per_req"] = least([r["server_cpu_us_per_req"] for r in ok])
                s["server_cpu_us_per_req_median"] = median(
                    [r["server_cpu_us_per_req"] for r in ok])
                s["generator_cpu_us_per_req"] = least([r["generator_cpu_us_per_req"] for r in ok])
                s["other_cpu_cores_max"] = max(
                    [r["other_cpu_cores"] for r in ok if r.get("other_cpu_cores") is not None],
                    default=None)
            sv = c["servers"]
            floor = (sv.get("floor") or {}).get("server_cpu_us_per_req")
            peers = {p: sv[p]["server_cpu_us_per_req"] for p in HTTP_PEERS
                     if p in sv and sv[p]["server_cpu_us_per_req"]}
            c["best_peer"] = min(peers, key=peers.get) if peers else None
            best = peers[c["best_peer"]] if peers else None
            c["target_vs_best_peer"] = target(c["cell"]) if target else \
                HTTP_TARGETS.get(c["cell"]["pipeline"])
            for s in sv.values():
                v = s["server_cpu_us_per_req"]
                s["vs_floor"] = v / floor if v and floor else None
                s["vs_best_peer"] = v / best if v and best else None
        out[g] = cells
    return out


def http_write_md(path, doc, notes):
    cfg, servers = doc["config"], doc["servers"]
    rounds = cfg["rounds"]
    L = head_lines("HTTP benchmark: ritual http, nginx, h2o and the bare floor",
                   "`bench/run http`", doc, notes)
    w = L.append
    w("- Versions: " + "; ".join(f"{k} {v}" for k, v in doc["versions"].items()) + ".")
    w(f"- Servers pinned to CPU {SERVER_CPU}, load generators to CPU {LOAD_CPU} (`taskset`); "
      "every server runs one thread of work (ritual `--workers 1`, nginx one process, "
      "h2o `num-threads: 1`).")
    rows = [s for s in servers if s in HTTP_RITUAL_NAMES]
    if rows:
        w("- ritual runs as one row per backend: " + ", ".join(
            f"`{s}` (`ritual http --backend {s[len('ritual-'):]}`)" for s in rows) +
          "; each one checked, once started, to hold the descriptors of that backend "
          "(io_uring rings or an epoll instance). `ritual bench http` runs on libritual's "
          "default backend (auto: io_uring where the kernel allows it, else epoll).")
    files = ", ".join(f"`{f}` ({len(HTTP_FILES[f]):,} B)" for f in cfg["files"])
    w(f"- Cells: {cfg['connections']} connections x file {{{files}}} x pipeline "
      f"{{{', '.join(str(p) for p in cfg['pipelines'])}}}, keep-alive; "
      f"{plural(rounds, 'round')} of {cfg['duration']:g} s per server, generator and cell. "
      "Within a cell the servers and generators take turns, the order rotating every round; "
      "each server is started fresh for each cell.")
    w(f"- Load: {', '.join('`' + g + '`' for g in doc['generators'])}" +
      (f" (not run: {'; '.join(doc['generators_missing'])})" if doc.get("generators_missing")
       else "") + ".")
    if doc.get("missing"):
        w(f"- Servers not run: {'; '.join(doc['missing'])}.")
    ol = doc.get("other_load")
    if ol:
        w(f"- CPU used during the load runs by neither the server nor the generator: median "
          f"{ol['median']:.3f} cores, at most {ol['max']:.3f}"
          f"{'; runs above 0.05 cores were disturbed' if ol['max'] > 0.05 else ''}.")
    w("")
    w("## How to read this\n")
    w("**Server CPU per request is the figure that matters**: on a 2-core machine the "
      "generator has one core and the server the other, so requests/s is often bound by the "
      "generator. Server CPU is the on-CPU time of all the server's threads (the kernel's "
      "`sum_exec_runtime`, read through the process's CPU-time clock, as in the echo bench) "
      "over the generator's whole run, divided by the requests the generator counted; so "
      "it also covers accepting and closing the connections. The **least** of the rounds is "
      "shown (the round that interference inflated least); requests/s and latency are "
      "medians. The generator's own CPU per request (its whole process, rusage) is shown "
      "beside it.\n")
    w("`floor` is `bench/http_floor`: a bare epoll loop that parses nothing, answers every "
      "`\\r\\n\\r\\n` with a canned `200 OK` of the cell's body size, and sends all the "
      "answers of one read with one write: the least an epoll server can do per request. "
      "nginx runs with `sendfile on; tcp_nopush on; open_file_cache max=1000; access_log off; "
      "keepalive_requests 100000`, one process (`master_process off`); h2o with one thread "
      "and no access log; ritual http with one worker and `--max-requests 100000` (as "
      "nginx's keepalive_requests), no access log (its default). Ratios: against "
      "the floor, and against the better of nginx and h2o in the same cell (below 1 is "
      "cheaper). The targets, for each ritual row: at most " + " and ".join(
          f"{v}x at pipeline {p}" for p, v in sorted(HTTP_TARGETS.items())) +
      " of the better of nginx and h2o.\n")
    w("The two generators pipeline differently. `ritual bench http --pipeline 16` keeps 16 "
      "requests in flight on each connection, sending a new one as each response arrives, "
      "and times each request. wrk (with `pipeline.lua`, below) writes 16 requests at once "
      "and the next 16 only when all of them are answered, and times the batch: its latency "
      "percentiles at pipeline 16 are per batch, and a server that holds back part of a "
      "batch stalls the whole connection. Both count every response.\n")

    for g, cells in doc["summary"].items():
        w(f"## Server CPU per request, load from {g} (us, least of {plural(rounds, 'round')})\n")
        if doc.get("chart") and g == next(iter(doc["summary"])):
            w("![server CPU per request](http-cpu.png)\n")
        w("| cell | " + " | ".join(servers) + " |")
        w("|---|" + "---:|" * len(servers))
        for c in cells.values():
            row = []
            for s in servers:
                x = c["servers"].get(s)
                row.append("-" if not x else fmt(x["server_cpu_us_per_req"], ".3f", "FAILED") +
                           (" (!)" if x["failed"] and x["server_cpu_us_per_req"] else ""))
            w(f"| {http_cell_name(c['cell'])} | " + " | ".join(row) + " |")
        w("")
        w(f"### Per cell, load from {g}\n")
        w("| cell | server | req/s | p50 us | p99 us | server CPU us/req | vs floor | "
          "vs better of nginx/h2o (target) | generator CPU us/req | other load, cores (max) | "
          "rounds ok |")
        w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for c in cells.values():
            for s in servers:
                x = c["servers"].get(s)
                if not x:
                    continue
                mark = " **(!)**" if x["failed"] else ""
                vs = fmt(x["vs_best_peer"], ".3f")
                if s in HTTP_RITUAL_NAMES and c.get("target_vs_best_peer") and \
                        x["vs_best_peer"]:
                    t = c["target_vs_best_peer"]
                    vs += f" ({'met' if x['vs_best_peer'] <= t else 'missed'}: <= {t})"
                w(f"| {cell_short(c['cell'])} | {s}{mark} | "
                  f"{fmt(x['requests_per_s'], ',.0f')} | {fmt(x['p50_us'], ',.0f')} | "
                  f"{fmt(x['p99_us'], ',.0f')} | {fmt(x['server_cpu_us_per_req'], '.3f')} | "
                  f"{fmt(x['vs_floor'], '.3f')} | {vs} | "
                  f"{fmt(x['generator_cpu_us_per_req'], '.3f')} | "
                  f"{fmt(x['other_cpu_cores_max'], '.2f')} | {x['ok']}/{x['runs']} |")
        w("")

    L.extend(failures_lines(
        doc, "None: every run exited 0, with no socket error and no response other than 2xx."))
    w("## Commands\n")
    w("Document root `ROOT`: a temporary directory holding " + ", ".join(
        f"`{f}` ({len(v):,} B)" for f, v in HTTP_FILES.items()) +
      ". nginx and h2o listen on a free port found by binding port 0; their configuration "
      "files, written by `bench/run` into a directory `DIR` of their own, are below.\n")
    w("```")
    for s in doc["server_commands"]:
        w(s)
    w("```\n")
    w("Load, one run per server, generator, cell and round (`PORT` from the server):\n")
    w("```")
    for s in doc["bench_commands"]:
        w(s)
    w("```\n")
    w("`DIR/nginx.conf`:\n")
    w("```nginx")
    w(NGINX_CONF.format(tmp="DIR", host=HOST, port="PORT", root="ROOT").rstrip("\n"))
    w("```\n")
    w("`DIR/h2o.conf`:\n")
    w("```yaml")
    w(H2O_CONF.format(tmp="DIR", host=HOST, port="PORT", root="ROOT",
                      user="user: root  # only when run as root\n").rstrip("\n"))
    w("```\n")
    w("`pipeline.lua` (wrk at pipeline > 1):\n")
    w("```lua")
    w(WRK_PIPELINE_LUA.rstrip("\n"))
    w("```\n")
    w(f"Raw runs and summaries: [http.json](http.json). Reproduce: `{doc['invocation']}` after "
      "`cmake -S . -B build -DRITUAL_BENCH=ON && cmake --build build` and "
      "`apt-get install nginx-light h2o wrk gnuplot-nox`.")
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")
