#!/usr/bin/env bash
# `make install` gives a user what they need: the header, both libraries, a
# pkg-config file that works, and a shared library exporting only ritual_
# symbols. Installs into a temporary prefix, builds the README's example
# against it with pkg-config, and checks that the result echoes.
set -euo pipefail
build=$1 source=$2
tmp=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
pid=

cmake --install "$build" --prefix "$tmp" >/dev/null
for f in include/ritual.h include/ritual_http.h include/ritual_list.h lib/libritual.a lib/libritual.so bin/ritual; do
    [ -e "$tmp/$f" ] || { echo "not installed: $f"; exit 1; }
done
pc=$(find "$tmp" -name ritual.pc | head -n1)
[ -n "$pc" ] || { echo "not installed: ritual.pc"; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$pc")

# Only ritual_ names are exported.
others=$(nm -D --defined-only "$tmp"/lib/libritual.so | awk '{print $3}' | grep -v '^ritual_' || true)
[ -z "$others" ] || { echo "exported symbols without the ritual_ prefix:"; echo "$others"; exit 1; }
# The static library too (internal functions are ritual__*): nothing to clash with a user's names.
others=$(nm -g --defined-only "$tmp"/lib/libritual.a | awk 'NF == 3 {print $3}' | grep -v '^ritual_' || true)
[ -z "$others" ] || { echo "global symbols without the ritual_ prefix in libritual.a:"; echo "$others"; exit 1; }

# Builds examples/NAME.c against the installed library with pkg-config,
# starts it on an ephemeral port (pid in $pid) and sets $port from its
# "listening on port N" line.
start_example() {
    cc -Wall -Wextra -Werror "$source/examples/$1.c" $(pkg-config --cflags --libs ritual) \
        -o "$tmp/$1"
    LD_LIBRARY_PATH="$tmp/lib" "$tmp/$1" 127.0.0.1:0 >"$tmp/$1.out" &
    pid=$!
    for _ in $(seq 100); do
        grep -q 'listening on port' "$tmp/$1.out" && break
        sleep 0.05
    done
    port=$(sed -n 's/^listening on port \([0-9]*\)$/\1/p' "$tmp/$1.out")
    [ -n "$port" ] || { echo "$1 did not start"; exit 1; }
}

start_example echo
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'hello ritual\n' >&3
read -r -t 5 line <&3
[ "$line" = "hello ritual" ] || { echo "echo returned '$line'"; exit 1; }
exec 3>&-
kill -TERM "$pid"
wait "$pid"

# The HTTP example, the same way: one request, read back whole.
start_example hello_http
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3
reply=$(timeout 5 cat <&3)
exec 3>&-
case "$reply" in
"HTTP/1.1 200 OK"*"Hello, world"*) ;;
*) echo "hello_http answered: $reply"; exit 1 ;;
esac
kill -TERM "$pid"
wait "$pid"
echo "installed, built with pkg-config, echoed and served HTTP: ok"
