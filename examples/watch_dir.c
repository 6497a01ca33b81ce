/* A descriptor of the application's own in the loop: an inotify fd, watched
 * with ritual_watch beside a listener. Every client connected to
 * 127.0.0.1:7001 (or argv[2]) gets a line for each file created, deleted or
 * written in the directory argv[1] (default "."):
 *
 *   ./example_watch_dir /tmp & nc 127.0.0.1 7001    then: touch /tmp/x
 *
 * Build: cc watch_dir.c $(pkg-config --cflags --libs ritual) */
#include <ritual.h>
#include <ritual_list.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <unistd.h>

struct client {
    ritual_conn *conn;
    struct ritual_list link;
};

static struct ritual_list clients = {&clients, &clients};

static void on_open(ritual_conn *conn)
{
    struct client *c = malloc(sizeof *c);
    if (!c) {
        ritual_conn_abort(conn);
        return;
    }
    c->conn = conn;
    ritual_list_add_tail(&clients, &c->link);
    ritual_conn_set_data(conn, c);
}

static size_t on_data(ritual_conn *conn, const char *bytes, size_t len)
{
    (void)conn;
    (void)bytes;
    return len; /* nothing to say to us: discarded */
}

static void on_close(ritual_conn *conn, int reason)
{
    (void)reason;
    struct client *c = ritual_conn_data(conn);
    if (c) {
        ritual_list_del(&c->link);
        free(c);
    }
}

/* The inotify fd is readable: read every event waiting, tell every client. */
static void on_inotify(ritual_watch *watch, unsigned events, void *data)
{
    (void)events;
    (void)data;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n;
    while ((n = read(ritual_watch_fd(watch), buf, sizeof buf)) > 0) {
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            const char *what = (ev->mask & IN_CREATE)   ? "created"
                               : (ev->mask & IN_DELETE) ? "deleted"
                                                        : "written";
            char line[512];
            int len = snprintf(line, sizeof line, "%s %s\n", what, ev->len ? ev->name : ".");
            for (struct ritual_list *l = clients.next; l != &clients; l = l->next)
                ritual_write(ritual_container_of(l, struct client, link)->conn, line, (size_t)len);
            p += sizeof *ev + ev->len;
        }
    }
    if (n < 0 && errno != EAGAIN)
        perror("watch_dir: read inotify");
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : ".";
    ritual_error err;
    ritual_loop *loop = ritual_loop_new(NULL, &err);
    if (!loop) {
        fprintf(stderr, "watch_dir: %s\n", err.message);
        return 1;
    }
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0 || inotify_add_watch(fd, dir, IN_CREATE | IN_DELETE | IN_CLOSE_WRITE) < 0) {
        fprintf(stderr, "watch_dir: inotify %s: %s\n", dir, ritual_strerror(-errno));
        return 1;
    }
    ritual_watch *watch = ritual_watch_new(loop, fd, on_inotify, NULL, &err);
    if (!watch || ritual_watch_start(watch, RITUAL_WATCH_READABLE) < 0) {
        fprintf(stderr, "watch_dir: %s\n", watch ? "ritual_watch_start failed" : err.message);
        return 1;
    }
    ritual_conn_callbacks cbs = {.on_open = on_open, .on_data = on_data, .on_close = on_close};
    ritual_listener *l =
        ritual_listen(loop, argc > 2 ? argv[2] : "127.0.0.1:7001", NULL, &cbs, &err);
    if (!l) {
        fprintf(stderr, "watch_dir: %s\n", err.message);
        return 1;
    }
    ritual_loop_shutdown_on_signals(loop, 1000);
    printf("watching %s; listening on port %d\n", dir, ritual_listener_port(l));
    fflush(stdout);
    int rc = ritual_loop_run(loop);
    ritual_loop_free(loop); /* frees the watch too; the fd is ours */
    close(fd);
    return rc == 0 ? 0 : 1;
}
