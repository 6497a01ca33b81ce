"""What both benchmarks do around their measurements: SIGTERM and SIGHUP turned into
an interruption that stops every server, the build and output directories, the
checks that the two CPUs exist, the descriptor limit, the date and machine stamped
on the report, and the failures listed at the end."""

import datetime
import os
import resource
import shutil
import signal
import sys
import tempfile

from .common import LOAD_CPU, REPO, SERVER_CPU, log
from .machine import machine_busy, machine_info
from .servers import kill_live


def interrupt_on_signals():
    def interrupted(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupted)  # Ctrl-C already raises KeyboardInterrupt
    signal.signal(signal.SIGHUP, interrupted)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it


def interrupted(scratch, out_dir):
    """After a KeyboardInterrupt: every server ended, the scratch directory removed, the
    output left as it was. Returns the exit status."""
    kill_live()
    shutil.rmtree(scratch, ignore_errors=True)
    log(f"interrupted: servers stopped; {out_dir} left as it was")
    return 130


def directories(build_arg, out_arg, quick_check, quick_prefix):
    """(build, build as the reports show it, output directory), the output directory
    created: --out, else a temporary one in quick-check mode, else docs/bench."""
    build = os.path.abspath(build_arg) if build_arg else os.path.join(REPO, "build")
    build_rel = os.path.relpath(build, REPO) if build.startswith(REPO + os.sep) else build
    if out_arg:
        out_dir = os.path.abspath(out_arg)
    elif quick_check:
        out_dir = tempfile.mkdtemp(prefix=quick_prefix)
    else:
        out_dir = os.path.join(REPO, "docs", "bench")
    os.makedirs(out_dir, exist_ok=True)
    return build, build_rel, out_dir


def check_cpus():
    """Exit unless taskset is there and we may run on the server's and the load's CPUs."""
    if not shutil.which("taskset"):
        sys.exit("bench/run: taskset not found (util-linux)")
    cpus = os.sched_getaffinity(0)
    if SERVER_CPU not in cpus or LOAD_CPU not in cpus:
        sys.exit(f"bench/run: needs CPUs {SERVER_CPU} and {LOAD_CPU}; allowed: {sorted(cpus)}")


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        except (ValueError, OSError) as e:
            log(f"warning: could not raise RLIMIT_NOFILE to {want}: {e}")
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def date_and_invocation():
    date = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return date, "bench/run" + "".join(" " + a for a in sys.argv[1:])


def machine_at_start():
    """(machine_info(), machine_busy()), with a warning if something else is running."""
    machine = machine_info()  # the load average before we add ours
    busy = machine_busy()
    if busy is not None and busy > 0.05:
        log(f"warning: the machine is {busy:.0%} busy before we start: something else is "
            "running, and it will show up as noise in these figures")
    return machine, busy


def report_failures(failures):
    """Log the failures; the exit status: 1 if there were any."""
    if failures:
        log(f"{len(failures)} failure(s):")
        for f in failures:
            log(f"  {f}")
        return 1
    return 0
