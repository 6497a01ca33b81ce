"""What the TLS benchmark runs (`bench/run http --tls`): the HTTP benchmark's ritual
rows, nginx and h2o over HTTPS (no floor: there is no TLS floor), one certificate for
all, made with `openssl` at bench time; its cells (keep-alive, pipelined, and a new
connection per request with a full or a resumed handshake), modes and targets; and
how each server is started, with the TLS configuration files of nginx and h2o, which
are the plaintext ones with TLS added and nothing else changed."""

import os
import subprocess

from .common import HOST, SERVER_CPU
from .http_config import (H2O_CONF, HTTP_FILES, HTTP_RITUAL_NAMES, NGINX_CONF,
                          RITUAL_HTTP_ARGS, http_server_spec, peer_spec)

TLS_SERVER_NAMES = HTTP_RITUAL_NAMES + ["nginx", "h2o"]
TLS_GENERATORS = ["ritual-bench"]  # wrk cannot close every connection nor control resumption
# The document root: the HTTP benchmark's files and 1 MiB more (the 4 KiB pattern again).
TLS_FILES = dict(HTTP_FILES, **{"1m.bin": HTTP_FILES["4k.bin"] * 256})

# The cells, the same in every mode: (kind, connections, file, pipeline). A handshake
# kind costs a new connection per request (`--close`), resumed ones offering the last
# session (`--tls-resume`); 1 MiB responses get fewer connections, so that the run is
# not all buffering.
TLS_CELLS = [
    ("keep-alive", 100, "hello.txt", 1),
    ("keep-alive", 100, "4k.bin", 1),
    ("keep-alive", 10, "1m.bin", 1),
    ("pipelined", 100, "hello.txt", 16),
    ("full handshake", 8, "hello.txt", 1),
    ("resumed handshake", 8, "hello.txt", 1),
]
TLS_MODES = {
    "default": dict(cells=TLS_CELLS, rounds=3, duration=5),
    "quick-check": dict(cells=TLS_CELLS, rounds=1, duration=1),
}
# The targets: the most ritual's CPU per request (per handshake, where every
# request is a connection) may be against the better of nginx and h2o, by kind of cell.
TLS_TARGETS = {"keep-alive": 0.8, "pipelined": 0.5, "full handshake": 1.0,
               "resumed handshake": 1.0}
# A resumed cell is one if at least this share of its handshakes were resumed.
TLS_RESUMED_SHARE = 0.9

CERT_SUBJECT_ALT = "DNS:localhost,IP:127.0.0.1"


def tls_cells(cfg):
    return [dict(connections=n, file=f, size=len(TLS_FILES[f]), pipeline=p, tls=True,
                 close=kind.endswith("handshake"), resume=kind == "resumed handshake")
            for kind, n, f, p in cfg["cells"]]


def tls_cell_kind(c):
    return ("resumed handshake" if c.get("resume") else "full handshake" if c.get("close")
            else "pipelined" if c["pipeline"] > 1 else "keep-alive")


def tls_target(c):
    return TLS_TARGETS[tls_cell_kind(c)]


def tls_cell_name(c):
    kind = tls_cell_kind(c)
    what = f"{c['size']:,} B file ({c['file']})"
    if kind.endswith("handshake"):
        return f"{kind} per request, {c['connections']:,} conns, {what}"
    return f"{kind}, {c['connections']:,} conns, {what}, pipeline {c['pipeline']}"


def tls_chart_panel(c):
    """(panel, bar group) of a cell in tls-cpu.png: 1 MiB and the handshakes cost 10 to
    100 times a small keep-alive request, so they get panels of their own."""
    kind = tls_cell_kind(c)
    if kind.endswith("handshake"):
        return f"a new connection per request, {c['size']:,} B", kind
    if c["size"] >= 1 << 20:
        return "keep-alive, pipeline 1, 1 MiB", f"{c['size']:,} B"
    return f"keep-alive, pipeline {c['pipeline']}", f"{c['size']:,} B"


def cert_argv(key, cert):
    return ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
            "-addext", f"subjectAltName={CERT_SUBJECT_ALT}"]


def make_cert(tmp):
    """An ECDSA P-256 self-signed certificate for localhost, tmp/cert.pem and its key
    tmp/key.pem, made by `openssl req`. Returns (cert, key); raises OSError if openssl
    is missing or fails."""
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    r = subprocess.run(cert_argv(key, cert), capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise OSError(f"openssl req exited {r.returncode}: {r.stderr.strip()[-300:]}")
    return cert, key


def with_tls(conf, old, new):
    """conf with old (which must be there, once) replaced by new."""
    assert conf.count(old) == 1, old
    return conf.replace(old, new)


# The plaintext configurations with TLS added; nothing else changes (sendfile has no
# effect on TLS, but stays). nginx keeps no session cache (`off`; its default, `none`,
# keeps none either) and resumes by session tickets only.
NGINX_TLS_CONF = with_tls(with_tls(
    NGINX_CONF, "# bench/run http:", "# bench/run http --tls:"),
    "        listen {host}:{port};\n",
    "        listen {host}:{port} ssl;\n"
    "        ssl_certificate {cert};\n"
    "        ssl_certificate_key {key};\n"
    "        ssl_protocols TLSv1.2 TLSv1.3;\n"
    "        ssl_session_tickets on;\n"
    "        ssl_session_cache off;\n")
# h2o 2.2: its session resumption defaults (an internal cache and session tickets).
H2O_TLS_CONF = with_tls(with_tls(
    H2O_CONF, "# bench/run http:", "# bench/run http --tls:"),
    "  port: {port}\n",
    "  port: {port}\n"
    "  ssl:\n"
    "    certificate-file: {cert}\n"
    "    key-file: {key}\n")


def tls_server_spec(name, paths, root, tmp, cell, cert, key):
    """(argv, port or None) of one server for one cell, serving HTTPS with cert and key."""
    if name in HTTP_RITUAL_NAMES:
        argv, port = http_server_spec(name, paths, root, tmp, cell)
        return argv + ["--tls-cert", cert, "--tls-key", key], port
    return peer_spec(name, paths, NGINX_TLS_CONF if name == "nginx" else H2O_TLS_CONF,
                     root, tmp, cert=cert, key=key)


def tls_server_cmd_templates(names, build_rel):
    out = []
    for s in names:
        if s in HTTP_RITUAL_NAMES:
            out.append(" ".join(["taskset", "-c", str(SERVER_CPU),
                                 os.path.join(build_rel, "ritual"), "http", "--backend",
                                 s[len("ritual-"):], "--listen", f"{HOST}:0", "--root", "ROOT"] +
                                RITUAL_HTTP_ARGS + ["--tls-cert", "TMP/cert.pem",
                                                    "--tls-key", "TMP/key.pem"]))
        elif s == "nginx":
            out.append(f"taskset -c {SERVER_CPU} nginx -c DIR/nginx.conf -p DIR -e stderr")
        elif s == "h2o":
            out.append(f"taskset -c {SERVER_CPU} h2o -c DIR/h2o.conf")
    return out
