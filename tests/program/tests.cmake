# Black-box tests of the `ritual` program: each starts `ritual echo` on an
# ephemeral 127.0.0.1 port and ends by asserting a clean exit (code 0, no
# sanitizer report). ritual_program_test(name timeout_seconds [properties...])
ritual_program_test(cli 60)
# Long option names matched whole in every subcommand: no abbreviations.
ritual_program_test(cli_options 60)
ritual_program_test(restart 60)
ritual_program_test(integrity 90)
ritual_program_test(starvation 60)
ritual_program_test(idle_cpu 60)
ritual_program_test(backlog 60)
ritual_program_test(fd_exhaustion 90)
ritual_program_test(shutdown 90)
ritual_program_test(max_conns 30) # test_max_conns.c is the library engineer's
# Heavy on CPU, memory or descriptors: alone, so their figures mean something.
ritual_program_test(backpressure 120 RUN_SERIAL TRUE)
ritual_program_test(scale 120 RUN_SERIAL TRUE)

# ritual bench: a 2-second smoke run against ritual echo (zero errors, the
# JSON shape), a corrupting server caught, and a server stall in the p99.
ritual_program_test(bench_smoke 60)
ritual_program_test(bench_verify 60)
ritual_program_test(bench_stall 60)
target_link_libraries(test_bench_verify PRIVATE Threads::Threads)
target_link_libraries(test_bench_stall PRIVATE Threads::Threads)

# ritual http: each test serves a document root of its own under /tmp.
ritual_program_test(http_basic 60)
ritual_program_test(http_security 60)
ritual_program_test(http_conditional 60)
ritual_program_test(http_site 60)
ritual_program_test(http_pipeline 60)
ritual_program_test(http_timeouts 60)
ritual_program_test(http_large 120 RUN_SERIAL TRUE)
ritual_program_test(http_access_log 60)
ritual_program_test(http_access_log_json 60)
ritual_program_test(http_shutdown 60)
ritual_program_test(http_load 90 RUN_SERIAL TRUE)

# SIGHUP, SIGUSR1 (reopen the log), SIGUSR2, SIGALRM (ignored) and SIGQUIT
# (drain) lose nothing: every access log line is written.
ritual_program_test(signals 60)
# What a hostile client makes ritual http hold stays bounded: pipelined
# ranges never read, and a large listing asked for by many.
ritual_program_test(http_bounds 120 RUN_SERIAL TRUE)

# The bench's histogram, compiled from the program's source (one process,
# no backend).
add_executable(test_histogram program/histogram.c ${PROJECT_SOURCE_DIR}/programs/ritual/histogram.c)
target_include_directories(test_histogram PRIVATE ${PROJECT_SOURCE_DIR}/programs/ritual)
target_link_libraries(test_histogram PRIVATE ritual_testsupport m)
ritual_test_cases(${CMAKE_CURRENT_SOURCE_DIR}/program/histogram.c histogram_cases)
foreach(case IN LISTS histogram_cases)
  add_test(NAME histogram.${case} COMMAND test_histogram ${case})
  set_tests_properties(histogram.${case} PROPERTIES TIMEOUT 30 LABELS "program;histogram"
                       ENVIRONMENT "${RITUAL_TEST_ENV}")
endforeach()

# examples/proxy.c in front of ritual echo: half-close both ways, 4 x 16 MiB
# byte-exact, memory bounded whichever side stalls.
ritual_program_test(proxy 120)
add_dependencies(test_proxy example_proxy)
# examples/chat.c on two workers: every line to every other client in order,
# a client that never reads cut without slowing the others, SIGTERM.
ritual_program_test(chat 120)
add_dependencies(test_chat example_chat)
ritual_program_test(tls 120)
# The open-file cache under a low RLIMIT_NOFILE, its idle expiry and its
# recheck; precompressed siblings chosen by Accept-Encoding.
ritual_program_test(http_file_cache 90)
ritual_program_test(http_precompressed 60)
# beneath.c's fallback against openat2 on random trees of symlinks: the same
# file or the same errno for every path (compiled from the program's source,
# no server).
add_executable(test_beneath program/beneath.c ${PROJECT_SOURCE_DIR}/programs/ritual/beneath.c)
target_include_directories(test_beneath PRIVATE ${PROJECT_SOURCE_DIR}/programs/ritual)
target_link_libraries(test_beneath PRIVATE ritual_testsupport)
ritual_test_cases(${CMAKE_CURRENT_SOURCE_DIR}/program/beneath.c beneath_cases)
foreach(case IN LISTS beneath_cases)
  add_test(NAME beneath.${case} COMMAND test_beneath ${case})
  set_tests_properties(beneath.${case} PROPERTIES TIMEOUT 60 LABELS "program;beneath"
                       ENVIRONMENT "${RITUAL_TEST_ENV}")
endforeach()
# Every http_security and http_file_cache case once more with
# RITUAL_HTTP_NO_OPENAT2=1: files opened by beneath.c's fallback (as under
# valgrind, an old kernel or seccomp) rather than openat2, as
# NAME.CASE.no_openat2, on the default backend only: the fallback does not
# depend on it.
foreach(name http_security http_file_cache)
  ritual_test_cases(${CMAKE_CURRENT_SOURCE_DIR}/program/${name}.c cases)
  foreach(case IN LISTS cases)
    add_test(NAME ${name}.${case}.no_openat2 COMMAND test_${name} ${case})
    set_tests_properties(${name}.${case}.no_openat2 PROPERTIES TIMEOUT 90
                         LABELS "program;${name};no_openat2"
                         ENVIRONMENT "${RITUAL_TEST_ENV};RITUAL_HTTP_NO_OPENAT2=1")
  endforeach()
endforeach()
# examples/sse_clock.c and examples/upload.c: an event stream ended cleanly
# by SIGTERM; uploads stored byte-exact, half of one leaving nothing.
ritual_program_test(examples_http 60)
add_dependencies(test_examples_http example_sse_clock example_upload)
# ritual http and request bodies: small ones dropped with the connection
# reused, over 1 MiB refused at once, a stalled one answered 408.
ritual_program_test(http_bodies 60)
# --proxy-protocol: the client's address from a PROXY header in the access
# log; no header, an untrusted source or a bad option refused.
ritual_program_test(proxy_protocol 60)

# Unix sockets in `ritual http` and `ritual echo` (several --listen at once,
# --socket-mode, a live or foreign file refused), --user (as root), and
# SIGHUP reloading the --mime table.
ritual_program_test(unix_user 60)
# --metrics-listen: the Prometheus figures of ritual http and ritual echo
# checked against the traffic the test sent; a metrics port in use.
ritual_program_test(metrics 60)
# SIGUSR2 ten times under steady load (every request a new connection): no
# connection refused, reset or lost from a queue, one process left.
ritual_program_test(upgrade 120 RUN_SERIAL TRUE)
# systemd-socket-activate hands ritual http its socket; a fake
# $NOTIFY_SOCKET hears READY, WATCHDOG, RELOADING and STOPPING; sockets
# given wrongly are refused with the reason.
ritual_program_test(socket_activation 60)
target_link_libraries(test_socket_activation PRIVATE Threads::Threads)
