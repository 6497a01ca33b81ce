"""The echo runs summed up: per cell and server the median throughput and latency
and the least CPU per message, the ratios against the floors and the better peer,
the issue's targets met or missed, the cross-check's two generators side by side,
and how far the rounds of one row spread."""

from .common import cell_short, least, median
from .echo_config import PEERS, TARGETS, cell_key, target_cell


def summarize(runs):
    """Per cell, per server: the medians and least-of-rounds, over the ok runs."""
    out = {}
    for r in runs:
        k = cell_key(r["cell"])
        c = out.setdefault(k, {"cell": r["cell"], "servers": {}})
        s = c["servers"].setdefault(r["server"], {"runs": 0, "ok": 0, "_ok": []})
        s["runs"] += 1
        if r["ok"]:
            s["ok"] += 1
            s["_ok"].append(r)
    for c in out.values():
        for s in c["servers"].values():
            ok = s.pop("_ok")
            res = [r["result"] for r in ok]
            s["failed"] = s["ok"] < s["runs"] or s["ok"] == 0
            s["messages_per_s"] = median([x["messages_per_s"] for x in res])
            s["p50_us"] = median([x["latency_us"]["p50"] for x in res if x.get("latency_us")])
            s["p99_us"] = median([x["latency_us"]["p99"] for x in res if x.get("latency_us")])
            s["server_cpu_us_per_msg"] = least([r["server_cpu_us_per_msg"] for r in ok])
            s["server_cpu_us_per_msg_median"] = median([r["server_cpu_us_per_msg"] for r in ok])
            s["generator_cpu_us_per_msg"] = least(
                [r["generator_cpu_us_per_msg"] for r in ok if r.get("generator_cpu_us_per_msg")])
            s["other_cpu_cores_max"] = max(
                [r["other_cpu_cores"] for r in ok if r.get("other_cpu_cores") is not None],
                default=None)
        sv = c["servers"]
        floor = (sv.get("floor-epoll") or {}).get("server_cpu_us_per_msg")
        floor_uring = (sv.get("floor-uring") or {}).get("server_cpu_us_per_msg")
        peers = [sv[p]["server_cpu_us_per_msg"] for p in PEERS
                 if p in sv and sv[p]["server_cpu_us_per_msg"]]
        best = min(peers) if peers else None
        c["best_peer"] = min((p for p in PEERS if p in sv and sv[p]["server_cpu_us_per_msg"]),
                             key=lambda p: sv[p]["server_cpu_us_per_msg"], default=None)
        for s in sv.values():
            v = s["server_cpu_us_per_msg"]
            s["vs_floor_epoll"] = v / floor if v and floor else None
            s["vs_floor_uring"] = v / floor_uring if v and floor_uring else None
            s["vs_best_peer"] = v / best if v and best else None
        # The like-for-like ratios of the summary, and the targets' cells.
        key = lambda name, ratio: (sv.get(name) or {}).get(ratio)
        c["ritual"] = {
            "io_uring_vs_floor_uring": key("ritual-io_uring", "vs_floor_uring"),
            "io_uring_vs_best_peer": key("ritual-io_uring", "vs_best_peer"),
            "epoll_vs_floor_epoll": key("ritual-epoll", "vs_floor_epoll"),
            "poll_vs_floor_epoll": key("ritual-poll", "vs_floor_epoll"),
        }
        c["target_cell"] = target_cell(c["cell"])
    return out


def verdict(value, limit):
    """ "met" or "missed" for a ratio that must be at most limit, or None without one."""
    return None if value is None else "met" if value <= limit else "missed"


def check_targets(summary, idle):
    """The issue's targets (TARGETS), each with what was measured and whether it was met:
    "met" if every cell measured met it, "missed" if any did not, "not measured" if none
    was measured. Returns a list of dicts, in the order the summary states them."""
    out = []
    cells = [c for c in summary.values() if c["target_cell"]]
    for key, limit, what in (
            ("io_uring_vs_floor_uring", TARGETS["uring_vs_floor_uring"],
             "ritual-io_uring / floor-uring, server CPU per message"),
            ("io_uring_vs_best_peer", TARGETS["uring_vs_best_peer"],
             "ritual-io_uring / the better of " + " and ".join(PEERS) +
             ", server CPU per message")):
        measured = [dict(cell=cell_short(c["cell"]), value=c["ritual"][key],
                         verdict=verdict(c["ritual"][key], limit),
                         **({"best_peer": c["best_peer"]} if key.endswith("best_peer") else {}))
                    for c in cells if c["ritual"][key] is not None]
        why = None
        if not cells:
            why = "no cell of this run is one of the targets' cells"
        elif not measured:
            need = ["ritual-io_uring"] + (["floor-uring"] if key.endswith("floor_uring") else
                                          [" or ".join(PEERS)])
            got = lambda n: any(
                (c["servers"].get(x) or {}).get("server_cpu_us_per_msg")
                for c in cells for x in n.split(" or "))
            why = "no figure for " + " nor ".join(n for n in need if not got(n))
        out.append(dict(
            target=key, what=what, limit=limit, at="<=",
            cells=measured,
            verdict=("missed" if any(m["verdict"] == "missed" for m in measured) else
                     "met" if measured else "not measured"),
            **({"why_not_measured": why} if why else {})))
    rss = {r["server"]: r.get("rss_per_conn_bytes") for r in idle or [] if r["ok"]}
    u, e = rss.get("ritual-io_uring"), rss.get("ritual-epoll")
    why = None
    if u is None or e is None:
        why = "no idle figure for " + " nor ".join(
            n for n, v in (("ritual-io_uring", u), ("ritual-epoll", e)) if v is None)
    out.append(dict(
        target="idle_rss_io_uring_below_epoll",
        what="RSS per idle connection, ritual-io_uring against ritual-epoll (bytes)",
        io_uring=u, epoll=e,
        verdict="not measured" if why else "met" if u < e else "missed",
        **({"why_not_measured": why} if why else {})))
    return out



def cross_summary(cross_runs, cross_servers):
    """The cross-check: per server, per generator, its figures over the ok rounds."""
    cs = {}
    for s in cross_servers:
        for g in ("ritual-bench", "pingpong"):
            ok = [r for r in cross_runs if r["server"] == s and r["generator"] == g
                  and r["ok"]]
            cs.setdefault(s, {})[g] = dict(
                rounds_ok=len(ok),
                messages_per_s=median([r["result"]["messages_per_s"] for r in ok]),
                server_cpu_us_per_msg=least([r["server_cpu_us_per_msg"] for r in ok]),
                generator_cpu_us_per_msg_process=least(
                    [r["generator_cpu_us_per_msg_process"] for r in ok]),
                other_cpu_cores_max=max(
                    [r["other_cpu_cores"] for r in ok
                     if r.get("other_cpu_cores") is not None], default=None),
                generator_cpu_us_per_msg_own=least(
                    [r["result"]["client_cpu_us_per_msg"] for r in ok
                     if "client_cpu_us_per_msg" in r["result"]]))
    return cs


def round_spreads(runs, summary, rows):
    """For each row (c[rows] of each cell c of summary) with two ok rounds or more in
    runs: its largest CPU per message over its least, minus 1."""
    spreads = []
    for c in summary.values():
        for name in c[rows]:
            v = [r["server_cpu_us_per_msg"] for r in runs if r["ok"] and
                 r["server"] == name and cell_key(r["cell"]) == cell_key(c["cell"])]
            if len(v) >= 2:
                spreads.append(max(v) / min(v) - 1)
    return spreads
