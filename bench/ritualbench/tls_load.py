"""One TLS load run: the HTTP one (http_load) with the handshakes `ritual bench`
counted in its window kept in the record and checked against the cell (a connection
per request must mean a handshake per request; in a resumed cell, a ritual row must
resume, and nginx or h2o resuming less is flagged), and what a server negotiates
with a plain client."""

import socket

from .common import HOST
from .http_config import HTTP_RITUAL_NAMES
from .http_load import client_tls_context, http_describe, http_load_run
from .tls_config import TLS_RESUMED_SHARE


def tls_load_run(server, gen, paths, cell, duration, rnd, script):
    rec = http_load_run(server, gen, paths, cell, duration, rnd, script)
    res = rec["result"] or {}
    full, resumed = res.get("tls_full"), res.get("tls_resumed")
    rec["tls_full"], rec["tls_resumed"] = full, resumed
    if not rec["ok"] or not cell.get("close"):
        return rec
    reqs = res.get("requests") or 0
    if full is None or resumed is None:
        rec["problem"] = "the generator reported no TLS handshake counts (tls_full, tls_resumed)"
    elif full + resumed < 0.9 * reqs:
        rec["problem"] = (f"{full + resumed} handshakes for {reqs} requests: connections "
                          "were reused despite Connection: close")
    elif cell.get("resume") and resumed < TLS_RESUMED_SHARE * (full + resumed):
        what = f"{resumed} of {full + resumed} handshakes resumed ({full} full)"
        if server.name in HTTP_RITUAL_NAMES:
            rec["problem"] = f"not resumed: {what}"
        else:  # a peer's way with tickets, not a fault of the run: its figure is marked
            rec["flag"] = f"partly resumed: {what}"
    elif not cell.get("resume") and resumed:
        rec["problem"] = f"{resumed} handshakes resumed without --tls-resume"
    if rec["problem"]:
        rec["ok"] = False
    return rec


def tls_describe(rec):
    s = http_describe(rec)
    if rec.get("tls_full") is not None and (rec["tls_full"] or rec.get("tls_resumed")):
        s += f"  TLS {rec['tls_full']} full, {rec['tls_resumed']} resumed"
    if rec.get("flag"):
        s += f"  ({rec['flag']})"
    return s


def tls_probe(port, timeout=2.0):
    """What the server negotiates with Python's client (OpenSSL's defaults, no
    verification): "TLSv1.3 TLS_AES_256_GCM_SHA384" say, or None."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as raw, \
                client_tls_context().wrap_socket(raw) as s:
            return f"{s.version()} {s.cipher()[0]}"
    except OSError:
        return None
