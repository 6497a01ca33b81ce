/* net.h - client sockets, for the tests. */
#ifndef RITUAL_TEST_NET_H
#define RITUAL_TEST_NET_H

#include "check.h"

#include <stddef.h>
#include <stdint.h>

/* Blocking connect to 127.0.0.1:port with TCP_NODELAY; fails the test on error. */
int tcp_connect(int port);

/* Blocking connect; returns the socket, or -errno (e.g. -ECONNREFUSED). */
int tcp_try_connect(int port);

/* Blocking connect to a unix socket, "/path" or abstract "@name"; fails
 * the test on error. */
int unix_connect(const char *path);

/* One connection attempt to a listener that is being closed: 1 once it is
 * refused, 0 while it is still accepted. An attempt whose handshake lands
 * while the kernel closes the listener is reset; that means "closing, not
 * closed yet" and also gives 0. Any other error fails the test. */
int tcp_refused(int port);

/* As tcp_connect, with SO_RCVBUF set to `rcvbuf` before the handshake (so
 * the window is small from the start): a client that does not read pushes
 * back on the server at once. */
int tcp_connect_rcvbuf(int port, int rcvbuf);

/* Starts a non-blocking connect to 127.0.0.1:port (TCP_NODELAY). The
 * returned socket stays non-blocking. */
int tcp_connect_start(int port);

/* The pending error of a socket (SO_ERROR): 0 once connected. */
int tcp_socket_error(int fd);

/* Starts `n` non-blocking connects to `port` and waits up to `timeout_ms` for
 * them to complete. Fills fds[] (sockets stay non-blocking) and returns how
 * many completed. A connect that fails (SO_ERROR != 0) fails the test. */
size_t connect_many(int port, int *fds, size_t n, int timeout_ms);

void set_nonblocking(int fd, int on);
/* Waits for `events` on fd until `deadline` (now_ms() time); 0 on timeout. */
int wait_fd(int fd, short events, uint64_t deadline);

/* Sends all of buf (blocking or not: waits for POLLOUT), at most 10 s. */
void send_all(int fd, const void *buf, size_t n);

/* Receives exactly n bytes within timeout_ms, else fails the test. */
void recv_exact(int fd, void *buf, size_t n, int timeout_ms);

/* Expects the peer's FIN (recv returns 0) within timeout_ms: data, an error
 * or a timeout fails the test. */
void expect_eof(int fd, int timeout_ms);

/* How a stream ended, for recv_to_end. */
enum stream_end { STREAM_EOF = 1, STREAM_RESET };

/* Reads into buf[0..cap) until the peer's FIN or reset, waiting at most
 * timeout_ms in all; returns which of the two ended the stream, with the
 * bytes read in *len. No end within timeout_ms, more than cap bytes or any
 * other error fails the test: a peer that hangs is never taken for one that
 * closed. */
int recv_to_end(int fd, void *buf, size_t cap, size_t *len, int timeout_ms);

/* Sends msg and expects the same bytes back within timeout_ms. */
void echo_roundtrip(int fd, const void *msg, size_t n, int timeout_ms);

/* Each of fds[0..n) sends a 32-byte message of its own (numbered from
 * `first_id`) and must get exactly it back; all within timeout_ms. Returns
 * the milliseconds that took. */
uint64_t echo_many(const int *fds, size_t n, size_t first_id, int timeout_ms);

/* The port a bound socket listens on. */
int socket_port(int fd);

#endif
