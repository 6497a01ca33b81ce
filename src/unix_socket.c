/* unix_socket.c - a unix:/path listener's socket file: a stale one (a
 * crashed server's) replaced, a live one or any other file left alone, the
 * mode and owner the application asked for, and the file removed when the
 * listener closes, if it still is ours. Abstract sockets (unix:@name) have
 * no file and need none of this. */
#include "address.h"
#include "listener.h"
#include "user.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static bool has_file(const struct sockaddr_storage *addr)
{
    const struct sockaddr_un *sun = (const struct sockaddr_un *)addr;
    return addr->ss_family == AF_UNIX && sun->sun_path[0] == '/';
}

/* Whether a server accepts on the socket at `path`: connect to it, as
 * systemd and most servers do (the live server sees a connection that
 * closes at once; /proc/net/unix would not see other network namespaces'
 * servers, and a live socket of theirs must not be removed). Returns 1 (or 0 for a
 * stale socket: connection refused), or a negative errno with `err`
 * filled. A full backlog (EAGAIN) is a live server too. */
static int socket_is_live(const struct sockaddr_un *addr, socklen_t len, ritual_error *err)
{
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (probe < 0)
        return ritual_error_set(err, -errno, "socket unix:%s", addr->sun_path);
    int rc;
    do
        rc = connect(probe, (const struct sockaddr *)addr, len);
    while (rc < 0 && errno == EINTR);
    int e = rc < 0 ? errno : 0;
    close(probe);
    if (e == 0 || e == EAGAIN || e == EINPROGRESS)
        return 1;
    if (e == ECONNREFUSED)
        return 0;
    return ritual_error_set(err, -e, "connect unix:%s (is a server there?)", addr->sun_path);
}

/* -EADDRINUSE, said as bind says it, and why. */
static int in_use(ritual_error *err, const char *path, const char *why)
{
    if (err) {
        err->code = -EADDRINUSE;
        snprintf(err->message, sizeof err->message, "bind unix:%s: %s (%s)", path,
                 ritual_strerror(-EADDRINUSE), why);
    }
    return -EADDRINUSE;
}

/* Makes room for the socket file: nothing there, or a stale socket that
 * is removed. Returns 0 or a negative errno with `err` filled. */
static int clear_stale(const struct sockaddr_un *addr, socklen_t len, ritual_error *err)
{
    const char *path = addr->sun_path;
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : ritual_error_set(err, -errno, "stat unix:%s", path);
    if (!S_ISSOCK(st.st_mode))
        return in_use(err, path, "a file that is not a socket is there; left as it is");
    int live = socket_is_live(addr, len, err);
    if (live < 0)
        return live;
    if (live)
        return in_use(err, path, "another server listens there");
    if (unlink(path) < 0 && errno != ENOENT)
        return ritual_error_set(err, -errno, "unlink stale unix:%s", path);
    return 0;
}

int ritual__unix_owner_parse(const char *owner, uid_t *uid, gid_t *gid, ritual_error *err)
{
    struct ritual__user u;
    int rc = ritual__user_resolve(owner, "unix_owner", &u, err);
    *uid = u.uid;
    *gid = u.has_group ? u.gid : (gid_t)-1; /* chown leaves it as it is */
    return rc;
}

/* The socket file's mode and owner, between bind and listen: no client
 * can connect before they are what was asked. */
static int set_mode_owner(const char *path, const ritual_listen_options *options, ritual_error *err)
{
    if (options->unix_mode && chmod(path, options->unix_mode & 07777) < 0)
        return ritual_error_set(err, -errno, "chmod %04o unix:%s", options->unix_mode & 07777,
                                path);
    if (options->unix_owner) {
        uid_t uid;
        gid_t gid;
        int rc = ritual__unix_owner_parse(options->unix_owner, &uid, &gid, err);
        if (rc < 0)
            return rc;
        if (chown(path, uid, gid) < 0)
            return ritual_error_set(err, -errno, "chown %s unix:%s", options->unix_owner, path);
    }
    return 0;
}

int ritual__unix_listen_socket(const struct sockaddr_storage *addr, socklen_t len, int backlog,
                               const ritual_listen_options *options, ritual_error *err)
{
    const struct sockaddr_un *sun = (const struct sockaddr_un *)addr;
    bool file = has_file(addr);
    char where[sizeof sun->sun_path + 8]; /* "unix:/path", "unix:@name" */
    ritual__address_format((const struct sockaddr *)addr, where, sizeof where);
    int rc = 0;
    if (file && options->unix_owner) { /* a typo fails before anything changes */
        uid_t uid;
        gid_t gid;
        rc = ritual__unix_owner_parse(options->unix_owner, &uid, &gid, err);
    }
    if (rc == 0 && file)
        rc = clear_stale(sun, len, err);
    if (rc < 0)
        return rc;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return ritual_error_set(err, -errno, "socket %s", where);
    if (bind(fd, (const struct sockaddr *)addr, len) < 0) {
        rc = ritual_error_set(err, -errno, "bind %s", where);
        close(fd);
        return rc;
    }
    if (file)
        rc = set_mode_owner(sun->sun_path, options, err);
    if (rc == 0 && listen(fd, backlog) < 0)
        rc = ritual_error_set(err, -errno, "listen %s", where);
    if (rc < 0) {
        if (file)
            (void)unlink(sun->sun_path); /* ours: bound just now */
        close(fd);
        return rc;
    }
    return fd;
}

void ritual__unix_file_claim(ritual_listener *l)
{
    struct stat st;
    if (!has_file(&l->addr) || lstat(((struct sockaddr_un *)&l->addr)->sun_path, &st) < 0)
        return;
    l->owns_file = true;
    l->file_dev = st.st_dev;
    l->file_ino = st.st_ino;
}

void ritual__unix_file_unlink(const struct sockaddr_storage *addr)
{
    if (has_file(addr))
        (void)unlink(((const struct sockaddr_un *)addr)->sun_path);
}

void ritual__unix_file_release(ritual_listener *l)
{
    if (!l->owns_file)
        return;
    l->owns_file = false;
    const char *path = ((struct sockaddr_un *)&l->addr)->sun_path;
    struct stat st;
    /* Only the file we bound: another server may have replaced it since. */
    if (l->passed_on || lstat(path, &st) < 0 || st.st_dev != l->file_dev ||
        st.st_ino != l->file_ino)
        return;
    if (unlink(path) < 0 && errno != ENOENT)
        ritual_log(l->loop, RITUAL_LOG_WARN, "unlink unix:%s: %s", path, strerror(errno));
}
