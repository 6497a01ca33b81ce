"""Server processes: started pinned to a CPU, ready once they print the port they
listen on, checked to run on the backend they were asked for, stopped with SIGTERM
and the exit status kept. ServerGroup is several processes of one server sharing a
port (the scaling section). Every process we start is in LIVE until it is reaped,
so that an interrupted run leaves none behind."""

import os
import re
import select
import signal
import subprocess
import time

from .common import SERVER_CPU
from .procfs import backend_in_use, proc_cpu_ns, proc_rss, proc_sched_ns

# libritual's backends, as `--backend` names them.
RITUAL_BACKENDS = ("io_uring", "epoll", "poll")

LIVE = set()  # processes we started and have not reaped: ended on the way out


def kill_live():
    for p in list(LIVE):
        if p.poll() is None:
            p.kill()
            p.wait()


class ServerError(Exception):
    pass


def asked_backend(argv):
    """The backend that `--backend B` in argv asks for (io_uring, epoll or poll), or None."""
    if "--backend" in argv[:-1]:
        b = argv[argv.index("--backend") + 1]
        return b if b in RITUAL_BACKENDS else None
    return None


class Server:
    """One server process pinned to SERVER_CPU (or to cpus, "0,1" say), listening on
    an ephemeral port."""

    def __init__(self, name, argv, logdir, cpus=None):
        self.name, self.argv = name, argv
        self.cpus = str(SERVER_CPU) if cpus is None else cpus
        self.proc, self.port = None, None
        self.errlog = os.path.join(logdir, f"{name.replace(' ', '_')}.stderr")

    def spawn(self):
        """Start the process, pinned, its stderr appended to errlog."""
        err = open(self.errlog, "ab")
        self.proc = subprocess.Popen(["taskset", "-c", self.cpus] + self.argv,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=err)
        err.close()
        LIVE.add(self.proc)

    def start(self, timeout=10.0):
        self.spawn()
        line, deadline = b"", time.monotonic() + timeout
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                break
            chunk = os.read(self.proc.stdout.fileno(), 256)
            if not chunk:
                break
            line += chunk
        m = re.search(rb"listening on (\S+):(\d+)", line)
        if not m:
            self.kill()
            raise ServerError(f"{self.name}: no 'listening on HOST:PORT' line within "
                              f"{timeout:.0f} s (got {line!r}); stderr: {self.stderr_tail()}")
        self.port = int(m.group(2))
        want = asked_backend(self.argv)
        if want:  # the loops exist once it listens: check it runs where its row says
            got = backend_in_use(self.pid)
            if got != want:
                self.kill()
                said = " | ".join(dict.fromkeys(  # each loop that fell back says so
                    line.strip() for line in self.stderr_tail().splitlines() if line.strip()))
                raise ServerError(f"{self.name}: asked for --backend {want}, runs on "
                                  f"{got or 'an unknown backend'}; stderr: {said or '(empty)'}")
        return self

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def cpu_ns(self):
        return proc_cpu_ns(self.pid)

    def sched_ns(self):
        return proc_sched_ns(self.pid)

    def rss(self):
        return proc_rss(self.pid)

    def stderr_tail(self, n=400):
        try:
            with open(self.errlog, "rb") as f:
                return f.read()[-n:].decode(errors="replace").strip()
        except OSError:
            return ""

    def stop(self, timeout=5.0):
        """SIGTERM, then SIGKILL after timeout. Returns None if it exited 0, else a problem."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            problem = f"{self.name} had already exited with status {self.proc.returncode}"
        else:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout)
                problem = None if rc == 0 else f"{self.name} exited {rc} on SIGTERM"
            except subprocess.TimeoutExpired:
                self.kill()
                problem = f"{self.name} did not exit within {timeout:.0f} s of SIGTERM"
        self.proc.stdout.close()
        LIVE.discard(self.proc)
        return problem

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc:
            self.proc.stdout.close()
            LIVE.discard(self.proc)


class ServerGroup:
    """Several processes of one server sharing a port with SO_REUSEPORT (the scaling
    section): the first listens on port 0, the others on the port it printed. Looks
    like a Server to load_run; its CPU is the sum over the processes."""

    def __init__(self, name, argv_for_port, nproc, logdir, cpus):
        self.name, self.argv_for_port, self.nproc = name, argv_for_port, nproc
        self.logdir, self.cpus, self.members, self.port = logdir, cpus, [], None

    def start(self, timeout=10.0):
        try:
            for i in range(self.nproc):
                m = Server(f"{self.name}.{i}", self.argv_for_port(self.port or 0),
                           self.logdir, self.cpus)
                self.members.append(m.start(timeout))
                if self.port is None:
                    self.port = m.port
                elif m.port != self.port:
                    raise ServerError(f"{self.name}: process {i + 1} listens on port "
                                      f"{m.port}, not {self.port}")
        except ServerError:
            self.kill()
            raise
        return self

    @property
    def proc(self):  # for load_run's message about a dead server: the first dead one
        return next((m.proc for m in self.members if not m.alive()), self.members[0].proc)

    @property
    def pid(self):
        return self.members[0].pid

    def alive(self):
        return bool(self.members) and all(m.alive() for m in self.members)

    def _sum(self, f):
        v = [f(m) for m in self.members]
        return None if not v or None in v else sum(v)

    def cpu_ns(self):
        return self._sum(Server.cpu_ns)

    def sched_ns(self):
        return self._sum(Server.sched_ns)

    def rss(self):
        return self._sum(Server.rss)

    def stderr_tail(self, n=400):
        return " | ".join(t for t in (m.stderr_tail(n) for m in self.members) if t)

    def stop(self, timeout=5.0):
        problems = [p for p in (m.stop(timeout) for m in self.members) if p]
        return "; ".join(problems) or None

    def kill(self):
        for m in self.members:
            m.kill()


def cannot_run_here(name, error):
    """Why a ritual row is left out, from the ServerError of its trial start: one line,
    without the row's name in front."""
    why = " ".join(str(error).split())
    return "cannot run here: " + (why[len(name) + 2:] if why.startswith(name + ": ") else why)
