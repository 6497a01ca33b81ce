#!/usr/bin/env bash
# Scale-out behind a load balancer, and a rolling restart that fails no
# request: the recipes of docs/deploy.md, run for real.
#
# Three `ritual http` instances (PROXY protocol on) behind a balancer,
# loaded through it with `ritual bench http`, while the instances are
# restarted one by one. Any failed request, connect error, reset or status
# other than 2xx fails the test; so does an instance that served nothing
# before or after its restart, or an access log without the client address.
#
#   haproxy       PROXY v2 to each instance, HTTP health checks, keep-alive
#                 load. A restart: take the instance out of rotation on the
#                 runtime socket, wait until haproxy holds no connection to
#                 it, SIGTERM (it drains), start it again, put it back, wait
#                 for the health check to see it up.
#   nginx-stream  TCP proxying with PROXY v1 (nginx's stream module), a new
#                 connection per request. A restart: SIGTERM, start again;
#                 meanwhile nginx's next-upstream moves refused connections
#                 to the other instances (open-source nginx has no active
#                 health checks to take one out first).
#
# Usage: rolling_restart.sh RITUAL_BINARY [SECONDS] [haproxy|nginx-stream]...
# (default: both). A balancer that is not installed is skipped with a line
# saying so, unless RITUAL_TEST_REQUIRE_TOOLS=1.
set -euo pipefail

