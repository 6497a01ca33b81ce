#!/usr/bin/env bash
# Scale-out behind HAProxy, and a rolling restart that fails no request.
#
# Three `ritual http` instances behind Debian's haproxy (PROXY protocol v2
# to each, HTTP health checks), loaded through haproxy with `ritual bench
# http`, while the instances are restarted one by one the way docs/deploy.md
# tells an operator to: take the instance out of rotation on haproxy's
# runtime socket, wait until haproxy has no connection to it, stop it with
# SIGTERM (it drains), start it again, put it back, wait for the health
# check to see it up. Any failed request, a connect error, a reset or a
# status other than 2xx fails the test; so does an instance that served
# nothing or a restart that did not happen.
#
# Usage: haproxy.sh RITUAL_BINARY [SECONDS]
# Skipped (exit 0, with a line saying so) where haproxy is not installed,
# unless RITUAL_TEST_REQUIRE_TOOLS=1.
set -euo pipefail

ritual=$(realpath "$1")
duration=${2:-20}
instances=3

if ! command -v haproxy >/dev/null; then
    if [ "${RITUAL_TEST_REQUIRE_TOOLS:-}" = 1 ]; then
        echo "FAIL: haproxy is not installed (and RITUAL_TEST_REQUIRE_TOOLS=1)"
        exit 1
    fi
    echo "SKIP: haproxy is not installed (apt-get install haproxy): scale-out not tested"
    exit 0
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/ritual-scale-out.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*"
    for f in "$dir"/*.err; do
        [ -s "$f" ] && { echo "--- $f"; tail -n 20 "$f"; }
    done
    exit 1
}

# Waits (up to 10 s) until FILE has a line matching PATTERN; prints it.
await_line() {
    local file=$1 pattern=$2
    for _ in $(seq 1 200); do
        if grep -m1 -E "$pattern" "$file" 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    fail "no line matching '$pattern' in $file"
}

# A free loopback port for haproxy's frontend: bound, read back, released.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# One command on haproxy's runtime socket; prints the answer.
admin() {
    python3 - "$dir/admin.sock" "$1" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
out = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    out += chunk
sys.stdout.write(out.decode())
EOF
}

# Field NAME of server sN in haproxy's `show stat` CSV.
server_stat() {
    admin "show stat" | awk -F, -v srv="s$1" -v name="$2" '
        NR == 1 { for (i = 1; i <= NF; i++) if ($i == name || $i == "# " name) col = i }
        $1 == "ritual" && $2 == srv { print $col }'
}

await_stat() { # N FIELD VALUE: until server sN's FIELD is VALUE (10 s)
    for _ in $(seq 1 200); do
        [ "$(server_stat "$1" "$2")" = "$3" ] && return 0
        sleep 0.05
    done
    fail "s$1: $2 is '$(server_stat "$1" "$2")', not '$3'"
}

mkdir -p "$dir/www"
head -c 2000 /dev/urandom | base64 >"$dir/www/index.html"
echo ok >"$dir/www/health.txt"

# Instance N, generation G, on PORT (0 the first time: the kernel picks,
# and the restart binds the same one).
start_instance() {
    local n=$1 gen=$2 port=$3
    "$ritual" http --listen "127.0.0.1:$port" --root "$dir/www" --workers 1 \
        --proxy-protocol 127.0.0.1 --access-log "$dir/access.$n.$gen.log" \
        >"$dir/ritual.$n.$gen.out" 2>"$dir/ritual.$n.$gen.err" &
    instance_pid[$n]=$!
    pids+=($!)
    local line
    line=$(await_line "$dir/ritual.$n.$gen.out" '^listening on ')
    instance_port[$n]=${line##*:}
}

declare -a instance_pid instance_port
for n in $(seq 1 $instances); do
    start_instance "$n" a 0
done

front=$(free_port)
{
    cat <<EOF
global
    stats socket $dir/admin.sock mode 600 level admin
    maxconn 2000

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 10s

frontend web
    bind 127.0.0.1:$front
    default_backend ritual

backend ritual
    balance roundrobin
    option httpchk
    http-check send meth GET uri /health.txt ver HTTP/1.1 hdr Host localhost
    default-server check inter 200ms fall 2 rise 2 send-proxy-v2 check-send-proxy
EOF
    for n in $(seq 1 $instances); do
        echo "    server s$n 127.0.0.1:${instance_port[$n]}"
    done
} >"$dir/haproxy.cfg"
haproxy -c -f "$dir/haproxy.cfg" >/dev/null || fail "haproxy rejects $dir/haproxy.cfg"
haproxy -db -f "$dir/haproxy.cfg" >"$dir/haproxy.out" 2>"$dir/haproxy.err" &
pids+=($!)
for n in $(seq 1 $instances); do
    for _ in $(seq 1 200); do [ -S "$dir/admin.sock" ] && break; sleep 0.05; done
    await_stat "$n" status UP
done
echo "haproxy on 127.0.0.1:$front, instances on ports ${instance_port[*]}"

"$ritual" bench http --connect "127.0.0.1:$front" --connections 16 --rate 800 \
    --duration "$duration" --json >"$dir/bench.json" 2>"$dir/bench.err" &
bench=$!
pids+=($bench)

# The load runs a second before the first restart, and the restarts are
# spread over what remains.
sleep 1
for n in $(seq 1 $instances); do
    admin "set server ritual/s$n state maint" >/dev/null
    await_stat "$n" scur 0
    kill -TERM "${instance_pid[$n]}"
    wait "${instance_pid[$n]}" || fail "instance $n exited with status $? after SIGTERM"
    start_instance "$n" b "${instance_port[$n]}"
    admin "set server ritual/s$n state ready" >/dev/null
    await_stat "$n" status UP
    echo "s$n restarted on port ${instance_port[$n]}"
done

wait "$bench" || true
cat "$dir/bench.json"
echo
python3 - "$dir/bench.json" <<'EOF' || fail "the load saw failures (above)"
import json, sys
r = json.load(open(sys.argv[1]))
errors = r["errors"]
bad = {k: v for k, v in errors.items() if v}
if bad or r["status"]["2xx"] != r["requests"] or r["requests"] == 0:
    print("errors:", bad, "requests:", r["requests"], "status:", r["status"])
    sys.exit(1)
print(f"{r['requests']} requests, a rolling restart of every instance: none failed")
EOF
# Stopped, the instances flush their access logs: each generation of each
# served its share, and logged the client's address haproxy passed on.
for n in $(seq 1 $instances); do
    kill -TERM "${instance_pid[$n]}"
    wait "${instance_pid[$n]}" || fail "instance $n exited with status $? after SIGTERM"
    for gen in a b; do
        log="$dir/access.$n.$gen.log"
        served=$(grep -c "\"GET / HTTP/1.1\"" "$log" || true)
        [ "$served" -gt 0 ] || fail "instance $n ($gen) served nothing"
        grep -q '^127\.0\.0\.1 ' "$log" || fail "instance $n ($gen) logged no client address"
        echo "s$n ($gen) served $served requests"
    done
done
echo "PASS"
