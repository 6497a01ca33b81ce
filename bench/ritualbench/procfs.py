"""What /proc says about a process or the machine: on-CPU time (the figure every
table is built on), resident memory, busy time of all CPUs, and which event backend
a libritual process really runs on (from its descriptors)."""

import os
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_ns(pid):
    """On-CPU nanoseconds of the whole process pid, or None: its CPU-time clock
    (clock_gettime on MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED), the kernel's
    sum_exec_runtime of every thread, including threads that have ended, such as
    io_uring workers); failing that the per-thread sum from schedstat."""
    try:
        return time.clock_gettime_ns(((~pid) << 3) | 2)
    except OSError:
        return proc_sched_ns(pid)


def proc_sched_ns(pid):
    """Sum of the on-CPU nanoseconds (/proc/PID/task/*/schedstat, first field) of the
    threads of pid alive now; /proc/PID/stat utime + stime as a fallback; or None."""
    total, seen = 0, False
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        tids = []
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
                seen = True
        except (OSError, ValueError, IndexError):
            pass  # a thread that just ended, or no schedstat in this kernel
    if seen:
        return total
    try:  # fallback: utime + stime in clock ticks
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1_000_000_000 // CLK_TCK
    except (OSError, ValueError, IndexError):
        return None


def busy_ns():
    """CPU time all CPUs spent busy since boot (/proc/stat), in ns, or None."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return (sum(v[:8]) - v[3] - v[4]) * 1_000_000_000 // CLK_TCK
    except (OSError, ValueError, IndexError):
        return None


def proc_rss(pid):
    """VmRSS of pid in bytes, or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def backend_in_use(pid):
    """The event backend a libritual process runs on, from its descriptors: "io_uring"
    if it holds io_uring rings and no epoll instance, "epoll" the other way round,
    "poll" if neither, "io_uring and epoll" if both (some loops fell back); None if
    /proc/PID/fd cannot be read."""
    kinds = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                kinds.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
            except OSError:
                pass  # closed meanwhile
    except OSError:
        return None
    ring, ep = "anon_inode:[io_uring]" in kinds, "anon_inode:[eventpoll]" in kinds
    return {(True, False): "io_uring", (False, True): "epoll", (False, False): "poll",
            (True, True): "io_uring and epoll"}[ring, ep]