ritual=$(realpath "$1")
duration=${2:-12}
shift $(($# < 2 ? $# : 2))
balancers=("$@")
[ ${#balancers[@]} -gt 0 ] || balancers=(haproxy nginx-stream)
instances=3
nginx_stream_module=/usr/lib/nginx/modules/ngx_stream_module.so

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

missing() {
    if [ "${RITUAL_TEST_REQUIRE_TOOLS:-}" = 1 ]; then
        fail "$1 is not installed (and RITUAL_TEST_REQUIRE_TOOLS=1)"
    fi
    echo "SKIP: $1 is not installed ($2): that balancer is not tested"
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

# A free loopback port for the balancer's frontend: bound, read back, freed.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

mkdir -p "$dir/www"
head -c 2000 /dev/urandom | base64 >"$dir/www/index.html"
echo ok >"$dir/www/health.txt"

declare -a instance_pid instance_port

# Instance N, generation GEN, on PORT (0 the first time: the kernel picks,
# and the restart binds the same one).
start_instance() {
    local n=$1 gen=$2 port=$3
    "$ritual" http --listen "127.0.0.1:$port" --root "$dir/www" --workers 1 \
        --proxy-protocol 127.0.0.1 --access-log "$dir/access.$n.$gen.log" \
        >"$dir/ritual.$n.$gen.out" 2>"$dir/ritual.$n.$gen.err" &
    instance_pid[n]=$!
    pids+=($!)
    local line
    line=$(await_line "$dir/ritual.$n.$gen.out" '^listening on ')
    instance_port[n]=${line##*:}
}

stop_instance() {
    local n=$1 status=0
    kill -TERM "${instance_pid[n]}"
    wait "${instance_pid[n]}" || status=$?
    [ "$status" = 0 ] || fail "instance $n exited with status $status after SIGTERM"
}

# --------------------------------------------------------------- haproxy

# One command on haproxy's runtime socket; prints the answer.
admin() {
    python3 - "$dir/admin.sock" "$1" <<'PY'
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
PY
}

# Field NAME of server sN in haproxy's `show stat` CSV.
server_stat() {
    admin "show stat" | awk -F, -v srv="s$1" -v name="$2" '
        NR == 1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) if ($i == name) col = i }
        $1 == "ritual" && $2 == srv { print $col }'
}

await_stat() { # N FIELD VALUE: until server sN's FIELD is VALUE (10 s)
    for _ in $(seq 1 200); do
        [ "$(server_stat "$1" "$2")" = "$3" ] && return 0
        sleep 0.05
    done
    fail "s$1: $2 is '$(server_stat "$1" "$2")', not '$3'"
}

haproxy_start() { # FRONT_PORT
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
    bind 127.0.0.1:$1
    default_backend ritual

backend ritual
    balance roundrobin
    option httpchk
    http-check send meth GET uri /health.txt ver HTTP/1.1 hdr Host localhost
    default-server check inter 200ms fall 2 rise 2 send-proxy-v2 check-send-proxy
EOF
        for n in $(seq 1 $instances); do
            echo "    server s$n 127.0.0.1:${instance_port[n]}"
        done
    } >"$dir/haproxy.cfg"
    haproxy -c -f "$dir/haproxy.cfg" >/dev/null || fail "haproxy rejects $dir/haproxy.cfg"
    haproxy -db -f "$dir/haproxy.cfg" >"$dir/haproxy.out" 2>"$dir/haproxy.err" &
    balancer_pid=$!
    pids+=($!)
    for _ in $(seq 1 200); do [ -S "$dir/admin.sock" ] && break; sleep 0.05; done
    for n in $(seq 1 $instances); do await_stat "$n" status UP; done
}

haproxy_restart() { # N
    admin "set server ritual/s$1 state maint" >/dev/null
    await_stat "$1" scur 0
    stop_instance "$1"
    start_instance "$1" b "${instance_port[$1]}"
    admin "set server ritual/s$1 state ready" >/dev/null
    await_stat "$1" status UP
}

# ---------------------------------------------------------- nginx-stream

nginx_stream_start() { # FRONT_PORT
    {
        cat <<EOF
load_module $nginx_stream_module;
daemon off;
pid $dir/nginx.pid;
error_log $dir/nginx.err warn;
events {}
stream {
    upstream ritual {
EOF
        for n in $(seq 1 $instances); do
            echo "        server 127.0.0.1:${instance_port[n]} max_fails=0;"
        done
        cat <<EOF
    }
    server {
        listen 127.0.0.1:$1;
        proxy_pass ritual;
        proxy_protocol on;
        proxy_connect_timeout 2s;
        proxy_next_upstream on;
        proxy_next_upstream_tries $instances;
    }
}
EOF
    } >"$dir/nginx.conf"
    nginx -t -q -p "$dir" -c "$dir/nginx.conf" 2>"$dir/nginx-check.err" ||
        fail "nginx rejects $dir/nginx.conf: $(cat "$dir/nginx-check.err")"
    nginx -p "$dir" -c "$dir/nginx.conf" >"$dir/nginx.out" 2>>"$dir/nginx.err" &
    balancer_pid=$!
    pids+=($!)
    # Ready once it answers through to an instance.
    for _ in $(seq 1 200); do
        curl -fsS -o /dev/null "http://127.0.0.1:$1/health.txt" 2>/dev/null && return 0
        sleep 0.05
    done
    fail "nginx did not answer on 127.0.0.1:$1"
}

nginx_stream_restart() { # N
    stop_instance "$1"
    start_instance "$1" b "${instance_port[$1]}"
}

# ------------------------------------------------------------------- run

run() { # BALANCER
    local balancer=$1 bench_mode=()
    case $balancer in
    haproxy)
        command -v haproxy >/dev/null || { missing haproxy "apt-get install haproxy"; return 0; }
        ;;
    nginx-stream)
        if ! command -v nginx >/dev/null || [ ! -e "$nginx_stream_module" ]; then
            missing "nginx's stream module" "apt-get install nginx-light libnginx-mod-stream"
            return 0
        fi
        bench_mode=(--close)
        ;;
    *) fail "unknown balancer '$balancer'" ;;
    esac
    rm -f "$dir"/access.* "$dir"/ritual.*
    for n in $(seq 1 $instances); do start_instance "$n" a 0; done
    local front
    front=$(free_port)
    "${balancer//-/_}_start" "$front"
    echo "$balancer on 127.0.0.1:$front, instances on ports ${instance_port[*]}"

    "$ritual" bench http --connect "127.0.0.1:$front" --connections 16 --rate 800 \
        --duration "$duration" "${bench_mode[@]}" --json >"$dir/bench.json" 2>"$dir/bench.err" &
    local bench=$!
    pids+=($!)
    # A second of load first; the restarts take a second or two each.
    sleep 1
    for n in $(seq 1 $instances); do
        "${balancer//-/_}_restart" "$n"
        echo "s$n restarted on port ${instance_port[n]}"
    done
    wait "$bench" || true
    kill -TERM "$balancer_pid"
    wait "$balancer_pid" || true
    python3 - "$dir/bench.json" "$balancer" <<'PY' || fail "$balancer: the load saw failures"
import json, sys
r = json.load(open(sys.argv[1]))
bad = {k: v for k, v in r["errors"].items() if v}
print(f"{sys.argv[2]}: {r['requests']} requests, status {r['status']}, errors {r['errors']}")
if bad or r["requests"] == 0 or r["status"]["2xx"] != r["requests"]:
    sys.exit(1)
PY
    # Stopped, the instances flush their access logs: each generation of
    # each served its share, and logged the client's address the
    # balancer passed on.
    for n in $(seq 1 $instances); do
        stop_instance "$n"
        for gen in a b; do
            local log="$dir/access.$n.$gen.log" served
            served=$(grep -c '"GET / HTTP/1.1"' "$log" || true)
            [ "$served" -gt 0 ] || fail "$balancer: instance $n ($gen) served nothing"
            grep -q '^127\.0\.0\.1 ' "$log" || fail "$balancer: instance $n ($gen) logged no client address"
            echo "s$n ($gen) served $served requests"
        done
    done
}

for balancer in "${balancers[@]}"; do run "$balancer"; done
echo "PASS"
