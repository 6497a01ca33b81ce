/* cli.h - what every subcommand of the `ritual` program shares: value
 * parsing and the exit-code conventions (0 clean, 1 runtime failure, 2 usage). */
#ifndef RITUAL_CLI_H
#define RITUAL_CLI_H

#include "ritual.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

/* Prints "ritual CMD: message (see 'ritual CMD --help')" as one line on
 * stderr and returns EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* `text` made fit for a one-line message: control characters become '?',
 * and it is cut to fit out[cap]. Returns out. */
const char *cli_printable(const char *text, char *out, size_t cap);

/* Prints "ritual: message" as one line on stderr and returns EXIT_RUNTIME. */
int cli_runtime_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Each returns 0, or -1 if `text` is not a valid value. */
int cli_parse_uint(const char *text, unsigned long max, unsigned long *out);
/* Non-negative seconds, decimals allowed ("0.5"), into milliseconds. */
int cli_parse_seconds(const char *text, uint64_t *ms);
/* Bytes, with an optional K, M or G suffix (powers of 1024). */
int cli_parse_size(const char *text, size_t *out);
/* error, warn, info or debug. */
int cli_parse_log_level(const char *text, ritual_log_level *out);

/* auto, io_uring, epoll or poll. */
int cli_parse_backend(const char *text, ritual_backend *out);

/* Logs (info) how many workers run and on which backend, prints
 * "listening on ADDRESS" on stdout (and "metrics on ADDRESS" for a
 * `metrics` listener, unless NULL), runs the server until it stops, and
 * returns the exit status: EXIT_OK after a clean shutdown, EXIT_RUNTIME
 * after a second signal or a loop error (printed). */
int cli_serve(ritual_server *server, ritual_listener *listener, ritual_listener *metrics);

/* A limit for the whole server as a limit per worker (rounded up; 0 stays
 * "no limit"). */
unsigned cli_per_worker(unsigned total, const ritual_server *server);

/* signals.c: the signals a program answers (see there). `reopen` (may be
 * NULL) reopens the log files, writing what it did or why it failed into
 * msg; it returns 0 or a negative errno. The struct lives as long as the
 * server. */
struct cli_signals {
    ritual_server *server;
    uint64_t drain_ms;
    int (*reopen)(void *arg, char *msg, size_t cap);
    void *reopen_arg;
    ritual_tls *tls; /* reloaded on SIGHUP; may be NULL */
};
/* Returns 0, or EXIT_RUNTIME after printing why. */
int cli_signals_watch(struct cli_signals *s);

struct option;
/* getopt_long, except that a long option is matched by its whole name
 * only: getopt_long takes any unambiguous prefix, so that `--header X`
 * would silently be `--header-timeout X`, and an option added later could
 * make a command line that worked ambiguous. An abbreviation, typed as
 * `--name` or `--name=value`, is returned as '?' (unknown option) with
 * optind just past it and optopt 0, for cli_getopt_error to name. Every
 * subcommand parses its options with this; `shortopts` starts with ':'
 * and opterr is 0, as cli_getopt_error expects. */
int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts);

/* Reports cli_getopt's '?' (unknown option, or a value given to an option
 * that takes none) or ':' (missing value) for the argument it stopped at,
 * named without any "=value", and returns EXIT_USAGE. */
int cli_getopt_error(const char *cmd, int c, char **argv, int optind_now);

/* tls_options.c: --tls-cert FILE --tls-key FILE, repeatable. */
#define CLI_TLS_MAX 32
struct cli_tls {
    const char *cert[CLI_TLS_MAX];
    const char *key[CLI_TLS_MAX];
    int ncert, nkey;
};
/* Each returns 0 or EXIT_USAGE (printed). */
int cli_tls_option(const char *cmd, struct cli_tls *t, bool is_cert, const char *file);
int cli_tls_check(const char *cmd, const struct cli_tls *t);
/* The server configuration, or NULL: none asked for (*rc 0), or it failed
 * (*rc EXIT_RUNTIME, the reason printed). `alpn` may be NULL;
 * `handshake_ms` 0 is the library's default. */
ritual_tls *cli_tls_load(const struct cli_tls *t, const char *alpn, uint64_t handshake_ms, int *rc);
/* Logs which TLS path runs. */
void cli_tls_log(ritual_server *server, const struct cli_tls *t);

#define CLI_TLS_USAGE                                                                              \
    "  --tls-cert FILE          serve TLS with this PEM certificate chain; repeat with\n"          \
    "                           --tls-key for more, chosen by SNI (the first is the\n"             \
    "                           default); reloaded on SIGHUP\n"                                    \
    "  --tls-key FILE           the PEM private key of the --tls-cert before it\n"

#endif
