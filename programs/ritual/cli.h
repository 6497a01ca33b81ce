/* cli.h - what every subcommand of the `ritual` program shares: value
 * parsing and the exit-code conventions (0 clean, 1 runtime failure, 2 usage). */
#ifndef RITUAL_CLI_H
#define RITUAL_CLI_H

#include "ritual.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

/* Prints "ritual CMD: message (see 'ritual CMD --help')" as one line on
 * stderr and returns EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* An option that names a file (--root DIR, --tls-cert FILE, ...): an
 * empty value ("--root=") is a usage error, "ritual CMD: --root: empty, a
 * path is needed", rather than an open of "" failing later as a runtime
 * error. Returns 0 or EXIT_USAGE (printed). */
int cli_path_option(const char *cmd, const char *name, const char *value);

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

/* Logs (info) how many workers run, on which backend, and the soft
 * RLIMIT_NOFILE; prints "listening on ADDRESS" on stdout for each of the
 * `n` listeners (and "metrics on ADDRESS" for a `metrics` listener, unless
 * NULL), runs the server until it stops, and returns the exit status:
 * EXIT_OK after a clean shutdown, EXIT_RUNTIME after a second signal or a
 * loop error (printed). */
int cli_serve(ritual_server *server, ritual_listener *const *listeners, int n,
              ritual_listener *metrics);

/* nofile.c: raises the soft RLIMIT_NOFILE to the hard limit, as Go's
 * runtime and Redis do at start: the soft limit is a default made for
 * select() (1,024 under systemd), the hard one what the operator allows,
 * and a server's connections need descriptors. Logs a warning on `loop`
 * (stderr if NULL) if it cannot, and never fails; cli_serve's first log line says the limit in
 * force (not here: a start that fails later prints its one error line).
 * Returns the soft limit afterwards (RLIM_INFINITY if it cannot be read). */
rlim_t cli_raise_nofile(ritual_loop *loop);
/* The soft RLIMIT_NOFILE now (RLIM_INFINITY if it cannot be read). */
rlim_t cli_nofile(void);

/* A limit for the whole server as a limit per worker (rounded up; 0 stays
 * "no limit"). */
unsigned cli_per_worker(unsigned total, const ritual_server *server);

/* signals.c: the signals a program answers (see there). `reopen` (may be
 * NULL) reopens the log files, writing what it did or why it failed into
 * msg; it returns 0 or a negative errno. `reload` (may be NULL) is the
 * rest of what SIGHUP reloads in place (ritual http's MIME table), the
 * same way: on failure what was loaded stays in use. The struct lives as
 * long as the server. */
