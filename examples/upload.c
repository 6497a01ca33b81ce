/* Uploads streamed to files: `upload DIR [HOST:PORT]` (default
 * 127.0.0.1:8083) stores the body of PUT or POST /NAME in DIR/NAME as it
 * arrives, and answers 201 Created with the byte count. Try:
 *   curl -T big.iso http://127.0.0.1:8083/big.iso
 *
 * What it shows: RITUAL_HTTP_BODY_STREAM (the handler runs on the head,
 * the body comes to on_body piece by piece, never whole in memory) and its
 * backpressure: pieces gather in a buffer of BUFFER_MAX bytes per upload;
 * when it is full, reading pauses (ritual_http_body_pause) while the
 * buffer goes to disk a slice per loop turn, so one fast client neither
 * fills memory nor keeps the loop from the others; then reading resumes.
 * (The writes and the syncs at the end still block the loop while they
 * last: a server storing large files on slow disks would hand them to a
 * thread of their own.)
 * A client that leaves half-way leaves no file (on_close). One that
 * leaves, or only half-closes (`nc -N`), after sending the whole body
 * still has it stored: the library closes the exchange on that FIN while
 * the buffer may still be going to disk, so on_close writes the rest.
 * A file appears under its name only once complete: it is written
 * nameless (O_TMPFILE in DIR, linked through /proc; where the file system
 * has none, or /proc is missing, under a temporary name), synced, then
 * renamed over NAME. Temporary names (".upload.PID.N.part") do not derive
 * from NAME, so a name valid at the start cannot fail at the end. Uploads
 * to one name at once never share a file: the last to complete wins,
 * whole. Messages go to stderr, one line per upload that does not end in
 * a 201 ("upload: NAME: ...").
 * Build: cc upload.c $(pkg-config --cflags --libs ritual) */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* O_TMPFILE */
#endif
#include <ritual.h>
#include <ritual_http.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PIECE_MAX (64 * 1024)             /* read_buffer_size: the largest on_body piece */
#define BUFFER_MAX (256 * 1024)           /* per upload */
#define PAUSE_AT (BUFFER_MAX - PIECE_MAX) /* room for one more piece */
#define SLICE (64 * 1024)                 /* written per loop turn */
#define MAX_UPLOAD (1ull << 32)           /* 4 GiB */

static int dir_fd = -1;
static unsigned long parts_made; /* numbers the temporary names */
static int nameless;             /* O_TMPFILE files can be given a name */

struct upload {
    ritual_http_exchange *ex;
    ritual_timer *flush;
    int fd;
    int ended;      /* the whole body is in */
    int error;      /* a write failed (-errno): nothing is stored */
    char name[256]; /* NAME */
    char part[320]; /* the temporary name, while there is one ("": none) */
    uint64_t total;
    size_t len;
    char buf[BUFFER_MAX];
};

static void upload_free(struct upload *u, int keep)
{
    if (u->fd >= 0 && close(u->fd) < 0)
        keep = 0;
    if (!keep && u->part[0])
        unlinkat(dir_fd, u->part, 0);
    ritual_timer_free(u->flush);
    free(u);
}

/* Writes up to `max` buffered bytes. Returns 0 or -errno. */
static int write_some(struct upload *u, size_t max)
{
    size_t n = u->len < max ? u->len : max;
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(u->fd, u->buf + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            /* What was written is not written again: the file is dropped. */
            u->error = -errno;
            n = done;
            break;
        }
        done += (size_t)w;
    }
    memmove(u->buf, u->buf + n, u->len - n);
    u->len -= n;
    return u->error;
}

/* A temporary name no upload can take (names never start with '.'), and
 * no other upload of this server has. Short whatever NAME is: a NAME of
 * NAME_MAX bytes must not fail only once its body is in. */
static void part_name(struct upload *u)
{
    snprintf(u->part, sizeof u->part, ".upload.%ld.%lu.part", (long)getpid(), ++parts_made);
}

/* Opens the file the body goes to: nameless if the file system can and
 * /proc lets it be linked (O_TMPFILE: nothing to clean up if the server
 * dies), else under a temporary name. Returns 0 or -errno. */
