"""What the echo benchmark runs: its rows (ritual on each backend, the peers and the
floors, and how each is started), its cells and modes, the issue's targets, and the
servers of the scaling section and of the cross-check. To add a server, add a row
to SERVERS (bench/README.md, "Adding a peer")."""

import os

from .common import HOST, SERVER_CPU
from .servers import RITUAL_BACKENDS

# name, binary (relative to the build directory), arguments before --listen,
# arguments after it in the load runs, and in the idle test. ritual runs one
# loop here, like every peer: it is pinned to one core with them.
RITUAL_LOAD_ARGS = ["--log-level", "warn", "--idle-timeout", "0", "--drain-timeout", "1",
                    "--workers", "1"]
# The idle test keeps ritual's default idle timeout (300 s, longer than the test):
# every connection has a timer armed, and the test shows that they cost nothing.
RITUAL_IDLE_ARGS = ["--log-level", "warn", "--idle-timeout", "300", "--drain-timeout", "1",
                    "--workers", "1"]
# ritual runs as one row per backend, `ritual echo --backend B`, named ritual-B
# (RITUAL_BACKENDS: io_uring, epoll, poll).
SERVERS = [(f"ritual-{b}", "ritual", ["echo", "--backend", b], RITUAL_LOAD_ARGS, RITUAL_IDLE_ARGS)
           for b in RITUAL_BACKENDS] + [
    ("libuv", "bench/uv_echo", [], [], []),
    ("libevent", "bench/event_echo", [], [], []),
    ("libev", "bench/ev_echo", [], [], []),
    ("floor-epoll", "bench/epoll_echo", [], [], []),
    ("floor-uring", "bench/uring_echo", [], [], []),
]
SERVER_NAMES = [s[0] for s in SERVERS]
RITUAL_NAMES = [s for s in SERVER_NAMES if s.startswith("ritual-")]  # --servers ritual
PEERS = ("libuv", "libev")  # "best peer" for the ratios: the better of these two
# The floor each ritual row is measured against, like for like (the summary's ratios).
OWN_FLOOR = {"ritual-io_uring": "floor-uring", "ritual-epoll": "floor-epoll",
             "ritual-poll": "floor-epoll"}

# The targets, checked in the cells that target_cell() accepts (any message
# size): ritual-io_uring's CPU per message at most 1.05x floor-uring's and at most
# 0.9x the better of libuv and libev's; and less RSS per idle connection on io_uring
# than on epoll (the idle test).
TARGETS = dict(uring_vs_floor_uring=1.05, uring_vs_best_peer=0.9,
               connections=(100, 1000), pipeline=1)


def target_cell(c):
    return c["connections"] in TARGETS["connections"] and c["pipeline"] == TARGETS["pipeline"]


MODES = {
    # connections, sizes, pipelines, rounds, duration (s), idle connections, idle hold (s)
    "default": dict(connections=[100, 1000], sizes=[64], pipelines=[1, 16], rounds=3,
                    duration=2.0, idle_conns=2000, idle_hold=3.0),
    "full": dict(connections=[1, 100, 1000], sizes=[64, 4096], pipelines=[1, 16], rounds=3,
                 duration=5.0, idle_conns=10000, idle_hold=10.0),
    "quick-check": dict(connections=[100], sizes=[64], pipelines=[1], rounds=1,
                        duration=1.0, idle_conns=200, idle_hold=1.0),
}
# The scaling section: one or two workers (ritual) or processes sharing the port with
# SO_REUSEPORT (the peers and the epoll floor, `--reuseport`); servers and generator
# both get both CPUs; the generator runs 2 threads.
SCALING = {
    "default": dict(connections=100, size=64, pipelines=[1, 16], rounds=2, duration=1.5),
    "full": dict(connections=100, size=64, pipelines=[1, 16], rounds=3, duration=5.0),
    "quick-check": dict(connections=100, size=64, pipelines=[1], rounds=1, duration=1.0),
}
SCALING_CPUS = "0,1"
SCALING_GEN_THREADS = 2
# name, binary: the servers that take --reuseport (floor-uring does not).
SCALING_REUSEPORT = [("libuv", "bench/uv_echo"), ("libevent", "bench/event_echo"),
                     ("libev", "bench/ev_echo"), ("floor-epoll", "bench/epoll_echo")]
# The ritual backends with scaling rows (x1 and x2 workers); poll, for sandboxes and
# tests, has none.
SCALING_RITUAL_BACKENDS = ("io_uring", "epoll")
CROSS_CELL = dict(connections=100, size=64, pipeline=1)
# Both ritual backends that matter, and a peer: if `ritual bench` flattered ritual,
# ritual's figures would move between the generators and libev's would not.
CROSS_SERVERS = ("ritual-io_uring", "ritual-epoll", "libev")


def cell_name(c):
    n = c["connections"]
    return f"{n:,} conn{'s' if n != 1 else ''}, {c['size']:,} B, pipeline {c['pipeline']}"


def cell_key(c):
    return f"c{c['connections']}-s{c['size']}-p{c['pipeline']}"


def server_cmd_template(name, binary, pre, args, build_rel):
    return " ".join(["taskset", "-c", str(SERVER_CPU), os.path.join(build_rel, binary)] + pre +
                    ["--listen", f"{HOST}:0"] + args)

