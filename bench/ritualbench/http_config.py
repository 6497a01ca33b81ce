"""What the HTTP benchmark runs (`bench/run http`): ritual http as one row per
backend, against nginx and h2o serving the same two static files, and against
bench/http_floor, a bare epoll loop that answers every "\\r\\n\\r\\n" with a canned
response (the limit); the two generators; the cells and modes; the targets; and
how each server and generator is started, with the configuration files of nginx
and h2o. To add a server, see bench/README.md, "Adding a peer"."""

import os
import socket
import tempfile

from .common import HOST, SERVER_CPU

# ritual runs as one row per backend, `ritual http --backend B`, named ritual-B.
HTTP_RITUAL_BACKENDS = ("io_uring", "epoll")
HTTP_RITUAL_NAMES = [f"ritual-{b}" for b in HTTP_RITUAL_BACKENDS]
HTTP_SERVER_NAMES = HTTP_RITUAL_NAMES + ["nginx", "h2o", "floor"]
HTTP_PEERS = ("nginx", "h2o")  # the ratios' "best peer": the better of these two
HTTP_GENERATORS = ["ritual-bench", "wrk"]  # the first one present is the headline
# The document root: name -> contents.
HTTP_FILES = {"hello.txt": b"Hello, world\n",
              "4k.bin": bytes((i * 7 + 13) % 256 for i in range(4096))}
HTTP_MODES = {
    # connections, files, pipelines, rounds, duration (s, whole: wrk takes no fractions)
    "default": dict(connections=100, files=["hello.txt", "4k.bin"], pipelines=[1, 16],
                    rounds=3, duration=5),
    "quick-check": dict(connections=100, files=["hello.txt"], pipelines=[1, 16], rounds=1,
                        duration=1),
}
# The targets: the most ritual's CPU per request may be against the better of
# nginx and h2o, by pipeline depth.
HTTP_TARGETS = {1: 0.8, 16: 0.2}
# Like nginx's keepalive_requests above; no access log is the default.
RITUAL_HTTP_ARGS = ["--workers", "1", "--max-requests", "100000", "--log-level", "warn",
                    "--drain-timeout", "1"]

# wrk sends one "request" per turn; returning D of them in one string makes it keep
# D in flight per connection (wrk counts the requests in the string and every response).
WRK_PIPELINE_LUA = """\
-- bench/run: D requests per write, D in flight per connection (wrk -s this -- D)
init = function(args)
   local depth = tonumber(args[1]) or 1
   local r = {}
   for i = 1, depth do
      r[i] = wrk.format()
   end
   req = table.concat(r)
end

request = function()
   return req
end
"""

NGINX_CONF = """\
# bench/run http: nginx tuned for static files, one process
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log stderr;
events {{ worker_connections 4096; }}
http {{
    types {{ text/plain txt; application/octet-stream bin; }}
    default_type application/octet-stream;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    sendfile on;
    tcp_nopush on;
    open_file_cache max=1000;
    access_log off;
    keepalive_requests 100000;
    server {{
        listen {host}:{port};
        root {root};
    }}
}}
"""

# h2o 2.2: no access-log directive means no access log; errors go to stderr. Started
# as root it would switch to `nobody`, who cannot read our temporary directory: {user}
# keeps it root then (and is empty otherwise).
H2O_CONF = """\
# bench/run http: h2o with one thread
{user}num-threads: 1
pid-file: {tmp}/h2o.pid
listen:
  host: {host}
  port: {port}
hosts:
  default:
    paths:
      /:
        file.dir: {root}
"""


def http_cell_name(c):
    return (f"{c['connections']:,} conns, {c['size']:,} B file ({c['file']}), "
            f"pipeline {c['pipeline']}")


def http_cell_key(c):
    return f"c{c['connections']}-{c['file']}-p{c['pipeline']}" + \
        ("-resume" if c.get("resume") else "-close" if c.get("close") else "")


def free_port():
    """A port nobody listens on now (bound to 0 and released): for the servers that
    cannot be asked for port 0 and tell which one they got."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def http_server_spec(name, paths, root, tmp, cell):
    """(argv, port or None) of one server for one cell; the configuration files of
    nginx and h2o are written into a directory of their own under tmp."""
    if name in HTTP_RITUAL_NAMES:
        return [paths["ritual"], "http", "--backend", name[len("ritual-"):], "--listen",
                f"{HOST}:0", "--root", root] + RITUAL_HTTP_ARGS, None
    if name == "floor":
        return [paths["floor"], "--listen", f"{HOST}:0", "--body-size", str(cell["size"])], None
    return peer_spec(name, paths, NGINX_CONF if name == "nginx" else H2O_CONF, root, tmp)


def peer_spec(name, paths, template, root, tmp, **values):
    """(argv, port) of nginx or h2o, its configuration (template, formatted with a free
    port and values) written into a directory of its own under tmp."""
    port = free_port()
    d = tempfile.mkdtemp(prefix=f"{name}-{port}-", dir=tmp)
    conf = os.path.join(d, f"{name}.conf")
    with open(conf, "w") as f:
        f.write(template.format(tmp=d, host=HOST, port=port, root=root,
                                user="user: root\n" if os.geteuid() == 0 else "", **values))
    if name == "nginx":
        return [paths["nginx"], "-c", conf, "-p", d, "-e", "stderr"], port
    return [paths["h2o"], "-c", conf], port


def http_server_cmd_templates(names, build_rel):
    out = []
    for s in names:
        if s in HTTP_RITUAL_NAMES:
            out.append(" ".join(["taskset", "-c", str(SERVER_CPU), os.path.join(build_rel, "ritual"),
                                 "http", "--backend", s[len("ritual-"):], "--listen", f"{HOST}:0",
                                 "--root", "ROOT"] + RITUAL_HTTP_ARGS))
        elif s == "floor":
            out.append(f"taskset -c {SERVER_CPU} {os.path.join(build_rel, 'bench', 'http_floor')} "
                       f"--listen {HOST}:0 --body-size SIZE   # SIZE: the cell's file size")
        elif s == "nginx":
            out.append(f"taskset -c {SERVER_CPU} nginx -c DIR/nginx.conf -p DIR -e stderr")
        elif s == "h2o":
            out.append(f"taskset -c {SERVER_CPU} h2o -c DIR/h2o.conf")
    return out


def http_generator_argv(gen, paths, port, cell, duration, script):
    url = f"/{cell['file']}"
    if gen == "wrk":
        return [paths["wrk"], "-t1", f"-c{cell['connections']}", f"-d{int(duration)}s",
                "--latency"] + (["-s", script] if cell["pipeline"] > 1 else []) + \
            [f"http://{HOST}:{port}{url}"] + \
            (["--", str(cell["pipeline"])] if cell["pipeline"] > 1 else [])
    # TLS cells (bench/run http --tls): TLS without verification; with close, a new
    # connection (and handshake) per request; with resume, each one offers the last session.
    tls = (["--tls"] if cell.get("tls") else []) + \
        (["--tls-resume"] if cell.get("resume") else []) + \
        (["--close"] if cell.get("close") else [])
    return [paths["ritual"], "bench", "http", "--connect", f"{HOST}:{port}",
            "--connections", str(cell["connections"]), "--pipeline", str(cell["pipeline"]),
            "--duration", f"{duration:g}", "--url", url] + tls + ["--json"]
