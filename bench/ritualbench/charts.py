"""The reports' charts, drawn by gnuplot (if installed): bars of server CPU per
message (echo-cpu.png) or per request (http-cpu.png, tls-cpu.png), one panel per kind
of cell."""

import os
import shutil
import subprocess
import tempfile

from .common import log


def quoted(text):
    return '"' + text.replace('"', "'") + '"'


def find_gnuplot():
    gp = shutil.which("gnuplot")
    if not gp:
        log("warning: gnuplot not found (apt-get install gnuplot-nox): no chart")
    return gp


def preamble(png, cols, rows, key, ylabel, title):
    """The script's settings, before the panels: clustered bars, a key below them."""
    return [
        # noenhanced: "ritual-io_uring" is a name, not io with a subscript u
        f"set terminal pngcairo noenhanced size {620 * cols},{430 * rows} font 'sans,10'",
        f"set output {quoted(png)}",
        "set style data histograms",
        "set style histogram clustered gap 1",
        "set style fill solid 0.85 border -1",
        "set boxwidth 0.9",
        "set datafile missing '-'",
        key,
        "set grid ytics",
        "set yrange [0:*]",
        "set xtics nomirror",
        f"set ylabel '{ylabel}'",
        f"set multiplot layout {rows},{cols} title {quoted(title)} font ',12'",
    ]


def draw(gp, tmp, script, name, png):
    """Run gnuplot on script (saved as tmp/name), then remove tmp. Returns png, or None
    with a warning if gnuplot failed."""
    gpfile = os.path.join(tmp, name)
    with open(gpfile, "w") as f:
        f.write("\n".join(script) + "\n")
    r = subprocess.run([gp, gpfile], capture_output=True, text=True)
    shutil.rmtree(tmp, ignore_errors=True)
    if r.returncode != 0:
        log(f"warning: gnuplot failed: {r.stderr.strip()[-300:]}: no chart")
        return None
    return png


def echo_chart(out_dir, summary, servers):
    """echo-cpu.png: server CPU per message, one panel per message size and pipeline
    depth (their scales differ by an order of magnitude), bars per server grouped by
    number of connections."""
    gp = find_gnuplot()
    if not gp:
        return None
    panels = {}
    for c in summary.values():
        panels.setdefault((c["cell"]["size"], c["cell"]["pipeline"]), []).append(c)
    png = os.path.join(out_dir, "echo-cpu.png")
    cols = min(2, len(panels))
    rows = (len(panels) + cols - 1) // cols
    tmp = tempfile.mkdtemp(prefix="ritual-bench-chart-")
    q = quoted
    script = preamble(
        png, cols, rows,
        # one row of keys while they fit; with the ritual rows, as many as they need
        "set key outside bottom center horizontal samplen 2" +
        (" maxrows 1" if len(servers) <= 6 else ""),
        "server CPU, us per message",
        "Echo: server CPU per message, least of the rounds (lower is better)")
    for (size, pipeline), cells in sorted(panels.items()):
        cells.sort(key=lambda c: c["cell"]["connections"])
        data = os.path.join(tmp, f"s{size}-p{pipeline}.dat")
        with open(data, "w") as f:
            f.write("conns " + " ".join(q(s) for s in servers) + "\n")
            for c in cells:
                n = c["cell"]["connections"]
                row = [q(f"{n:,} conn" + ("s" if n != 1 else ""))]
                for s in servers:
                    v = c["servers"].get(s, {}).get("server_cpu_us_per_msg")
                    row.append("-" if v is None else f"{v:.4f}")
                f.write(" ".join(row) + "\n")
        script.append(f"set title {q(f'{size} B messages, pipeline {pipeline}')}")
        script.append(f"plot for [i=2:{len(servers) + 1}] {q(data)} using i:xtic(1) "
                      "title columnheader(i)")
    script.append("unset multiplot")
    return draw(gp, tmp, script, "echo-cpu.gp", png)


