"""One echo load run: the generator's command line (`ritual bench echo` or
bench/tools/pingpong), the server's CPU time before and after, and the run's record
with its figures per message, or the problem that made it fail."""

import os
import time

from .common import HOST, LOAD_CPU
from .generator import last_json_line, run_generator
from .procfs import busy_ns


def generator_argv(gen, build, port, cell, duration, threads=1):
    if gen == "ritual-bench":
        return [os.path.join(build, "ritual"), "bench", "echo", "--connect", f"{HOST}:{port}",
                "--connections", str(cell["connections"]), "--size", str(cell["size"]),
                "--pipeline", str(cell["pipeline"]), "--duration", f"{duration:g}"] + (
                    ["--threads", str(threads)] if threads != 1 else []) + ["--json"]
    return [os.path.join(build, "bench", "pingpong"), "--connect", f"{HOST}:{port}",
            "--connections", str(cell["connections"]), "--size", str(cell["size"]),
            "--duration", f"{duration:g}"]


def load_run(server, gen, build, cell, duration, section, rnd, gen_cpus=None, threads=1):
    """One load run against a running server (generator pinned to LOAD_CPU, or to
    gen_cpus, with `threads` threads). Returns the run's record."""
    rec = dict(section=section, cell=dict(cell), server=server.name, round=rnd,
               generator=gen, ok=False, problem=None)
    argv = generator_argv(gen, build, server.port, cell, duration, threads)
    gen_cpus = str(LOAD_CPU) if gen_cpus is None else gen_cpus
    rec["command"] = " ".join(["taskset", "-c", gen_cpus] + argv)
    if not server.alive():
        rec["problem"] = f"server not running (stderr: {server.stderr_tail()})"
        return rec
    b0, s0, cpu0, t0 = busy_ns(), server.sched_ns(), server.cpu_ns(), time.monotonic()
    rc, out, err, gcpu = run_generator(argv, timeout=duration + 40, cpus=gen_cpus)
    time.sleep(0.1)  # let the server finish with the closing connections: counted
    cpu1, s1, t1, b1 = server.cpu_ns(), server.sched_ns(), time.monotonic(), busy_ns()
    if None not in (b0, b1, cpu0, cpu1):
        # CPU that neither the server nor the generator used, in cores: other load on
        # the machine (and interrupts), which makes the figures noisier.
        other = (b1 - b0) - (cpu1 - cpu0) - gcpu["rusage_ns"]
        rec["other_cpu_cores"] = round(max(0, other) / ((t1 - t0) * 1e9), 3)
    if s0 is not None and s1 is not None:
        rec["server_cpu_ns_schedstat"] = s1 - s0  # live threads only: a cross-check
    rec["wall_s"] = round(time.monotonic() - t0, 3)
    rec["exit_status"] = rc
    rec["generator_cpu_ns"] = gcpu
    res = last_json_line(out)
    rec["result"] = res
    if err.strip():
        rec["stderr"] = err.strip()[-600:]
    if cpu0 is not None and cpu1 is not None:
        rec["server_cpu_ns"] = cpu1 - cpu0
    msgs = (res or {}).get("messages") or 0
    if msgs and "server_cpu_ns" in rec:
        rec["server_cpu_us_per_msg"] = rec["server_cpu_ns"] / 1000 / msgs
        # Whole-process generator CPU: rusage covers every thread; pingpong is
        # single-threaded, so its schedstat is the same figure, read the same way
        # as the server's.
        g = gcpu["rusage_ns"]
        if gen == "pingpong" and gcpu["schedstat_ns"]:
            g = gcpu["schedstat_ns"]
        rec["generator_cpu_us_per_msg_process"] = g / 1000 / msgs
        if gen == "ritual-bench":
            rec["generator_cpu_us_per_msg"] = res.get("client_cpu_us_per_msg")
        else:
            rec["generator_cpu_us_per_msg"] = rec["generator_cpu_us_per_msg_process"]
        rec["inflight_share"] = cell["connections"] * cell["pipeline"] / msgs
    errors = None
    if res is not None:
        e = res.get("errors")
        errors = e.get("total") if isinstance(e, dict) else e
    if rc != 0:
        rec["problem"] = f"generator exited {rc}"
    elif res is None:
        rec["problem"] = "no JSON line from the generator"
    elif errors:
        rec["problem"] = f"{errors} errors reported: {res.get('errors')}"
    elif not msgs:
        rec["problem"] = "no messages"
    elif "server_cpu_ns" not in rec:
        rec["problem"] = "could not read the server's CPU time"
    elif not server.alive():
        rec["problem"] = f"server died during the run (stderr: {server.stderr_tail()})"
    else:
        rec["ok"] = True
    if rec["problem"] and err.strip():
        rec["problem"] += f"; stderr: {err.strip()[-300:]}"
    if rec["problem"] and not server.alive() and "server died" not in rec["problem"]:
        rec["problem"] += (f"; the server died (exit status {server.proc.returncode}; "
                           f"stderr: {server.stderr_tail(200)})")
    return rec


def describe(rec):
    if not rec["ok"]:
        return f"FAILED: {rec['problem']}"
    r = rec["result"]
    lat = r.get("latency_us") or {}
    s = f"{r['messages_per_s']:>10,.0f} msg/s"
    if lat:
        s += f"  p50 {lat['p50']:7.1f} us  p99 {lat['p99']:7.1f} us"
    s += f"  server {rec['server_cpu_us_per_msg']:.3f} us/msg"
    s += f"  generator {rec['generator_cpu_us_per_msg']:.3f} us/msg"
    if (rec.get("other_cpu_cores") or 0) > 0.05:
        s += f"  (other load: {rec['other_cpu_cores']:.2f} cores)"
    return s

