"""The idle test: many connections opened to one server and left idle, and what
they cost it in resident memory and in CPU time while nothing happens."""

import select
import socket
import time

from .common import HOST
from .servers import Server, ServerError


def open_idle(port, n, batch=500, timeout=10.0):
    """Open n connections to HOST:port, each checked with a 1-byte echo.
    Returns (sockets, failures)."""
    socks, failures = [], 0
    ep = select.epoll()

    def wait_all(pending, events, done):
        deadline = time.monotonic() + timeout
        for s in pending.values():
            ep.register(s.fileno(), events)
        while pending and time.monotonic() < deadline:
            for fd, _ in ep.poll(max(0.0, deadline - time.monotonic())):
                s = pending.pop(fd, None)
                if s is not None:
                    ep.unregister(fd)
                    done(s)
        for fd in list(pending):
            ep.unregister(fd)
        return pending

    def connected(s):
        nonlocal failures
        if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
            try:
                s.send(b"x")
                stage2[s.fileno()] = s
                return
            except OSError:
                pass
        failures += 1
        s.close()

    def echoed(s):
        nonlocal failures
        try:
            ok = s.recv(1) == b"x"
        except OSError:
            ok = False
        if ok:
            socks.append(s)
        else:
            failures += 1
            s.close()

    try:
        for first in range(0, n, batch):
            stage1, stage2 = {}, {}
            for _ in range(min(batch, n - first)):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                err = s.connect_ex((HOST, port))
                if err not in (0, 115):  # EINPROGRESS
                    failures += 1
                    s.close()
                    continue
                stage1[s.fileno()] = s
            for s in wait_all(stage1, select.EPOLLOUT, connected).values():
                failures += 1
                s.close()
            for s in wait_all(stage2, select.EPOLLIN, echoed).values():
                failures += 1
                s.close()
    finally:
        ep.close()
    return socks, failures


def idle_test(name, argv, n, hold, logdir):
    rec = dict(server=name, connections=n, hold_s=hold, ok=False, problem=None)
    server = Server(name, argv, logdir)
    try:
        server.start()
    except ServerError as e:
        rec["problem"] = str(e)
        return rec
    socks, warm = [], None
    try:
        warm, f = open_idle(server.port, 1)
        if f or not warm:
            rec["problem"] = "the warm-up connection failed"
            return rec
        time.sleep(0.3)
        rec["rss_before"] = server.rss()
        t0 = time.monotonic()
        socks, failures = open_idle(server.port, n)
        rec["connect_s"] = round(time.monotonic() - t0, 3)
        rec["established"] = len(socks)
        rec["failures"] = failures
        time.sleep(0.5)
        rec["rss_after"] = server.rss()
        cpu0, t0 = server.cpu_ns(), time.monotonic()
        time.sleep(hold)
        cpu1, t1 = server.cpu_ns(), time.monotonic()
        if socks and rec["rss_before"] and rec["rss_after"]:
            rec["rss_per_conn_bytes"] = (rec["rss_after"] - rec["rss_before"]) / len(socks)
        if socks and cpu0 is not None and cpu1 is not None:
            rec["cpu_ns"] = cpu1 - cpu0
            rec["cpu_ns_per_conn_per_s"] = (cpu1 - cpu0) / len(socks) / (t1 - t0)
        if failures:
            rec["problem"] = f"{failures} of {n} connections failed"
        elif not server.alive():
            rec["problem"] = f"server died (stderr: {server.stderr_tail()})"
        elif "rss_per_conn_bytes" not in rec or "cpu_ns" not in rec:
            rec["problem"] = "could not read the server's RSS or CPU"
        else:
            rec["ok"] = True
    finally:
        for s in socks + (warm or []):
            s.close()
        problem = server.stop()
        if problem and not rec["problem"]:
            rec["problem"], rec["ok"] = problem, False
    return rec