def http_chart(out_dir, summary, servers):
    """http-cpu.png: server CPU per request, one panel per generator and pipeline
    depth, bars per server grouped by file."""
    gp = find_gnuplot()
    if not gp:
        return None
    panels = {}
    for g, cells in summary.items():
        for c in cells.values():
            panels.setdefault((g, c["cell"]["pipeline"]), []).append(c)
    if not panels:
        return None
    png = os.path.join(out_dir, "http-cpu.png")
    pipes = sorted({p for _, p in panels})
    gens = [g for g in summary if any(k[0] == g for k in panels)]
    cols, rows = len(pipes), len(gens)
    tmp = tempfile.mkdtemp(prefix="ritual-bench-chart-")
    q = quoted
    script = preamble(
        png, cols, rows, "set key outside bottom center horizontal maxrows 1 samplen 2",
        "server CPU, us per request",
        "HTTP: server CPU per request, least of the rounds (lower is better)")
    for g in gens:
        for p in pipes:
            cells = sorted(panels.get((g, p), []), key=lambda c: c["cell"]["size"])
            data = os.path.join(tmp, f"{g}-p{p}.dat")
            values = 0
            with open(data, "w") as f:
                f.write("file " + " ".join(q(s) for s in servers) + "\n")
                for c in cells:
                    row = [q(f"{c['cell']['size']:,} B")]
                    for s in servers:
                        v = c["servers"].get(s, {}).get("server_cpu_us_per_req")
                        row.append("-" if v is None else f"{v:.4f}")
                        values += v is not None
                    f.write(" ".join(row) + "\n")
            script.append(f"set title {q(f'pipeline {p}, load from {g}')}")
            if values:
                script.append(f"plot for [i=2:{len(servers) + 1}] {q(data)} using i:xtic(1) "
                              "title columnheader(i)")
            else:  # every run of this panel failed: an empty frame that says so
                script += ["set label 1 'no data' at graph 0.5, graph 0.5 center",
                           "plot [0:1] [0:1] NaN notitle", "unset label 1"]
    script.append("unset multiplot")
    return draw(gp, tmp, script, "http-cpu.gp", png)


def tls_chart(out_dir, panels, servers):
    """tls-cpu.png: server CPU per request (per handshake where each request is a new
    connection), one panel per entry of panels, a list of (title, groups) where groups
    is a list of (label, {server: us per request}); bars per server, grouped."""
    gp = find_gnuplot()
    if not gp or not panels:
        return None
    png = os.path.join(out_dir, "tls-cpu.png")
    cols = min(2, len(panels))
    rows = (len(panels) + cols - 1) // cols
    tmp = tempfile.mkdtemp(prefix="ritual-bench-chart-")
    q = quoted
    script = preamble(
        png, cols, rows, "set key outside bottom center horizontal maxrows 1 samplen 2",
        "server CPU, us per request",
        "HTTPS: server CPU per request, least of the rounds (lower is better)")
    for i, (title, groups) in enumerate(panels):
        data = os.path.join(tmp, f"panel{i}.dat")
        values = 0
        with open(data, "w") as f:
            f.write("group " + " ".join(q(s) for s in servers) + "\n")
            for label, by_server in groups:
                row = [q(label)]
                for s in servers:
                    v = by_server.get(s)
                    row.append("-" if v is None else f"{v:.4f}")
                    values += v is not None
                f.write(" ".join(row) + "\n")
        script.append(f"set title {q(title)}")
        if values:
            script.append(f"plot for [i=2:{len(servers) + 1}] {q(data)} using i:xtic(1) "
                          "title columnheader(i)")
        else:  # every run of this panel failed: an empty frame that says so
            script += ["set label 1 'no data' at graph 0.5, graph 0.5 center",
                       "plot [0:1] [0:1] NaN notitle", "unset label 1"]
    script.append("unset multiplot")
    return draw(gp, tmp, script, "tls-cpu.gp", png)
