/* A TCP proxy: every client connection is relayed to UPSTREAM, both ways.
 *
 *   proxy LISTEN UPSTREAM      e.g.  proxy 127.0.0.1:8000 127.0.0.1:9000
 *
 * What a relay needs from the library, each in one place below:
 * - keep_reading: a relay's connections read whatever they have queued;
 *   the relay itself pauses the side it reads from while the other side's
 *   queue is over its high watermark, and resumes it in that side's
 *   on_drain. Memory per stream stays near one high watermark each way.
 * - ritual_conn_shutdown_write: one side's EOF becomes a FIN to the other,
 *   which goes on sending its reply; the pair closes once both sides ended.
 * - a reset (or a failed connect upstream) resets the other side too.
 * Build: cc proxy.c $(pkg-config --cflags --libs ritual) */
#include <ritual.h>
#include <stdio.h>
#include <stdlib.h>

struct pair {
    ritual_conn *side[2]; /* 0: the client, 1: the upstream */
    int eof[2];           /* that side sent its FIN */
};

static const char *upstream;

static int side_of(const struct pair *p, const ritual_conn *conn)
{
    return p->side[1] == conn;
}

static size_t on_data(ritual_conn *conn, const char *bytes, size_t len)
{
    struct pair *p = ritual_conn_data(conn);
    ritual_conn *other = p->side[!side_of(p, conn)];
    if (!other || ritual_write(other, bytes, len) < 0)
        return len; /* the other side is gone: its on_close ends this one */
    if (ritual_conn_write_blocked(other))
        ritual_conn_pause(conn); /* until the other side's on_drain */
    return len;
}

static void on_drain(ritual_conn *conn)
{
    struct pair *p = ritual_conn_data(conn);
    ritual_conn *other = p->side[!side_of(p, conn)];
    if (other && !ritual_conn_write_blocked(conn))
        ritual_conn_resume(other);
}

static void on_eof(ritual_conn *conn)
{
    struct pair *p = ritual_conn_data(conn);
    int s = side_of(p, conn);
    p->eof[s] = 1;
    ritual_conn *other = p->side[!s];
    if (other)
        ritual_conn_shutdown_write(other); /* after what is queued for it */
    if (p->eof[!s]) {                      /* both directions ended */
        ritual_conn_close(conn);
        if (other)
            ritual_conn_close(other);
    }
}

static void on_close(ritual_conn *conn, int reason)
{
    struct pair *p = ritual_conn_data(conn);
    int s = side_of(p, conn);
    p->side[s] = NULL;
    ritual_conn *other = p->side[!s];
    if (!other) {
        free(p);
        return;
    }
    if (reason != 0)
        ritual_conn_abort(other); /* a reset, a refused connect: pass it on */
    else
        ritual_conn_close(other);
}

static const ritual_conn_callbacks relay = {
    .on_data = on_data, .on_eof = on_eof, .on_drain = on_drain, .on_close = on_close};

/* A client arrived: connect upstream. What the client sends meanwhile is
 * queued on the upstream connection until it is connected. */
static void on_open(ritual_conn *client)
{
    struct pair *p = calloc(1, sizeof *p);
    if (!p) {
        ritual_conn_abort(client);
        return;
    }
    p->side[0] = client;
    ritual_conn_set_data(client, p);
    ritual_connect_options o = {.conn.keep_reading = 1, .data = p};
    ritual_error err;
    p->side[1] = ritual_connect(ritual_conn_loop(client), upstream, &o, &relay, &err);
    if (!p->side[1]) {
        fprintf(stderr, "proxy: %s\n", err.message);
        ritual_conn_abort(client); /* its on_close frees the pair */
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: proxy LISTEN UPSTREAM (e.g. 127.0.0.1:8000 127.0.0.1:9000)\n");
        return 2;
    }
    upstream = argv[2];
    ritual_error err;
    ritual_loop *loop = ritual_loop_new(NULL, &err);
    if (!loop) {
        fprintf(stderr, "proxy: %s\n", err.message);
        return 1;
    }
    ritual_listen_options opts = {.conn.keep_reading = 1};
    ritual_conn_callbacks cbs = relay;
    cbs.on_open = on_open;
    ritual_listener *l = ritual_listen(loop, argv[1], &opts, &cbs, &err);
    if (!l) {
        fprintf(stderr, "proxy: %s\n", err.message);
        ritual_loop_free(loop);
        return 1;
    }
    ritual_loop_shutdown_on_signals(loop, 5000);
    printf("listening on port %d\n", ritual_listener_port(l));
    fflush(stdout);
    int rc = ritual_loop_run(loop);
    ritual_loop_free(loop);
    return rc == 0 ? 0 : 1;
}