static int open_part(struct upload *u)
{
    u->part[0] = '\0';
    if (nameless) {
        u->fd = openat(dir_fd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
        if (u->fd >= 0)
            return 0;
        if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
            return -errno;
    }
    for (int tries = 0; tries < 100; tries++) {
        part_name(u);
        u->fd = openat(dir_fd, u->part, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (u->fd >= 0)
            return 0;
        int e = errno;
        u->part[0] = '\0'; /* not ours: never unlinked */
        if (e != EEXIST)
            return -e;
    }
    return -EEXIST;
}

/* Gives a nameless file a temporary name: linkat(2) cannot replace NAME,
 * rename(2) can. Through /proc, which any user may (AT_EMPTY_PATH would
 * need CAP_DAC_READ_SEARCH: without /proc, main has files named from the
 * start instead). Returns 0 or -errno. */
static int link_part(struct upload *u)
{
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", u->fd);
    for (int tries = 0; tries < 100; tries++) {
        part_name(u);
        if (linkat(AT_FDCWD, proc, dir_fd, u->part, AT_SYMLINK_FOLLOW) == 0)
            return 0;
        int e = errno;
        u->part[0] = '\0';
        if (e != EEXIST)
            return -e;
    }
    return -EEXIST;
}

/* The file, complete, under its name: an upload to the same name that
 * completed before is replaced whole. Returns 0 or -errno. */
static int publish(struct upload *u)
{
    /* The data on disk before the name: else, after a crash, the rename
     * may have reached the disk and the data not (file systems order
     * them as they like), and NAME would be short or empty. */
    while (fsync(u->fd) < 0)
        if (errno != EINTR)
            return -errno;
    if (!u->part[0]) {
        int rc = link_part(u);
        if (rc < 0)
            return rc;
    }
    if (renameat(dir_fd, u->part, dir_fd, u->name) < 0)
        return -errno;
    u->part[0] = '\0';
    /* The new name on disk too, so that "stored" survives a crash. */
    while (fsync(dir_fd) < 0)
        if (errno != EINTR)
            return -errno;
    return 0;
}

static void finish(struct upload *u, int error)
{
    ritual_http_exchange *ex = u->ex;
    /* The client went while the buffer went to disk (its FIN seen): the
     * connection is closing, no answer can go, and on_close, still to
     * come, stores the file. */
    if (ritual_conn_closing(ritual_http_exchange_conn(ex)))
        return;
    if (error == 0)
        error = publish(u);
    if (error < 0) {
        fprintf(stderr, "upload: %s: %s\n", u->name, strerror(-error));
        ritual_http_respond_error(ex, 500, 1);
        upload_free(u, 0);
        return;
    }
    char text[64];
    int n = snprintf(text, sizeof text, "%llu bytes\n", (unsigned long long)u->total);
    int rc = ritual_http_respond(ex, 201, NULL, 0, text, (size_t)n);
    if (rc < 0) /* not for want of a connection: that was seen above */
        fprintf(stderr, "upload: %s: stored, but the answer failed: %s\n", u->name, strerror(-rc));
    upload_free(u, 1);
}

/* A slice to disk per loop turn while the buffer holds bytes. */
static void flush_some(ritual_timer *timer, void *data)
{
    struct upload *u = data;
    int rc = write_some(u, SLICE);
    if (rc < 0) {
        finish(u, rc);
        return;
    }
    if (u->len > 0) {
        rc = ritual_timer_start(timer, 0, 0);
        if (rc < 0)
            finish(u, rc);
        return;
    }
    if (u->ended)
        finish(u, 0);
    else
        ritual_http_body_resume(u->ex); /* empty: read on */
}

static void on_body(ritual_http_exchange *ex, const char *data, size_t len, void *arg)
{
    struct upload *u = arg;
    /* A piece is at most read_buffer_size (PIECE_MAX, set in main): with
     * reading paused from PAUSE_AT on, it fits. */
    memcpy(u->buf + u->len, data, len);
    u->len += len;
    u->total += len;
    if (u->len >= PAUSE_AT) {
        int rc = ritual_http_body_pause(ex);
        if (rc == 0)
            rc = ritual_timer_start(u->flush, 0, 0);
        if (rc < 0) /* paused with no timer to resume it would hang */
            finish(u, rc);
    }
}

static void on_body_end(ritual_http_exchange *ex, void *arg)
{
    (void)ex;
    struct upload *u = arg;
    u->ended = 1;
    if (!ritual_timer_active(u->flush))
        flush_some(u->flush, u);
}

/* The connection went before the answer. After the whole body (the
 * client half-closed once it had sent it, as `nc -N` does, or left
 * without waiting for the answer) the upload is complete: what the buffer
 * still holds goes to disk now (at most BUFFER_MAX bytes), as there is no
 * later turn for it. Before the whole body: half a file is no file. */
static void on_close(ritual_http_exchange *ex, int reason, void *arg)
{
    (void)ex;
    struct upload *u = arg;
    if (!u->ended) {
        char name[sizeof u->name];
        memcpy(name, u->name, sizeof name);
        upload_free(u, 0); /* first: once this is said, nothing of it is left */
        fprintf(stderr, "upload: %s: closed before the whole body (%s): nothing stored\n", name,
                reason ? strerror(-reason) : "end of stream");
        return;
    }
    int rc = write_some(u, u->len);
    if (rc == 0)
        rc = publish(u);
    if (rc < 0)
        fprintf(stderr, "upload: %s: %s\n", u->name, strerror(-rc));
    else
        fprintf(stderr, "upload: %s: stored, the client gone before the answer\n", u->name);
    upload_free(u, rc == 0);
}

static const ritual_http_exchange_callbacks upload_callbacks = {
    .on_body = on_body,
    .on_body_end = on_body_end,
    .on_close = on_close,
};

/* "/NAME": letters, digits, '.', '-' and '_', not starting with '.'. */
static int name_of(const ritual_http_request *req, char *out, size_t size)
{
    size_t n = req->target_len;
    if (n < 2 || n - 1 >= size || req->target[0] != '/' || req->target[1] == '.')
        return -1;
    for (size_t i = 1; i < n; i++) {
        char c = req->target[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_'))
            return -1;
    }
    memcpy(out, req->target + 1, n - 1);
    out[n - 1] = '\0';
    return 0;
}

static void handle(ritual_http_exchange *ex, void *data)
{
    ritual_loop *loop = data;
    const ritual_http_request *req = ritual_http_exchange_request(ex);
    int put = req->method_len == 3 && memcmp(req->method, "PUT", 3) == 0;
    int post = req->method_len == 4 && memcmp(req->method, "POST", 4) == 0;
    if (!put && !post) {
        static const ritual_http_header allow = RITUAL_HTTP_HEADER("Allow", "PUT, POST");
        ritual_http_respond(ex, 405, &allow, 1, "PUT or POST a file\n", 19);
        return;
    }
    struct upload *u = malloc(sizeof *u);
    if (!u) {
        ritual_http_respond_error(ex, 503, 1);
        return;
    }
    memset(u, 0, offsetof(struct upload, buf));
    u->ex = ex;
    u->fd = -1;
    if (name_of(req, u->name, sizeof u->name) < 0) {
        free(u);
        ritual_http_respond_error(ex, 400, 0); /* the body is dropped by the layer */
        return;
    }
    u->flush = ritual_timer_new(loop, flush_some, u);
    int rc = u->flush ? open_part(u) : -ENOMEM;
    if (rc < 0) {
        fprintf(stderr, "upload: %s: %s\n", u->name, strerror(-rc));
        upload_free(u, 0);
        ritual_http_respond_error(ex, 500, 1);
        return;
    }
    /* From here the body comes to on_body; the answer, from on_body_end. */
    ritual_http_exchange_set_callbacks(ex, &upload_callbacks, u);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: upload DIR [HOST:PORT]\n");
        return 2;
    }
    dir_fd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) {
        fprintf(stderr, "upload: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    /* Nameless files only where they can be named at the end: through
     * /proc/self/fd, checked now rather than failing after a body. */
    nameless = access("/proc/self/fd", X_OK) == 0;
    ritual_error err;
    ritual_loop *loop = ritual_loop_new(NULL, &err);
    ritual_http_options opts = {
        .handler = handle,
        .data = loop,
        .body_mode = RITUAL_HTTP_BODY_STREAM,
        .max_body = MAX_UPLOAD,
        .conn = {.read_buffer_size = PIECE_MAX},
    };
    ritual_listener *l =
        loop ? ritual_http_listen(loop, argc > 2 ? argv[2] : "127.0.0.1:8083", &opts, &err) : NULL;
    if (!l) {
        fprintf(stderr, "upload: %s\n", err.message);
        ritual_loop_free(loop);
        close(dir_fd);
        return 1;
    }
    if (ritual_loop_shutdown_on_signals(loop, 30000) < 0) {
        fprintf(stderr, "upload: cannot watch SIGINT and SIGTERM\n");
        ritual_loop_free(loop);
        close(dir_fd);
        return 1;
    }
    printf("listening on port %d\n", ritual_listener_port(l));
    fflush(stdout);
    int rc = ritual_loop_run(loop);
    ritual_loop_free(loop);
    close(dir_fd);
    return rc == 0 ? 0 : 1;
}
