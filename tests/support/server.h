/* server.h - the ritual program as a child process, and commands, for the tests. */
#ifndef RITUAL_TEST_SERVER_H
#define RITUAL_TEST_SERVER_H

#include "check.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

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

/* Starts another program as a server (argv[0] its path, argv
 * NULL-terminated; an example), as server_start does: its first stdout line
 * is "listening on port N" or "listening on HOST:PORT". */
void server_start_argv(const char *const argv[], rlim_t nofile, struct server *out);

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

/* Waits up to 10 s until the server's stderr holds `needle` at least
 * `count` times (the sign that it handled a signal, say); fails the test
 * if the server ends first or the time runs out. */
void server_wait_log(struct server *s, const char *needle, int count);
/* Prints the server's stderr (at most the last 16 KiB) to the test output. */
void server_dump_stderr(const struct server *s);

/* For test_fail: kills the servers still running and shows their stderr. */
void servers_kill_on_failure(void);

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

#endif
