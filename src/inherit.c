/* inherit.c - listening sockets this process was given: fd:N from a
 * supervisor, systemd's socket activation (LISTEN_PID, LISTEN_FDS,
 * LISTEN_FDNAMES: fds 3, 4, ... each with a name), and the sockets an
 * upgrade passes on the same way, each named by the address string the old
 * process listened with. The environment is only read: a library does not
 * unsetenv under a program's threads. Each socket is checked to be a
 * listening stream socket before anything serves it. */
#include "inherit.h"
#include "listener.h"
#include "loop.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define LISTEN_FDS_START 3

/* A message as given, without ritual_error_set's ": strerror" tail. */
__attribute__((format(printf, 3, 4))) static int fail(ritual_error *err, int code, const char *fmt,
                                                      ...)
{
    if (err) {
        err->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* A decimal without sign or junk, at most `max`. Returns 0 or -1. */
static int parse_decimal(const char *s, long max, long *out)
{
    long v = 0;
    if (!s || *s == '\0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (*s - '0');
        if (v > max)
            return -1;
    }
    *out = v;
    return 0;
}

int ritual__inherit_form(const char *address, const char **why)
{
    long n;
    if (strncmp(address, "fd:", 3) == 0) {
        if (parse_decimal(address + 3, 1 << 30, &n) < 0) {
            *why = "N in fd:N must be a descriptor number";
            return -1;
        }
        return 1;
    }
    if (strncmp(address, "systemd:", 8) == 0) {
        const char *name = address + 8;
        if (*name == '\0') {
            *why = "systemd:NAME needs a name";
            return -1;
        }
        for (; *name; name++)
            if ((unsigned char)*name < 0x20 || *name == 0x7f || *name == ':') {
                *why = "a systemd socket name has no ':' or control characters";
                return -1;
            }
        return 1;
    }
    return 0;
}

int ritual__inherit_encode(const char *address, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)address; *p; p++) {
        bool plain = *p > 0x20 && *p < 0x7f && *p != ':' && *p != '%' && *p != '#';
        if (n + (plain ? 1 : 3) >= cap)
            return -ENOSPC;
        if (plain) {
            out[n++] = (char)*p;
        } else {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        }
    }
    if (n >= cap)
        return -ENOSPC;
    out[n] = '\0';
    return 0;
}

/* Checks that `fd` is a listening stream socket and makes it close-on-exec
 * and non-blocking. `what` names it in the message ("fd:7"). */
static int claim(int fd, const char *what, ritual_error *err)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return ritual_error_set(err, -errno, "%s", what);
    if (!S_ISSOCK(st.st_mode))
        return fail(err, -ENOTSOCK, "%s: not a listening socket (not a socket at all)", what);
    int type = 0, listening = 0;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
        return ritual_error_set(err, -errno, "%s: getsockopt SO_TYPE", what);
    if (type != SOCK_STREAM)
        return fail(err, -EPROTOTYPE, "%s: not a listening socket (not a stream socket)", what);
    len = sizeof listening;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0)
        return ritual_error_set(err, -errno, "%s: getsockopt SO_ACCEPTCONN", what);
    if (!listening)
        return fail(err, -EINVAL, "%s: not a listening socket", what);
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return ritual_error_set(err, -errno, "%s: fcntl", what);
    return 0;
}

/* LISTEN_* as systemd sets them. */
struct passed {
    long pid, count;   /* -1: unset (or malformed, for pid) */
    const char *names; /* NULL: unset */
    bool ours;         /* LISTEN_PID is this process */
};

static void read_env(struct passed *p)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    p->pid = -1;
    p->count = -1;
    if (pid && parse_decimal(pid, 1L << 30, &p->pid) < 0)
        p->pid = -1;
    if (fds && parse_decimal(fds, 1 << 16, &p->count) < 0)
        p->count = -1;
    p->names = getenv("LISTEN_FDNAMES");
    p->ours = p->pid == (long)getpid() && p->count > 0;
}

/* The fds named `name` (already percent-encoded where it must be), or
 * -ENOENT. */
static int find_named(const struct passed *p, const char *name, int *fds, int max)
{
    int n = 0;
    const char *s = p->names;
    size_t want = strlen(name);
    for (long i = 0; s && i < p->count; i++) {
        const char *end = strchr(s, ':');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        if (len == want && memcmp(s, name, len) == 0 && n < max)
            fds[n++] = (int)(LISTEN_FDS_START + i);
        s = end ? end + 1 : NULL;
    }
    return n > 0 ? n : -ENOENT;
}

/* An inherited descriptor not yet taken by a listener: claim() makes the
 * ones it takes close-on-exec, and a new process's inherited ones are not. */
static bool untaken(int fd)
{
    int flags = fcntl(fd, F_GETFD);
    return flags >= 0 && !(flags & FD_CLOEXEC);
}

static int take_fd(const char *address, int *fds, ritual_error *err)
{
    long n = 0;
    (void)parse_decimal(address + 3, 1 << 30, &n); /* form checked before */
    int rc = claim((int)n, address, err);
    if (rc < 0)
        return rc;
    fds[0] = (int)n;
    return 1;
}

