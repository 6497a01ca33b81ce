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

# Starts the program $1 on an ephemeral port (pid in $pid) and sets $port
# from its "listening on port N" line.
start_program() {
    local out="$1.out"
    "$1" 127.0.0.1:0 >"$out" &
    pid=$!
    for _ in $(seq 100); do
        grep -q 'listening on port' "$out" && break
        sleep 0.05
    done
    port=$(sed -n 's/^listening on port \([0-9]*\)$/\1/p' "$out")
    [ -n "$port" ] || { echo "$1 did not start"; exit 1; }
}

# Builds examples/NAME.c against the installed library with pkg-config and
# starts it.
start_example() {
    cc -Wall -Wextra -Werror "$source/examples/$1.c" $(pkg-config --cflags --libs ritual) \
        -o "$tmp/$1"
    LD_LIBRARY_PATH="$tmp/lib" start_program "$tmp/$1"
}

# One line echoed by the program listening on $port, which then stops cleanly.
expect_echo() {
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    printf 'hello ritual\n' >&3
    read -r -t 5 line <&3
    [ "$line" = "hello ritual" ] || { echo "$1: echo returned '$line'"; exit 1; }
    exec 3>&-
    kill -TERM "$pid"
    wait "$pid"
}

start_example echo
expect_echo "echo (installed, pkg-config)"

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
# The build tree used in place: ritual-uninstalled.pc, no install, no
# LD_LIBRARY_PATH (its rpath finds the library).
cc -Wall -Wextra -Werror "$source/examples/echo.c" \
    $(PKG_CONFIG_PATH="$build" pkg-config --cflags --libs ritual) -o "$tmp/echo_uninstalled"
start_program "$tmp/echo_uninstalled"
expect_echo "echo (build tree, ritual-uninstalled.pc)"

# CMake users: find_package(ritual), installed and from the build tree.
mkdir "$tmp/cmake-user"
cat >"$tmp/cmake-user/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.16)
project(uses_ritual C)
find_package(ritual 0 REQUIRED)
add_executable(echo_shared $source/examples/echo.c)
target_link_libraries(echo_shared PRIVATE ritual::ritual)
add_executable(echo_static $source/examples/echo.c)
target_link_libraries(echo_static PRIVATE ritual::ritual_static)
CMAKE
for where in "-DCMAKE_PREFIX_PATH=$tmp" "-Dritual_DIR=$build"; do
    rm -rf "$tmp/cmake-build"
    cmake -S "$tmp/cmake-user" -B "$tmp/cmake-build" "$where" >"$tmp/cmake.log" 2>&1 ||
        { cat "$tmp/cmake.log"; echo "find_package(ritual) with $where failed"; exit 1; }
    cmake --build "$tmp/cmake-build" >"$tmp/cmake.log" 2>&1 ||
        { cat "$tmp/cmake.log"; echo "building against ritual::ritual with $where failed"; exit 1; }
    start_program "$tmp/cmake-build/echo_static"
    expect_echo "echo_static (find_package, $where)"
    LD_LIBRARY_PATH="$tmp/lib" start_program "$tmp/cmake-build/echo_shared"
    expect_echo "echo_shared (find_package, $where)"
done

echo "installed, built with pkg-config (installed and uninstalled) and find_package: ok"
