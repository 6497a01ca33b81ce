/* A line chat on every core: each line a client sends goes to every other
 * client, whichever worker holds it, in the order it was sent.
 *
 *   chat [LISTEN [WORKERS]]      e.g.  chat 127.0.0.1:7001 4
 *
 * What a multi-worker server needs from the library, each in one place:
 * - on_worker_start gives every worker its own client list, in its loop's
 *   data; nothing on the data path is shared or locked.
 * - A line is one buffer with an atomic reference count, posted to every
 *   worker (ritual_loop_try_post, bounded: a worker that falls far behind
 *   loses lines, not memory) and written to each client with
 *   ritual_write_ref: no copy per client, freed once the last is sent.
 * - A client that stops reading is cut once its queue passes write_limit
 *   (on_close with -ENOBUFS); the others never wait for it.
 * - SIGTERM: every client is told, then closed once its queue is out.
 * Build: cc chat.c $(pkg-config --cflags --libs ritual) */
#include <errno.h>
#include <ritual.h>
#include <ritual_list.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LINE 4096
#define BACKLOG_MAX 10000        /* lines a worker may have waiting */
#define CLIENT_QUEUE (256 << 10) /* what a client may leave unread */

struct client {
    struct ritual_list link; /* in its worker's list */
    ritual_conn *conn;
    unsigned long id;
};

struct line {
    atomic_uint refs;
    unsigned long from; /* its author's id: not sent back to it */
    size_t len;
    char text[];
};

static ritual_server *server;
static struct ritual_list *client_lists; /* one per worker, indexed by ritual_loop_worker */
static atomic_ulong lines_lost, next_id;

static void line_unref(void *arg)
{
    struct line *l = arg;
    if (atomic_fetch_sub(&l->refs, 1) == 1)
        free(l);
}

/* On each worker's thread: the line to every client of the worker but its
 * author. */
static void deliver(ritual_loop *loop, void *arg)
{
    struct line *l = arg;
    struct ritual_list *clients = ritual_loop_data(loop);
    for (struct ritual_list *n = clients->next; n != clients; n = n->next) {
        struct client *c = ritual_container_of(n, struct client, link);
        if (c->id == l->from)
            continue;
        atomic_fetch_add(&l->refs, 1);
        ritual_write_ref(c->conn, l->text, l->len, line_unref, l); /* released however it ends */
    }
    line_unref(l); /* the worker's own reference */
}

static void broadcast(unsigned long from, const char *text, size_t len)
{
    struct line *l = malloc(sizeof *l + len);
    if (!l)
        return;
    unsigned workers = ritual_server_workers(server);
    atomic_init(&l->refs, workers);
    l->from = from;
    l->len = len;
    memcpy(l->text, text, len);
    for (unsigned i = 0; i < workers; i++) {
        if (ritual_loop_try_post(ritual_server_loop(server, i), deliver, l, BACKLOG_MAX) < 0) {
            atomic_fetch_add(&lines_lost, 1);
            line_unref(l);
        }
    }
}

static size_t on_data(ritual_conn *conn, const char *bytes, size_t len)
{
    struct client *c = ritual_conn_data(conn);
    size_t used = 0;
    for (;;) {
        const char *nl = memchr(bytes + used, '\n', len - used);
        if (!nl)
            break;
        size_t n = (size_t)(nl - (bytes + used)) + 1;
        broadcast(c->id, bytes + used, n);
        used += n;
    }
    if (len - used > MAX_LINE) { /* no end of line in sight: not a chat client */
        ritual_conn_close(conn);
        return len;
    }
    return used; /* a partial line waits for the rest */
}

static void on_open(ritual_conn *conn)
{
    struct client *c = malloc(sizeof *c);
    if (!c) {
        ritual_conn_abort(conn);
        return;
    }
    c->conn = conn;
    c->id = atomic_fetch_add(&next_id, 1);
    ritual_list_add_tail(ritual_loop_data(ritual_conn_loop(conn)), &c->link);
    ritual_conn_set_data(conn, c);
    static const char welcome[] = "* welcome\n"; /* from here on, every line reaches it */
    ritual_write(conn, welcome, sizeof welcome - 1);
}

static void on_shutdown(ritual_conn *conn)
{
    static const char bye[] = "* the server is shutting down\n";
    ritual_write(conn, bye, sizeof bye - 1);
    ritual_conn_close(conn);
}

static void on_close(ritual_conn *conn, int reason)
{
    struct client *c = ritual_conn_data(conn);
    if (!c)
        return;
    if (reason == -ENOBUFS)
        fprintf(stderr, "chat: a client that stopped reading was cut\n");
    ritual_list_del(&c->link);
    free(c);
}

/* On the worker's thread, before its loop runs: its own client list. The
 * lists outlive the loops (a forced stop closes clients in
 * ritual_server_free), so main owns them. */
static void worker_start(ritual_server *srv, ritual_loop *loop)
{
    (void)srv;
    struct ritual_list *clients = &client_lists[ritual_loop_worker(loop)];
    ritual_list_init(clients);
    ritual_loop_set_data(loop, clients);
}

int main(int argc, char **argv)
{
    const char *listen = argc > 1 ? argv[1] : "127.0.0.1:7001";
    unsigned workers = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 0;
    ritual_error err;
    ritual_server_options so = {.workers = workers, .on_worker_start = worker_start};
    server = ritual_server_new(&so, &err);
    if (!server) {
        fprintf(stderr, "chat: %s\n", err.message);
        return 1;
    }
    client_lists = calloc(ritual_server_workers(server), sizeof *client_lists);
    if (!client_lists) {
        fprintf(stderr, "chat: out of memory\n");
        ritual_server_free(server);
        return 1;
    }
    ritual_listen_options lo = {.conn.write_limit = CLIENT_QUEUE};
    ritual_conn_callbacks cbs = {
        .on_open = on_open, .on_data = on_data, .on_shutdown = on_shutdown, .on_close = on_close};
    ritual_listener *l = ritual_server_listen(server, listen, &lo, &cbs, &err);
    if (!l || ritual_server_shutdown_on_signals(server, 5000) < 0) {
        fprintf(stderr, "chat: %s\n", l ? "signals" : err.message);
        ritual_server_free(server);
        free(client_lists);
        return 1;
    }
    printf("listening on port %d\n", ritual_listener_port(l));
    fflush(stdout);
    int rc = ritual_server_run(server);
    unsigned long lost = atomic_load(&lines_lost);
    if (lost)
        fprintf(stderr, "chat: %lu lines lost to workers too far behind\n", lost);
    ritual_server_free(server);
    free(client_lists);
    return rc == 0 ? 0 : 1;
}
