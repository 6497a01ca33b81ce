"""The machine a run measured: CPU model, kernel, Debian release and load average
(the reports' "Machine:" line), and how busy its CPUs were just before the run."""

import os
import platform
import time


def machine_info():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/etc/debian_version") as f:
            debian = f.read().strip()
    except OSError:
        debian = "not Debian"
    try:
        with open("/proc/loadavg") as f:
            load = " ".join(f.read().split()[:3])
    except OSError:
        load = "?"
    return dict(cpu=model, nproc=os.cpu_count(), kernel=platform.release(), debian=debian,
                loadavg_at_start=load, python=platform.python_version())


def machine_busy(seconds=1.0):
    """Fraction of all CPUs busy over the next `seconds` (from /proc/stat), or None."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v[:8]) - v[3] - v[4], sum(v[:8])  # busy (not idle, not iowait), all
    try:
        b0, t0 = sample()
        time.sleep(seconds)
        b1, t1 = sample()
        return (b1 - b0) / (t1 - t0) if t1 > t0 else None
    except (OSError, ValueError, IndexError):
        return None