static int take_systemd(const struct passed *p, const char *address, int *fds, int max,
                        ritual_error *err)
{
    const char *name = address + 8;
    if (p->pid < 0 || p->count < 0)
        return fail(err, -ENOENT, "%s: no sockets passed (LISTEN_%s unset)", address,
                    p->count < 0 ? "FDS" : "PID");
    if (p->pid != (long)getpid())
        return fail(err, -ESRCH, "%s: LISTEN_PID is %ld, not this process (%ld)", address, p->pid,
                    (long)getpid());
    int n = find_named(p, name, fds, max);
    if (n < 0) {
        char shown[120];
        snprintf(shown, sizeof shown, "%s", p->names ? p->names : "unset");
        for (char *c = shown; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                *c = '?';
        return fail(err, -ENOENT, "%s: no socket of that name (LISTEN_FDNAMES: %s)", address,
                    shown);
    }
    for (int i = 0; i < n; i++) {
        char what[160];
        snprintf(what, sizeof what, "%s (fd %d)", address, fds[i]);
        if (!untaken(fds[i])) /* two listeners on one descriptor: closed twice */
            return fail(err, -EBUSY, "%s: already taken by another listener", what);
        int rc = claim(fds[i], what, err);
        if (rc < 0)
            return rc;
    }
    return n;
}

/* The sockets an upgrade passed on for `address`: NAME, or, when the old
 * process used that address string more than once (port 0), the first of
 * NAME, NAME#2, ... still untaken, since the calls come in the order the
 * old process made them (upgrade.c). Returns their count, 0 if none, or a
 * negative errno. */
static int take_upgraded(const struct passed *p, const char *address, int *fds, int max,
                         ritual_error *err)
{
    char name[512], candidate[530];
    if (ritual__inherit_encode(address, name, sizeof name) < 0)
        return 0;
    for (unsigned group = 1; group <= RITUAL_INHERIT_MAX; group++) {
        if (group == 1)
            snprintf(candidate, sizeof candidate, "%s", name);
        else
            snprintf(candidate, sizeof candidate, "%s#%u", name, group);
        int n = find_named(p, candidate, fds, max);
        if (n < 0)
            return 0;
        if (!untaken(fds[0]))
            continue;
        for (int i = 0; i < n; i++) {
            char what[160];
            snprintf(what, sizeof what, "inherited %.100s (fd %d)", address, fds[i]);
            int rc = claim(fds[i], what, err);
            if (rc < 0)
                return rc;
        }
        return n;
    }
    return 0;
}

int ritual__inherit_take(const char *address, int *fds, int max, bool *upgraded, ritual_error *err)
{
    *upgraded = false;
    struct passed p;
    read_env(&p);
    if (p.ours) {
        /* An upgrade's sockets, under the address strings they were made
         * with: these come first, so that the new process serves the old
         * one's queue instead of binding (and failing, or splitting it). */
        int n = take_upgraded(&p, address, fds, max, err);
        *upgraded = n > 0;
        if (n != 0)
            return n;
    }
    const char *why;
    int form = ritual__inherit_form(address, &why);
    if (form < 0)
        return fail(err, -EINVAL, "invalid address '%s': %s", address, why);
    if (form == 0)
        return 0;
    if (address[0] == 'f')
        return take_fd(address, fds, err);
    return take_systemd(&p, address, fds, max, err);
}

void ritual__inherit_close_unclaimed(ritual_loop *log)
{
    struct passed p;
    read_env(&p);
    if (!p.ours || !getenv("RITUAL_UPGRADE_FD"))
        return; /* systemd's sockets stay open: systemd holds them anyway */
    const char *name = p.names;
    for (long i = 0; i < p.count; i++) {
        int fd = (int)(LISTEN_FDS_START + i), flags = fcntl(fd, F_GETFD);
        const char *end = name ? strchr(name, ':') : NULL;
        int len = name ? (int)(end ? end - name : (long)strlen(name)) : 0;
        struct stat st;
        if (flags >= 0 && !(flags & FD_CLOEXEC) && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode)) {
            ritual_log(log, RITUAL_LOG_WARN,
                       "upgrade: closing the inherited socket %.*s: nothing here listens on it",
                       len, name ? name : "");
            close(fd);
        }
        name = end ? end + 1 : NULL;
    }
}

int ritual__inherit_listen(const char *address, ritual__inherit_attach_fn attach, void *ctx,
                           ritual_listener **out, ritual_error *err)
{
    int fds[RITUAL_INHERIT_MAX];
    bool upgraded;
    *out = NULL;
    int n = ritual__inherit_take(address, fds, RITUAL_INHERIT_MAX, &upgraded, err);
    if (n <= 0)
        return n < 0;
    for (int i = 0; i < n; i++) {
        ritual_listener *l = attach(ctx, fds[i], err);
        if (!l) {
            /* The ones attached so far go with the loops. */
            for (int j = i + 1; j < n; j++)
                close(fds[j]);
            *out = NULL;
            return 1;
        }
        /* An upgrade's unix socket file passes on with the socket (the old
         * process leaves it); systemd's or a supervisor's stays theirs. */
        if (upgraded)
            ritual__unix_file_claim(l);
        if (!*out)
            *out = l;
    }
    return 1;
}

struct loop_attach {
    ritual_loop *loop;
    const char *address;
    const ritual_listen_options *options;
    const ritual_conn_callbacks *callbacks;
};

static ritual_listener *attach_to_loop(void *ctx, int fd, ritual_error *err)
{
    struct loop_attach *a = ctx;
    ritual_listener *l = ritual__listener_attach(a->loop, fd, false, a->options, a->callbacks, err);
    if (l && ritual__listener_set_name(l, a->address, err) < 0) {
        ritual_listener_close(l);
        return NULL;
    }
    return l;
}

int ritual__listen_inherited(ritual_loop *loop, const char *address,
                             const ritual_listen_options *options,
                             const ritual_conn_callbacks *callbacks, ritual_listener **out,
                             ritual_error *err)
{
    *out = NULL;
    if (!address)
        return 0; /* the bind path says what is wrong */
    if (!callbacks || !callbacks->on_data || loop->freeing)
        return 0; /* the bind path's checks say what is wrong, first */
    struct loop_attach a = {loop, address, options, callbacks};
    return ritual__inherit_listen(address, attach_to_loop, &a, out, err);
}
