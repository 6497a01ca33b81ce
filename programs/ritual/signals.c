/* signals.c - what `ritual echo` and `ritual http` do with the signals
 * beside SIGINT and SIGTERM (the first drains, a second stops: the
 * library's ritual_server_shutdown_on_signals). Left at their default
 * action they would kill the process at once, with the access log's last
 * second unwritten and every connection cut; a closed terminal sends
 * SIGHUP, and logrotate SIGHUP or SIGUSR1.
 *
 *   SIGQUIT                    drain, as the first SIGTERM does
 *   SIGHUP                     reopen the log file, reload TLS certificates
 *                              and what `reload` reloads (the MIME table)
 *                              (RELOADING=1, then READY=1, to systemd)
 *   SIGUSR1                    reopen the log file (after logrotate moved it)
 *   SIGUSR2                    binary upgrade: start the executable anew on
 *                              the same sockets, drain once it is ready
 *   SIGALRM, SIGXFSZ           ignored, with a line in the log; SIGXFSZ so
 *                              that a log past RLIMIT_FSIZE fails to grow
 *                              instead of killing the server
 *
 * They are read on the server's control thread, not in a handler. */
#include "cli.h"

#include "ritual_tls.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* The upgrade's outcome, on the control thread. */
static void upgrade_done(ritual_server *server, int pid, int error, void *data)
{
    (void)data;
    ritual_loop *log = ritual_server_loop(server, 0);
    if (error == 0)
        ritual_log(log, RITUAL_LOG_INFO, "upgrade: PID %d is ready; draining", pid);
    else
        ritual_log(log, RITUAL_LOG_ERROR, "upgrade failed: PID %d: %s; serving on", pid,
                   error == -ECHILD ? "exited before it was ready" : ritual_strerror(error));
}

static void upgrade(struct cli_signals *s, char *msg, size_t cap, ritual_log_level *level)
{
    ritual_upgrade_options opts = {.drain_ms = s->drain_ms, .on_done = upgrade_done};
    ritual_error err;
    int pid = ritual_server_upgrade(s->server, &opts, &err);
    if (pid > 0) {
        snprintf(msg, cap, "started PID %d", pid);
        return;
    }
    *level = pid == -EALREADY ? RITUAL_LOG_WARN : RITUAL_LOG_ERROR;
    snprintf(msg, cap, "upgrade failed: %s; serving on", err.message);
}

/* systemd's reload protocol: RELOADING=1 with the monotonic time, then
 * READY=1 once done. */
static void tell_reloading(void)
{
    struct timespec ts;
    char state[64];
    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(state, sizeof state, "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
    (void)ritual_notify(state);
}

static void on_signal(ritual_signal *sig, int signum, void *data)
{
    (void)sig;
    struct cli_signals *s = data;
    ritual_log_level level = RITUAL_LOG_INFO;
    char msg[512] = "ignored";
    switch (signum) {
    case SIGQUIT:
        snprintf(msg, sizeof msg, "shutting down (SIGTERM twice stops at once)");
        ritual_server_shutdown(s->server, s->drain_ms);
        break;
    case SIGUSR2:
        upgrade(s, msg, sizeof msg, &level);
        break;
    case SIGHUP:
    case SIGUSR1:
        if (signum == SIGHUP)
            tell_reloading();
        if (!s->reopen)
            snprintf(msg, sizeof msg, "no log file to reopen");
        else if (s->reopen(s->reopen_arg, msg, sizeof msg) < 0)
            level = RITUAL_LOG_ERROR;
        if (signum == SIGHUP && s->tls) {
            ritual_error err;
            size_t used = strlen(msg);
            if (ritual_tls_reload(s->tls, &err) < 0) {
                level = RITUAL_LOG_ERROR;
                snprintf(msg + used, sizeof msg - used, "; certificates kept: %s", err.message);
            } else {
                snprintf(msg + used, sizeof msg - used, "; certificates reloaded");
            }
        }
        if (signum == SIGHUP && s->reload) {
            size_t used = strlen(msg);
            snprintf(msg + used, sizeof msg - used, "; ");
            used = strlen(msg);
            if (s->reload(s->reload_arg, msg + used, sizeof msg - used) < 0)
                level = RITUAL_LOG_ERROR;
        }
        if (signum == SIGHUP)
            (void)ritual_notify("READY=1");
        break;
    }
    /* The control thread has no loop of its own to log with: worker 0's
     * log settings are every loop's. */
    ritual_log(ritual_server_loop(s->server, 0), level, "SIG%s: %s", sigabbrev_np(signum), msg);
}

int cli_signals_watch(struct cli_signals *s)
{
    static const int signums[] = {SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGALRM, SIGXFSZ};
    int rc = ritual_server_shutdown_on_signals(s->server, s->drain_ms);
    if (rc < 0)
        return cli_runtime_error("signals: %s", ritual_strerror(rc));
    for (size_t i = 0; i < sizeof signums / sizeof signums[0]; i++) {
        ritual_error err;
        if (!ritual_server_signal_new(s->server, signums[i], on_signal, s, &err))
            return cli_runtime_error("%s", err.message);
    }
    return 0;
}
