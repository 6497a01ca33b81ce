/* support.h - helpers for the black-box tests of the `ritual` program.
 *
 * Every test is its own process: `test_<name> PATH_TO_RITUAL`. It starts the
 * server on an ephemeral 127.0.0.1 port, tells a short story against it with
 * ordinary sockets, and ends by stopping the server and asserting that it
 * exited 0 with no sanitizer report on its stderr.
 *
 * Every helper checks its system calls; any failure ends the test at once
 * (exit 1) after printing file:line, dumping the stderr of the servers still
 * running and killing them.
 */
#ifndef RITUAL_TEST_SUPPORT_H
#define RITUAL_TEST_SUPPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

/* ------------------------------------------------------------ assertions */

#define ASSERT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond))                                                                               \
            test_fail(__FILE__, __LINE__, "assertion failed: %s", #cond);                          \
    } while (0)

#define ASSERT_CMP_(a, op, b)                                                                      \
    do {                                                                                           \
        long long assert_a_ = (long long)(a);                                                      \
        long long assert_b_ = (long long)(b);                                                      \
        if (!(assert_a_ op assert_b_))                                                             \
            test_fail(__FILE__, __LINE__, "assertion failed: %s %s %s (%lld %s %lld)", #a, #op,    \
                      #b, assert_a_, #op, assert_b_);                                              \
    } while (0)

#define ASSERT_EQ(a, b) ASSERT_CMP_(a, ==, b)
#define ASSERT_NE(a, b) ASSERT_CMP_(a, !=, b)
#define ASSERT_LT(a, b) ASSERT_CMP_(a, <, b)
#define ASSERT_LE(a, b) ASSERT_CMP_(a, <=, b)
#define ASSERT_GT(a, b) ASSERT_CMP_(a, >, b)
#define ASSERT_GE(a, b) ASSERT_CMP_(a, >=, b)

/* For measurements (CPU percentages): compares and prints as doubles. */
#define ASSERT_DBL_LT(a, b)                                                                        \
    do {                                                                                           \
        double assert_a_ = (double)(a);                                                            \
        double assert_b_ = (double)(b);                                                            \
        if (!(assert_a_ < assert_b_))                                                              \
            test_fail(__FILE__, __LINE__, "assertion failed: %s < %s (%.3f < %.3f)", #a, #b,       \
                      assert_a_, assert_b_);                                                       \
    } while (0)

/* Fails the test with a message, like an assertion. */
#define FAIL(...) test_fail(__FILE__, __LINE__, __VA_ARGS__)

/* Checks a system call that returns -1 and sets errno on failure; returns
 * its result otherwise: `int fd = SYSCHECK(socket(...));` */
#define SYSCHECK(call) sys_check_((long)(call), #call, __FILE__, __LINE__)

void test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
long sys_check_(long ret, const char *what, const char *file, int line);

/* Prints "# message" on stdout, for the test report. */
void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Checks argv (argv[1] is the ritual binary), ignores SIGPIPE in the test
 * process (the server gets the default action back) and returns argv[1]. */
const char *test_init(int argc, char **argv);

/* ------------------------------------------------------------ the server */

struct server {
    pid_t pid;
    int port;             /* as printed on the "listening on" line */
    char address[128];    /* e.g. "127.0.0.1:41234" or "[::1]:41234" */
    int stdout_fd;        /* read end of the server's stdout */
    char stderr_path[64]; /* the server's stderr goes to this file */
    int exited;           /* 1 once reaped; then `status` is valid */
    int status;           /* raw wait status */
};

/* Starts `ritual echo --listen 127.0.0.1:0 EXTRA...` (extra_args is a
 * NULL-terminated list, or NULL), with RLIMIT_NOFILE set to `nofile` unless
 * it is 0, and waits up to 10 s for its "listening on" line. */
void server_start(const char *ritual_path, const char *const extra_args[], rlim_t nofile,
                  struct server *out);

/* As server_start, listening on `listen` ("127.0.0.1:7123", "[::1]:0"). The
 * printed host must match the requested one, and so must the port unless 0. */
void server_start_at(const char *ritual_path, const char *listen, const char *const extra_args[],
                     rlim_t nofile, struct server *out);

/* The general form: starts `ritual COMMAND --listen LISTEN EXTRA...`
 * ("echo", "http", ...) as server_start_at does for `echo`. */
void server_start_cmd(const char *ritual_path, const char *command, const char *listen,
                      const char *const extra_args[], rlim_t nofile, struct server *out);

/* Waits up to `timeout_ms` for the server to exit. Returns 1 if it has
 * exited (status in s->status), 0 if it is still running. */
int server_wait(struct server *s, int timeout_ms);

/* Sends SIGTERM (unless the server already exited) and waits up to 15 s for
 * it to exit; fails the test if it does not. Returns the raw wait status. */
int server_stop(struct server *s);

/* Stops the server if it is still running, then asserts that it exited with
 * `code`, that its stderr holds no sanitizer report and that it printed
 * nothing on stdout after its "listening on" line. */
void server_expect_exit(struct server *s, int code);

/* server_expect_exit(s, 0): every test ends with this. */
void server_expect_clean_exit(struct server *s);

/* Prints the server's stderr (at most the last 16 KiB) to the test output. */
void server_dump_stderr(const struct server *s);

/* ------------------------------------------------------------- commands */

struct cmd_result {
    int exit_code; /* -1 if killed by a signal */
    int term_signal;
    char out[16384];
    size_t out_len;
    char err[16384];
    size_t err_len;
};

/* Runs argv (argv[0] is the path), stdin from /dev/null, capturing stdout
 * and stderr (NUL-terminated, truncated if longer than the buffers). Fails
 * the test if it does not exit within `timeout_ms`. */
void run_command(const char *const argv[], int timeout_ms, struct cmd_result *r);

/* Looks `name` up in $PATH and writes its path into path[cap]. Returns 1 if
 * found; 0 if not, after a note that what needs it is skipped -- unless
 * RITUAL_TEST_REQUIRE_TOOLS=1 is set, which makes a missing tool a failure. */
int find_tool(const char *name, char *path, size_t cap);

/* Number of lines in `text` (a final line without '\n' counts too). */
int count_lines(const char *text);

/* --------------------------------------------------------------- sockets */

/* Blocking connect to 127.0.0.1:port with TCP_NODELAY; fails the test on error. */
int tcp_connect(int port);

/* Blocking connect; returns the socket, or -errno (e.g. -ECONNREFUSED). */
int tcp_try_connect(int port);

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

/* Sends msg and expects the same bytes back within timeout_ms. */
void echo_roundtrip(int fd, const void *msg, size_t n, int timeout_ms);

/* Each of fds[0..n) sends a 32-byte message of its own (numbered from
 * `first_id`) and must get exactly it back; all within timeout_ms. Returns
 * the milliseconds that took. */
uint64_t echo_many(const int *fds, size_t n, size_t first_id, int timeout_ms);

/* The port a bound socket listens on. */
int socket_port(int fd);

/* ------------------------------------------------ processes and the clock */

uint64_t now_ms(void);
void sleep_ms(int ms);

/* utime + stime of a process, in clock ticks (sysconf(_SC_CLK_TCK) a second). */
long proc_cpu_ticks(pid_t pid);

/* The process state letter from /proc/PID/stat ('R', 'S', 'T', ...). */
char proc_state(pid_t pid);

/* A "Name:  N kB" field of /proc/PID/status (e.g. "VmRSS", "VmHWM"), in kB. */
long proc_status_kb(pid_t pid, const char *field);
long proc_rss_kb(pid_t pid);

/* Waits `window_ms` and returns the CPU the process used meanwhile, as a
 * percentage of one core; `ticks` (may be NULL) gets the raw tick count. */
double proc_cpu_percent(pid_t pid, int window_ms, long *ticks);

/* Raises RLIMIT_NOFILE of the test process to at least n (soft and hard). */
void raise_nofile(rlim_t n);

/* Raises RLIMIT_NOFILE towards `want`, settling for the hard limit if the
 * test may not raise that (no CAP_SYS_RESOURCE), as long as it is at least
 * `need`. Returns the soft limit now in force. */
rlim_t raise_nofile_up_to(rlim_t want, rlim_t need);

/* ------------------------------------------------------------- payloads */

/* xorshift64*: deterministic pseudo-random numbers. */
struct prng {
    uint64_t state;
};

void prng_seed(struct prng *r, uint64_t seed);
uint64_t prng_next(struct prng *r);
/* Uniform in [lo, hi]. */
uint64_t prng_range(struct prng *r, uint64_t lo, uint64_t hi);
void prng_fill(struct prng *r, void *buf, size_t n);

/* A pattern stream you can regenerate at any offset: pattern_fill writes the
 * bytes [offset, offset + n) of the stream named by `seed`. */
void pattern_fill(uint64_t seed, uint64_t offset, void *buf, size_t n);

/* Returns the index of the first byte of buf that differs from the stream at
 * `offset`, or n if all n bytes match. */
size_t pattern_mismatch(uint64_t seed, uint64_t offset, const void *buf, size_t n);

/* ---------------------------------------------------------------- files */

/* Creates a fresh directory "/tmp/ritual-test-XXXXXX" into path[cap]. A
 * test that fails leaves none behind: they are removed at exit. */
void temp_dir_make(char *path, size_t cap);

/* Writes `len` bytes as the file DIR/REL (created or truncated, mode 0644). */
void file_write_at(const char *dir, const char *rel, const void *data, size_t len);
/* A whole file in a NUL-terminated malloc'd buffer (NULL if it cannot be opened). */
char *file_read(const char *path, size_t *len_out);

/* Writes DIR/REL with `len` bytes of pattern_fill(seed, 0, ...). */
void file_write_pattern_at(const char *dir, const char *rel, uint64_t seed, size_t len);

/* Creates the directory DIR/REL (mode 0755). */
void dir_make_at(const char *dir, const char *rel);

/* Removes `path` and everything below it, never following symlinks. */
void remove_tree(const char *path);

/* ------------------------------------------------------------------ HTTP */

/* A client connection and the bytes it read past the last response (the
 * start of the next one, when requests are pipelined). */
struct http_client {
    int fd;
    size_t len;
    char buf[1 << 16];
};

#define HTTP_MAX_FIELDS 64

/* One response, as read off the wire by a small strict parser: a status
 * line "HTTP/1.x NNN reason", header lines ending in CRLF, and a body framed
 * by Content-Length (none for HEAD, 1xx, 204 and 304; until the close when
 * there is no Content-Length). */
struct http_response {
    int status;
    int minor_version;
    size_t head_len; /* bytes of the head, its empty line included */
    size_t num_fields;
    const char *names[HTTP_MAX_FIELDS]; /* NUL-terminated, in `fields` */
    const char *values[HTTP_MAX_FIELDS];
    char fields[16384];
    int has_length; /* a Content-Length header was present */
    uint64_t content_length;
    char *body; /* malloc'd and NUL-terminated (NULL after http_read_head) */
    size_t body_len;
};

/* Starts `ritual http --listen 127.0.0.1:0 --root ROOT EXTRA...` as
 * server_start does (extra_args NULL-terminated, or NULL). */
void http_server_start(const char *ritual_path, const char *root, const char *const extra_args[],
                       struct server *out);

/* Connects to 127.0.0.1:port (blocking, TCP_NODELAY); fails the test on error. */
struct http_client *http_client_open(int port);
void http_client_close(struct http_client *c);

/* Sends the NUL-terminated `raw` bytes as they are. */
void http_send(struct http_client *c, const char *raw);

/* Reads one whole response within timeout_ms. `head_request` nonzero: it
 * answers a HEAD, so it has no body. Returns 1 with *r filled (free it with
 * http_response_free), or 0 if the server closed the connection before a
 * single byte of a response. A timeout, a reset, a malformed head or a body
 * cut short fails the test. */
int http_read_response(struct http_client *c, struct http_response *r, int head_request,
                       int timeout_ms);

/* Reads only the head: the body stays to be read with http_client_recv. */
int http_read_head(struct http_client *c, struct http_response *r, int timeout_ms);

/* Up to `cap` bytes: first those read ahead, then from the socket, waiting
 * up to timeout_ms. Returns the count, 0 at the end of the stream; fails the
 * test on a timeout or a socket error. */
size_t http_client_recv(struct http_client *c, void *buf, size_t cap, int timeout_ms);

/* Expects nothing more from the server than its FIN within timeout_ms. */
void http_expect_eof(struct http_client *c, int timeout_ms);

/* Connects, sends `raw`, reads one response (a HEAD if `raw` starts with
 * "HEAD "), closes. Fails the test if no response comes within timeout_ms. */
void http_exchange(int port, const char *raw, struct http_response *r, int timeout_ms);

/* The value of the first header `name` (case-insensitive), or NULL. */
const char *http_field(const struct http_response *r, const char *name);

/* How many times header `name` appears. */
int http_field_count(const struct http_response *r, const char *name);

void http_response_free(struct http_response *r);

/* Assert the status, and the value of a header (NULL: absent), showing the
 * response on failure. */
#define HTTP_EXPECT_STATUS(r, want) http_expect_status_((r), (want), __FILE__, __LINE__)
#define HTTP_EXPECT_FIELD(r, name, want) http_expect_field_((r), (name), (want), __FILE__, __LINE__)
void http_expect_status_(const struct http_response *r, int want, const char *file, int line);
void http_expect_field_(const struct http_response *r, const char *name, const char *want,
                        const char *file, int line);

#endif /* RITUAL_TEST_SUPPORT_H */
