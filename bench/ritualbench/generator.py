"""Running a load generator (`ritual bench`, pingpong, wrk) to its end, pinned to a
CPU, with a timeout; its CPU time is read from the exited process before it is
reaped, so that the generator's cost can be set beside the server's."""

import json
import os
import signal
import subprocess
import tempfile
import threading

from .common import LOAD_CPU
from .servers import LIVE


def run_generator(argv, timeout, cpus=None):
    """Run a load generator pinned to LOAD_CPU (or to cpus). Returns (rc, stdout, stderr,
    cpu) where cpu is {"schedstat_ns": the main thread's, "rusage_ns": all threads'}, read from
    the exited process before it is reaped."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        cpus = str(LOAD_CPU) if cpus is None else cpus
        proc = subprocess.Popen(["taskset", "-c", cpus] + argv,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        LIVE.add(proc)
        killed, lock = [], threading.Lock()

        def on_timeout():
            with lock:
                if not killed:  # the pid is not reaped yet (WNOWAIT): still ours
                    killed.append(True)
                    os.kill(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, on_timeout)
        timer.daemon = True
        timer.start()
        try:
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        finally:
            with lock:
                timed_out = bool(killed)
                killed.append(False)  # from now on the timer does nothing
            timer.cancel()
        sched = None
        try:
            with open(f"/proc/{proc.pid}/schedstat") as f:
                sched = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
        _, status, ru = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        LIVE.discard(proc)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    if timed_out:
        stderr += f"\n(bench/run: killed after {timeout:.0f} s)"
    cpu = {"schedstat_ns": sched, "rusage_ns": int((ru.ru_utime + ru.ru_stime) * 1e9)}
    return proc.returncode, stdout, stderr, cpu


def last_json_line(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None
