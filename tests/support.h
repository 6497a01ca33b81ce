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

/* Number of lines in `text` (a final line without '\n' counts too). */
int count_lines(const char *text);

/* --------------------------------------------------------------- sockets */

/* Blocking connect to 127.0.0.1:port with TCP_NODELAY; fails the test on error. */
int tcp_connect(int port);

/* Blocking connect; returns the socket, or -errno (e.g. -ECONNREFUSED). */
int tcp_try_connect(int port);

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

#endif /* RITUAL_TEST_SUPPORT_H */
