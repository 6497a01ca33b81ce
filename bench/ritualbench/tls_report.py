"""The TLS runs summed up (the HTTP summary, by cell and server: median requests/s
and latency, least CPU per request, ratio against the better of nginx and h2o, with
the targets by kind of cell; and the handshakes each server made, full and resumed)
and written out as tls.md, with the chart's panels and the exact commands and
configuration files."""

from .common import HOST, LOAD_CPU, SERVER_CPU, cell_short, fmt, plural
from .http_config import HTTP_RITUAL_NAMES
from .http_report import http_summarize
from .report import failures_lines, head_lines
from .tls_config import (CERT_SUBJECT_ALT, H2O_TLS_CONF, NGINX_TLS_CONF, TLS_FILES,
                         TLS_RESUMED_SHARE, TLS_TARGETS, cert_argv, tls_cell_kind,
                         tls_cell_name, tls_chart_panel, tls_target)


def tls_summarize(runs, generators):
    """http_summarize with the TLS targets, and per cell and server the handshakes of
    all its runs (ok or not): tls_full, tls_resumed, the share resumed and, in a
    resumed cell, whether that share fell short (partly_resumed; also marked on the
    cell if its best peer is one)."""
    summary = http_summarize(runs, generators, target=tls_target)
    for g, cells in summary.items():
        for c in cells.values():
            for s, x in c["servers"].items():
                mine = [r for r in runs if r["generator"] == g and r["server"] == s and
                        r["cell"] == c["cell"]]
                for k in ("tls_full", "tls_resumed"):
                    v = [r[k] for r in mine if r.get(k) is not None]
                    x[k] = sum(v) if v else None
                n = (x["tls_full"] or 0) + (x["tls_resumed"] or 0)
                x["resumed_share"] = x["tls_resumed"] / n if n else None
                x["partly_resumed"] = bool(c["cell"].get("resume") and n and
                                           x["resumed_share"] < TLS_RESUMED_SHARE)
            bp = c["servers"].get(c["best_peer"]) if c["best_peer"] else None
            c["best_peer_partly_resumed"] = bool(bp and bp["partly_resumed"])
    return summary


def tls_chart_panels(cells, servers):
    """The panels of tls-cpu.png (charts.tls_chart) from one generator's summary."""
    panels = {}
    for c in cells.values():
        title, label = tls_chart_panel(c["cell"])
        panels.setdefault(title, []).append(
            (label, {s: x["server_cpu_us_per_req"] for s, x in c["servers"].items()
                     if s in servers}))
    return list(panels.items())


def handshakes(x):
    if not x or x.get("tls_full") is None:
        return "-"
    return f"{x['tls_full']:,} / {x['tls_resumed']:,}"


def resumed_verdict(x):
    """Whether a server resumed in the resumed cell, from its handshake counts."""
    if not x or x.get("resumed_share") is None:
        return "-" if not x or x.get("tls_full") is None else "no handshakes counted"
    share = x["resumed_share"]
    return ("yes" if share >= TLS_RESUMED_SHARE else "**partly**" if share else "**no**") + \
        f" ({share:.0%} resumed)"


def partly(x):
    """The mark on a figure that mixes full handshakes into a resumed cell."""
    return f" ({x['resumed_share']:.0%} resumed)" if x and x.get("partly_resumed") else ""


