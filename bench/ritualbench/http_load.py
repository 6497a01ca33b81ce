"""One HTTP load run: the server ready once it answers GET /hello.txt, the
generator run (`ritual bench http`, or wrk with its report parsed into the same
figures), the server's CPU time before and after, and the run's record with its
figures per request, or the problem that made it fail."""

import re
import socket
import ssl
import time

from .common import HOST, LOAD_CPU
from .generator import last_json_line, run_generator
from .http_config import http_generator_argv
from .procfs import busy_ns
from .servers import Server, ServerError


def client_tls_context():
    """TLS as `ritual bench --tls` speaks it: the server is not verified."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def http_get_ok(port, path="/hello.txt", timeout=1.0, tls=False):
    """True if GET path on HOST:port (over TLS if tls) answers 200 with a complete head."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as raw, \
                (client_tls_context().wrap_socket(raw) if tls else raw) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"
                      .encode())
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 65536:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            return data.startswith(b"HTTP/1.1 200 ") and b"\r\n\r\n" in data
    except OSError:
        return False


class HttpServer(Server):
    """A server for the HTTP bench. With `port` None it is asked for port 0 and prints
    `listening on HOST:PORT` (ritual, the floor); otherwise it was configured to
    listen on `port` (nginx, h2o). Either way it is ready once GET /hello.txt
    answers 200 (over TLS if tls)."""

    def __init__(self, name, argv, logdir, port=None, tls=False):
        super().__init__(name, argv, logdir)
        self.fixed_port, self.tls = port, tls

    def start(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        if self.fixed_port is None:
            super().start(timeout)
        else:
            self.spawn()
            self.port = self.fixed_port
        while not http_get_ok(self.port, tls=self.tls):
            if not self.alive() or time.monotonic() > deadline:
                rc = self.proc.poll()
                self.kill()
                raise ServerError(
                    f"{self.name}: " + (f"exited {rc}" if rc is not None else
                                        f"no 200 for GET /hello.txt within {timeout:.0f} s") +
                    f"; stderr: {self.stderr_tail()}")
            time.sleep(0.05)
        return self


WRK_UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6}


def parse_wrk(text):
    """wrk's report, as the same dict as `ritual bench http --json` gives (the keys
    used here), or None if it does not look like one."""
    def us(v, unit):
        return float(v) * WRK_UNITS[unit]
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m),", text)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not m or not rps:
        return None
    res = dict(requests=int(m.group(1)), duration_s=us(m.group(2), m.group(3)) / 1e6,
               requests_per_s=float(rps.group(1)), latency_us={})
    lat = re.search(r"Latency\s+([\d.]+)(us|ms|s|m)\s+([\d.]+)(us|ms|s|m)\s+"
                    r"([\d.]+)(us|ms|s|m)", text)
    if lat:
        res["latency_us"]["mean"] = us(lat.group(1), lat.group(2))
        res["latency_us"]["max"] = us(lat.group(5), lat.group(6))
    for p, v, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M):
        if float(v) > 0:  # wrk prints 0.00us where its histogram lookup failed
            res["latency_us"][f"p{p}"] = us(v, unit)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                     text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    e = dict(zip(("connect", "read", "write", "timeout"),
                 (int(x) for x in sock.groups()) if sock else (0, 0, 0, 0)))
    e["status"] = int(non2xx.group(1)) if non2xx else 0
    e["total"] = sum(e.values())
    res["errors"] = e
    return res


def http_load_run(server, gen, paths, cell, duration, rnd, script):
    """One load run against a running server, the generator pinned to LOAD_CPU.
    Returns the run's record."""
    rec = dict(cell=dict(cell), server=server.name, round=rnd, generator=gen, ok=False,
               problem=None)
    argv = http_generator_argv(gen, paths, server.port, cell, duration, script)
    rec["command"] = " ".join(["taskset", "-c", str(LOAD_CPU)] + argv)
    if not server.alive():
        rec["problem"] = f"server not running (stderr: {server.stderr_tail()})"
        return rec
    b0, cpu0, t0 = busy_ns(), server.cpu_ns(), time.monotonic()
    rc, out, err, gcpu = run_generator(argv, timeout=duration + 40)
    time.sleep(0.1)  # let the server finish with the closing connections: counted
    cpu1, t1, b1 = server.cpu_ns(), time.monotonic(), busy_ns()
    if None not in (b0, b1, cpu0, cpu1):
        other = (b1 - b0) - (cpu1 - cpu0) - gcpu["rusage_ns"]
        rec["other_cpu_cores"] = round(max(0, other) / ((t1 - t0) * 1e9), 3)
    rec["wall_s"] = round(t1 - t0, 3)
    rec["exit_status"] = rc
    rec["generator_cpu_ns"] = gcpu
    res = parse_wrk(out) if gen == "wrk" else last_json_line(out)
    rec["result"] = res
    if err.strip():
        rec["stderr"] = err.strip()[-600:]
    if cpu0 is not None and cpu1 is not None:
        rec["server_cpu_ns"] = cpu1 - cpu0
    reqs = (res or {}).get("requests") or 0
    if reqs and "server_cpu_ns" in rec:
        rec["server_cpu_us_per_req"] = rec["server_cpu_ns"] / 1000 / reqs
        rec["generator_cpu_us_per_req"] = gcpu["rusage_ns"] / 1000 / reqs
    errors = ((res or {}).get("errors") or {}).get("total")
    if rc != 0:
        rec["problem"] = f"generator exited {rc}"
    elif res is None:
        rec["problem"] = "no report from the generator"
    elif errors:
        rec["problem"] = f"{errors} errors reported: {res.get('errors')}"
    elif not reqs:
        rec["problem"] = "no requests"
    elif "server_cpu_ns" not in rec:
        rec["problem"] = "could not read the server's CPU time"
    elif not server.alive():
        rec["problem"] = f"server died during the run (stderr: {server.stderr_tail()})"
    else:
        rec["ok"] = True
    if rec["problem"] and err.strip():
        rec["problem"] += f"; stderr: {err.strip()[-300:]}"
    return rec


def http_describe(rec):
    if not rec["ok"]:
        return f"FAILED: {rec['problem']}"
    r = rec["result"]
    lat = r.get("latency_us") or {}
    s = f"{r['requests_per_s']:>10,.0f} req/s"
    if "p50" in lat and "p99" in lat:
        s += f"  p50 {lat['p50']:8.1f} us  p99 {lat['p99']:8.1f} us"
    s += f"  server {rec['server_cpu_us_per_req']:.3f} us/req"
    s += f"  generator {rec['generator_cpu_us_per_req']:.3f} us/req"
    if (rec.get("other_cpu_cores") or 0) > 0.05:
        s += f"  (other load: {rec['other_cpu_cores']:.2f} cores)"
    return s
