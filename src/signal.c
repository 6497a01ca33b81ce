/* signal.c - signals delivered inside the loop through one signalfd per loop,
 * so no handler runs at an arbitrary point and no global state is needed. */
#include "io.h"
#include "loop.h"
#include "signals.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

static int update_signalfd(ritual_loop *loop)
{
    int fd = signalfd(loop->signal_io.fd, &loop->signal_mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (loop->signal_io.fd < 0) {
        loop->signal_io.fd = fd;
        int rc = ritual__io_set(loop, &loop->signal_io, RITUAL_IO_READ);
        if (rc < 0) {
            close(fd);
            loop->signal_io.fd = -1;
            return rc;
        }
    }
    return 0;
}

ritual_signal *ritual_signal_new(ritual_loop *loop, int signum, ritual_signal_cb cb, void *data,
                                 ritual_error *err)
{
    sigset_t one;
    sigemptyset(&one);
    if (sigaddset(&one, signum) < 0 || signum == SIGKILL || signum == SIGSTOP) {
        ritual_error_set(err, -EINVAL, "signal %d", signum);
        return NULL;
    }
    ritual_signal *sig = calloc(1, sizeof *sig);
    if (!sig) {
        ritual_error_set(err, -ENOMEM, "signal %d", signum);
        return NULL;
    }
    /* Blocked, the signal stays pending until the signalfd reads it. */
    int rc = pthread_sigmask(SIG_BLOCK, &one, NULL);
    if (rc != 0) {
        free(sig);
        ritual_error_set(err, -rc, "pthread_sigmask %s", sigabbrev_np(signum));
        return NULL;
    }
    sigset_t saved = loop->signal_mask;
    sigaddset(&loop->signal_mask, signum);
    rc = update_signalfd(loop);
    if (rc < 0) {
        loop->signal_mask = saved;
        free(sig);
        ritual_error_set(err, rc, "signalfd %s", sigabbrev_np(signum));
        return NULL;
    }
    sig->loop = loop;
    sig->signum = signum;
    sig->cb = cb;
    sig->data = data;
    sig->next = loop->signals;
    loop->signals = sig;
    return sig;
}

static void unlink_dead(ritual_loop *loop)
{
    ritual_signal **p = &loop->signals;
    while (*p) {
        ritual_signal *sig = *p;
        if (sig->cb) {
            p = &sig->next;
            continue;
        }
        *p = sig->next;
        free(sig);
    }
    /* Narrow the signalfd to the signals still watched. */
    sigemptyset(&loop->signal_mask);
    for (ritual_signal *sig = loop->signals; sig; sig = sig->next)
        sigaddset(&loop->signal_mask, sig->signum);
    if (loop->signal_io.fd >= 0 &&
        signalfd(loop->signal_io.fd, &loop->signal_mask, SFD_NONBLOCK | SFD_CLOEXEC) < 0)
        ritual_log(loop, RITUAL_LOG_WARN, "signalfd: %s", strerror(errno));
}

void ritual_signal_free(ritual_signal *sig)
{
    if (!sig)
        return;
    sig->cb = NULL; /* freed now, or after the dispatch under way */
    if (!sig->loop->signals_dispatching)
        unlink_dead(sig->loop);
}

void ritual__signals_ready(ritual_loop *loop)
{
    struct signalfd_siginfo info[8];
    for (;;) {
        ssize_t n = read(loop->signal_io.fd, info, sizeof info);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                ritual_log(loop, RITUAL_LOG_ERROR, "signalfd read: %s", strerror(errno));
            break;
        }
        loop->signals_dispatching = true;
        for (size_t i = 0; i < (size_t)n / sizeof info[0]; i++)
            for (ritual_signal *sig = loop->signals; sig; sig = sig->next)
                if (sig->cb && sig->signum == (int)info[i].ssi_signo)
                    sig->cb(sig, sig->signum, sig->data);
        loop->signals_dispatching = false;
        unlink_dead(loop);
    }
}

void ritual__signals_free(ritual_loop *loop)
{
    while (loop->signals) {
        ritual_signal *next = loop->signals->next;
        free(loop->signals);
        loop->signals = next;
    }
    if (loop->signal_io.fd >= 0) {
        ritual__io_forget(loop, &loop->signal_io);
        close(loop->signal_io.fd);
        loop->signal_io.fd = -1;
    }
}

/* First SIGINT/SIGTERM: drain. Second: stop now. */
static void on_stop_signal(ritual_signal *sig, int signum, void *data)
{
    ritual_loop *loop = sig->loop;
    (void)data;
    if (++loop->signals_seen == 1) {
        ritual_log(loop, RITUAL_LOG_INFO, "SIG%s: shutting down (send it again to stop at once)",
                   sigabbrev_np(signum));
        ritual_loop_shutdown(loop, loop->signal_drain_ms);
        return;
    }
    ritual_log(loop, RITUAL_LOG_WARN, "SIG%s again: stopping now, cutting %zu connection%s",
               sigabbrev_np(signum), loop->conn_count, loop->conn_count == 1 ? "" : "s");
    loop->forced = true;
    ritual_loop_stop(loop);
}

int ritual_loop_shutdown_on_signals(ritual_loop *loop, uint64_t drain_ms)
{
    static const int signums[] = {SIGINT, SIGTERM};
    ritual_signal *installed[2] = {NULL, NULL};
    ritual_error err;
    loop->signal_drain_ms = drain_ms; /* a second call only updates the deadline */
    if (loop->signals_installed)
        return 0;
    for (size_t i = 0; i < 2; i++) {
        installed[i] = ritual_signal_new(loop, signums[i], on_stop_signal, NULL, &err);
        if (!installed[i]) {
            ritual_signal_free(installed[0]);
            return err.code;
        }
    }
    loop->signals_installed = true;
    return 0;
}