def tls_write_md(path, doc, notes):
    cfg, servers = doc["config"], doc["servers"]
    rounds = cfg["rounds"]
    L = head_lines("TLS benchmark: ritual http, nginx and h2o over HTTPS",
                   "`bench/run http --tls`", doc, notes)
    w = L.append
    w("- Versions: " + "; ".join(f"{k} {v}" for k, v in doc["versions"].items()) + ".")
    if doc.get("negotiated"):
        w("- Negotiated with a plain client (Python's `ssl`, OpenSSL's defaults) when each "
          "server started: " + "; ".join(f"{s} {v or '?'}" for s, v in
                                         doc["negotiated"].items()) + ".")
    w(f"- Servers pinned to CPU {SERVER_CPU}, the load generator to CPU {LOAD_CPU} "
      "(`taskset`); every server runs one thread of work (ritual `--workers 1`, nginx one "
      "process, h2o `num-threads: 1`), exactly as in the plaintext benchmark (`http.md`).")
    rows = [s for s in servers if s in HTTP_RITUAL_NAMES]
    if rows:
        w("- ritual runs as one row per backend: " + ", ".join(
            f"`{s}` (`ritual http --backend {s[len('ritual-'):]}`)" for s in rows) +
          "; each one checked, once started, to hold the descriptors of that backend. "
          "`ritual bench http` runs on libritual's default backend.")
    w("- Certificate: ECDSA P-256, self-signed for `CN=localhost` (subjectAltName "
      f"`{CERT_SUBJECT_ALT}`), made with `openssl` for each run; the same one for every "
      "server. `ritual bench http --tls` does not verify it.")
    w("- Cells: " + "; ".join(tls_cell_name(c) for c in doc["cells"]) + ". " +
      f"{plural(rounds, 'round')} of {cfg['duration']:g} s per server and cell; within a "
      "cell the servers take turns, the order rotating every round; each server is started "
      "fresh for each cell.")
    w("- Load: `ritual bench http` only. wrk is not run: it can neither make every request "
      "a new connection nor control session resumption, so it could measure the keep-alive "
      "cells only, and `http.md` already compares the two generators." +
      (f" (Not run: {'; '.join(doc['generators_missing'])}.)"
       if doc.get("generators_missing") else ""))
    if doc.get("missing"):
        w(f"- Servers not run: {'; '.join(doc['missing'])}.")
    ol = doc.get("other_load")
    if ol:
        w(f"- CPU used during the load runs by neither the server nor the generator: median "
          f"{ol['median']:.3f} cores, at most {ol['max']:.3f}"
          f"{'; runs above 0.05 cores were disturbed' if ol['max'] > 0.05 else ''}.")
    w("")
    w("## How to read this\n")
    w("**Server CPU per request is the figure that matters**, measured as in `http.md`: the "
      "on-CPU time of all the server's threads over the generator's whole run, divided by the "
      "requests the generator counted; the **least** of the rounds is shown, requests/s and "
      "latency are medians. In the keep-alive and pipelined cells it also covers the full "
      "handshake of each connection when the generator connects (one per connection per "
      "run, spread over all its requests). In the two handshake cells every request says "
      "`Connection: close` (`--close`), so each one is a new connection: accept, handshake, "
      "one request, close; there **CPU per request is CPU per handshake**. The full "
      "handshake cell offers no session; in the resumed one (`--tls-resume`) every new "
      "connection offers a session the generator got from an earlier one. The generator "
      "counts the handshakes of its measured window, full and resumed (`tls_full`, "
      "`tls_resumed` in `tls.json`): a handshake cell with fewer handshakes than requests "
      "fails, and so does a ritual row that resumes fewer than "
      f"{TLS_RESUMED_SHARE:.0%} of them in the resumed cell (see \"Session resumption\").\n")
    w("Ratios are against the better of nginx and h2o in the same cell (below 1 is "
      "cheaper); there is no floor row, as there is no TLS floor. The targets, for each "
      "ritual row: at most " + ", ".join(f"{v}x in the {k} cells"
                                         for k, v in TLS_TARGETS.items()) +
      " (the handshake cells per handshake).\n")

    for g, cells in doc["summary"].items():
        hs = [c for c in cells.values() if c["cell"].get("close")]
        if hs:
            w(f"## Session resumption, load from {g}\n")
            w("Handshakes in the generator's windows, all rounds, full / resumed:\n")
            w("| server | " + " | ".join(
                f"{tls_cell_kind(c['cell'])} ({c['cell']['connections']} conns)" for c in hs) +
              " | resumed? |")
            w("|---|" + "---:|" * len(hs) + "---|")
            res = [c for c in hs if c["cell"].get("resume")]
            for s in servers:
                xs = [c["servers"].get(s) for c in hs]
                verdict = resumed_verdict(res[0]["servers"].get(s)) if res else "-"
                w(f"| {s} | " + " | ".join(handshakes(x) for x in xs) + f" | {verdict} |")
            w("")
            w(f"A ritual row that resumes fewer than {TLS_RESUMED_SHARE:.0%} of its handshakes "
              "in the resumed cell fails the run. nginx or h2o doing so is not a failure, but "
              "its figure there mixes full handshakes in (so it overstates its resumed "
              "handshake's cost) and is marked with the share resumed, as is a ratio against "
              "it. `ritual bench --tls-resume` offers each session ticket it receives once "
              "(RFC 8446's advice for TLS 1.3): a server that sends no new ticket on a resumed "
              "connection gets a full handshake whenever the tickets of the last full one "
              "are used up.\n")
            if doc.get("flags"):
                w("Flagged:\n")
                for f in doc["flags"]:
                    w(f"- {f}")
                w("")

        w(f"## Server CPU per request, load from {g} (us, least of {plural(rounds, 'round')})\n")
        if doc.get("chart") and g == next(iter(doc["summary"])):
            w("![server CPU per request](tls-cpu.png)\n")
        ritual = [s for s in servers if s in HTTP_RITUAL_NAMES]
        w("| cell | " + " | ".join(servers) + " | " +
          "".join(f"{s} vs better peer | " for s in ritual) + "target |")
        w("|---|" + "---:|" * (len(servers) + len(ritual)) + "---:|")
        for c in cells.values():
            row = []
            for s in servers:
                x = c["servers"].get(s)
                row.append("-" if not x else fmt(x["server_cpu_us_per_req"], ".3f", "FAILED") +
                           (" (!)" if x["failed"] and x["server_cpu_us_per_req"] else "") +
                           partly(x))
            t = c.get("target_vs_best_peer")
            for s in ritual:
                v = (c["servers"].get(s) or {}).get("vs_best_peer")
                row.append("-" if v is None else
                           f"{v:.3f} ({'met' if t is None or v <= t else 'missed'}" +
                           (f"; vs {c['best_peer']}, partly resumed"
                            if c.get("best_peer_partly_resumed") else "") + ")")
            w(f"| {tls_cell_name(c['cell'])} | " + " | ".join(row) +
              f" | <= {fmt(t, 'g')} |")
        w("")
        w(f"### Per cell, load from {g}\n")
        w("| cell | server | req/s | p50 us | p99 us | server CPU us/req | "
          "vs better of nginx/h2o (target) | generator CPU us/req | TLS handshakes full / "
          "resumed | other load, cores (max) | rounds ok |")
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
                mark += partly(x)
                w(f"| {cell_short(c['cell'])} | {s}{mark} | "
                  f"{fmt(x['requests_per_s'], ',.0f')} | {fmt(x['p50_us'], ',.0f')} | "
                  f"{fmt(x['p99_us'], ',.0f')} | {fmt(x['server_cpu_us_per_req'], '.3f')} | "
                  f"{vs} | {fmt(x['generator_cpu_us_per_req'], '.3f')} | {handshakes(x)} | "
                  f"{fmt(x['other_cpu_cores_max'], '.2f')} | {x['ok']}/{x['runs']} |")
        w("")

    L.extend(failures_lines(
        doc, "None: every run exited 0, with no socket error, no response other than 2xx, "
             "and the handshakes each handshake cell asked for."))
    w("## Commands\n")
    w("Certificate and key, in the run's temporary directory `TMP`:\n")
    w("```")
    w(" ".join(a if " " not in a and "," not in a else f'"{a}"'
               for a in cert_argv("TMP/key.pem", "TMP/cert.pem")))
    w("```\n")
    w("Document root `ROOT`: a directory in `TMP` holding " + ", ".join(
        f"`{f}` ({len(v):,} B)" for f, v in TLS_FILES.items()) +
      ". nginx and h2o listen on a free port found by binding port 0; their configuration "
      "files, written by `bench/run` into a directory `DIR` of their own, are below (the "
      "plaintext ones of `http.md` with TLS added).\n")
    w("```")
    for s in doc["server_commands"]:
        w(s)
    w("```\n")
    w("Load, one run per server, cell and round (`PORT` from the server):\n")
    w("```")
    for s in doc["bench_commands"]:
        w(s)
    w("```\n")
    w("`DIR/nginx.conf`:\n")
    w("```nginx")
    w(NGINX_TLS_CONF.format(tmp="DIR", host=HOST, port="PORT", root="ROOT",
                            cert="TMP/cert.pem", key="TMP/key.pem").rstrip("\n"))
    w("```\n")
    w("`DIR/h2o.conf`:\n")
    w("```yaml")
    w(H2O_TLS_CONF.format(tmp="DIR", host=HOST, port="PORT", root="ROOT",
                          cert="TMP/cert.pem", key="TMP/key.pem",
                          user="user: root  # only when run as root\n").rstrip("\n"))
    w("```\n")
    w(f"Raw runs and summaries: [tls.json](tls.json). Reproduce: `{doc['invocation']}` after "
      "`cmake -S . -B build -DRITUAL_BENCH=ON && cmake --build build` and "
      "`apt-get install nginx-light h2o openssl gnuplot-nox`.")
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")
