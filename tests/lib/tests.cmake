# The library's unit tests: each links libritual and runs a loop in-process.
ritual_library_test(timers 30)
ritual_library_test(watermarks 60)
ritual_library_test(conn 30)
ritual_library_test(loops 30)
ritual_library_test(teardown 30)

# make install + pkg-config + the README example, end to end. Not in the
# sanitizer build: the example is compiled there without the sanitizer runtime.
if(NOT RITUAL_SANITIZE)
  add_test(NAME install COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/lib/install.sh
           ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR})
  set_tests_properties(install PROPERTIES TIMEOUT 60 LABELS library)
endif()
ritual_library_test(connect 30)

ritual_library_test(reentrancy 60)
ritual_library_test(post 60)
ritual_library_test(server 120)
ritual_library_test(http_parser 120)
ritual_library_test(sendfile 60)
ritual_library_test(http 60)
# io_uring: the buffer ring running dry (1,000 connections), closes with
# operations in flight, loops freed unrun or on another thread, the fallback.
ritual_library_test(uring 120)
# A clean hang-up (both directions shut) while paused is not a reset: the
# last bytes, on_eof, then an orderly close.
ritual_library_test(hangup 30)
# Half-close (ritual_conn_shutdown_write) and keep_reading: what a relay
# needs, on every backend.
ritual_library_test(half_close 60)
# ritual_write_ref: no copy, every release exactly once, however the bytes
# leave (sent, or dropped with the connection).
ritual_library_test(write_ref 60)
# ritual_server's worker hooks, indices, control loop and post_all, and
# bounded posts.
ritual_library_test(workers 60)
# The input a connection holds never passes read_buffer_size, however its
# reading stops and resumes, on every backend.
ritual_library_test(input_bound 90)
# Queued output is what the kernel has not taken, on every backend: small
# writes the kernel takes are never queued, refused ones always are.
ritual_library_test(queued 30)
# A server's workers all run on one backend, even when an address-space
# limit leaves room for only some io_uring rings.
ritual_library_test(server_backend 30)
# fd watchers: readable and writable interest on the application's own
# descriptors, freed from their own callbacks, the same refusals everywhere.
ritual_library_test(watch 60)
# No file includes a header of a layer above its own (scripts/check-layers).
add_test(NAME layers COMMAND python3 ${PROJECT_SOURCE_DIR}/scripts/check-layers
         ${PROJECT_SOURCE_DIR})
set_tests_properties(layers PROPERTIES TIMEOUT 30 LABELS library)
ritual_library_test(tls 90)
# Streaming in the HTTP library: responses written as they go, with
# backpressure; request bodies streamed, dropped or refused; upgrades;
# HEAD errors without a body; extra header lines on every head.
ritual_library_test(http_stream 60)
# The PROXY protocol: v1 and v2 headers whole or trickled before on_open,
# the client's address from ritual_conn_peer; untrusted, malformed and slow
# ones closed unopened; on every backend.
ritual_library_test(proxy_protocol 30)
# Unix domain sockets: unix:/path and unix:@name listeners and connects,
# peer credentials, the socket file's life (stale replaced, live or foreign
# kept, mode and owner, removed on close), sendfile, a server's workers.
ritual_library_test(unix 60)
# ritual_user_check and ritual_drop_privileges: root becomes nobody for
# good (in a child), unknown users and groups refused, the same user a no-op.
ritual_library_test(privileges 30)
# The counters a metrics endpoint reads from another thread: connections
# closed by reason, HTTP responses by class, latency and body bytes.
ritual_library_test(stats 60)
# Sockets given rather than made (fd:N, systemd:NAME, an upgrade's), the
# notify protocol with its watchdog, and upgrades that fail and lose nothing.
ritual_library_test(inherit 60)
# ritual_loop_on_fds_short: an accept out of descriptors asks the
# application to close what it caches, and goes on at once if it did.
ritual_library_test(fds_short 30)