struct cli_signals {
    ritual_server *server;
    uint64_t drain_ms;
    int (*reopen)(void *arg, char *msg, size_t cap);
    void *reopen_arg;
    ritual_tls *tls; /* reloaded on SIGHUP; may be NULL */
    int (*reload)(void *arg, char *msg, size_t cap);
    void *reload_arg;
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

/* server_options.c: --workers, --backend, --pin, --log-level,
 * --drain-timeout, --proxy-protocol, --proxy-timeout, --tls-cert and
 * --tls-key, the same in every server subcommand. Their getopt values: */
enum {
    CLI_OPT_WORKERS = 0x1100,
    CLI_OPT_BACKEND,
    CLI_OPT_PIN,
    CLI_OPT_LOG_LEVEL,
    CLI_OPT_DRAIN,
    CLI_OPT_PROXY,
    CLI_OPT_PROXY_TIMEOUT,
    CLI_OPT_TLS_CERT,
    CLI_OPT_TLS_KEY,
};
#define CLI_SERVER_LONGOPTS                                                                        \
    {"workers", required_argument, NULL, CLI_OPT_WORKERS},                                         \
        {"backend", required_argument, NULL, CLI_OPT_BACKEND},                                     \
        {"pin", no_argument, NULL, CLI_OPT_PIN},                                                   \
        {"log-level", required_argument, NULL, CLI_OPT_LOG_LEVEL},                                 \
        {"drain-timeout", required_argument, NULL, CLI_OPT_DRAIN},                                 \
        {"proxy-protocol", required_argument, NULL, CLI_OPT_PROXY},                                \
        {"proxy-timeout", required_argument, NULL, CLI_OPT_PROXY_TIMEOUT},                         \
        {"tls-cert", required_argument, NULL, CLI_OPT_TLS_CERT},                                   \
    {                                                                                              \
        "tls-key", required_argument, NULL, CLI_OPT_TLS_KEY                                        \
    }
/* What they set; the caller fills in the defaults. */
struct cli_server {
    ritual_server_options server;
    uint64_t drain_ms;
    const char *proxy_from;    /* --proxy-protocol, NULL: none */
    uint64_t proxy_timeout_ms; /* 0: the library's default */
    struct cli_tls tls;
};
/* Whether getopt's `c` is one of them: a command's switch hands every one
 * over in its default branch, so one added here needs no case label. */
static inline bool cli_is_server_option(int c)
{
    return c >= CLI_OPT_WORKERS && c <= CLI_OPT_TLS_KEY;
}
/* Takes one of the options above (`opt` its CLI_OPT_ value). Returns 0 or
 * EXIT_USAGE (printed). */
int cli_server_option(const char *cmd, struct cli_server *s, int opt, const char *value);

/* listen_options.c: --listen ADDRESS (up to CLI_LISTEN_MAX), --socket-mode
 * MODE, --socket-owner USER[:GROUP] and --user NAME[:GROUP], the same in
 * every server subcommand. Their getopt values are these. */
#define CLI_LISTEN_MAX 16
enum {
    CLI_OPT_LISTEN = 0x1000,
    CLI_OPT_SOCKET_MODE,
    CLI_OPT_SOCKET_OWNER,
    CLI_OPT_USER,
};
#define CLI_LISTEN_LONGOPTS                                                                        \
    {"listen", required_argument, NULL, CLI_OPT_LISTEN},                                           \
        {"socket-mode", required_argument, NULL, CLI_OPT_SOCKET_MODE},                             \
        {"socket-owner", required_argument, NULL, CLI_OPT_SOCKET_OWNER},                           \
    {                                                                                              \
        "user", required_argument, NULL, CLI_OPT_USER                                              \
    }
struct cli_listen {
    const char *address[CLI_LISTEN_MAX];
    int n;
    unsigned socket_mode;     /* 0: 0666 less the umask */
    const char *socket_owner; /* NULL: this process's */
    const char *user;         /* --user, NULL: stays who it is */
};
/* Takes one of the options above (`opt` its CLI_OPT_ value). Every check
 * that needs no socket is made here: the address's form, the mode, and
 * that the users and groups exist. Returns 0 or EXIT_USAGE (printed). */
int cli_listen_option(const char *cmd, struct cli_listen *l, int opt, const char *value);
/* After the options: `fallback` if no --listen was given; --socket-mode
 * and --socket-owner need a unix:/PATH listener. 0 or EXIT_USAGE. */
int cli_listen_check(const char *cmd, struct cli_listen *l, const char *fallback);
/* Sets unix_mode and unix_owner. */
void cli_listen_apply(const struct cli_listen *l, ritual_listen_options *opts);
/* --user: becomes that user (ritual_drop_privileges), to be called once every
 * listener is bound and every file opened, before the server runs.
 * Returns 0, or EXIT_RUNTIME (printed): the caller must then exit. */
int cli_drop_privileges(const struct cli_listen *l, ritual_server *server);

/* The rest of the help of --listen, after its first line (which names the
 * command's default), and of the other options above. */
#define CLI_LISTEN_USAGE                                                                           \
    "                           for more (up to 16): HOST:PORT (HOST an IPv4 address,\n"           \
    "                           [IPv6], localhost, or * for all; PORT 0 picks a free\n"            \
    "                           one), unix:/PATH (a socket file; a stale one is\n"                 \
    "                           replaced), unix:@NAME (abstract), fd:N (an inherited\n"            \
    "                           socket), systemd:NAME (socket activation); a unix\n"               \
    "                           socket is shared by all workers\n"                                 \
    "  --socket-mode MODE       a unix:/PATH socket file's permissions, in octal\n"                \
    "                           (e.g. 0660; default 0777 less the umask)\n"                        \
    "  --socket-owner USER[:GROUP]\n"                                                              \
    "                           a unix:/PATH socket file's owner (names or numbers)\n"             \
    "  --user NAME[:GROUP]      once listening and every file is open, run as this\n"              \
    "                           user (and its group, or GROUP); root only; files\n"                \
    "                           reopened later (SIGHUP) must be readable by it\n"

#define CLI_TLS_USAGE                                                                              \
    "  --tls-cert FILE          serve TLS with this PEM certificate chain; repeat with\n"          \
    "                           --tls-key for more, chosen by SNI (the first is the\n"             \
    "                           default); reloaded on SIGHUP\n"                                    \
    "  --tls-key FILE           the PEM private key of the --tls-cert before it\n"

#endif
