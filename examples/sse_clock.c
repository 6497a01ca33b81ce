/* Server-Sent Events: every client of http://127.0.0.1:8082/ (or argv[1])
 * gets the time once a second, as an event stream, until it leaves or the
 * server stops. Try: curl -N http://127.0.0.1:8082/
 *
 * What it shows: a response written as it goes (ritual_http_stream_*),
 * chunked since its length is unknown; a timer per client; backpressure (a
 * client that does not read misses ticks rather than growing a queue);
 * on_close to free a client that left; and a clean stop on SIGINT or
 * SIGTERM: every stream ends with its last chunk, then the loop drains.
 * Build: cc sse_clock.c $(pkg-config --cflags --libs ritual) */
#include <ritual.h>
#include <ritual_http.h>
#include <ritual_list.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct client {
    ritual_http_exchange *ex;
    ritual_timer *tick;
    int full; /* the last write found the queue full: wait for on_drain */
    struct ritual_list link;
};

static struct ritual_list clients = {&clients, &clients};

static void client_free(struct client *c)
{
    ritual_list_del(&c->link);
    ritual_timer_free(c->tick);
    free(c);
}

static void tick(ritual_timer *timer, void *data)
{
    (void)timer;
    struct client *c = data;
    if (c->full)
        return; /* a slow reader skips this one */
    char event[80];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    int n = (int)strftime(event, sizeof event, "data: %Y-%m-%dT%H:%M:%SZ\n\n", &tm);
    int rc = ritual_http_stream_write(c->ex, event, (size_t)n);
    if (rc == RITUAL_HTTP_STREAM_FULL)
        c->full = 1;
    /* rc < 0: the connection is going; on_close frees the client */
}

static void drained(ritual_http_exchange *ex, void *arg)
{
    (void)ex;
    struct client *c = arg;
    c->full = 0;
}

static void closed(ritual_http_exchange *ex, int reason, void *arg)
{
    (void)ex, (void)reason;
    client_free(arg); /* the exchange is gone once this returns */
}

static const ritual_http_exchange_callbacks stream_callbacks = {
    .on_drain = drained,
    .on_close = closed,
};

static void handle(ritual_http_exchange *ex, void *data)
{
    ritual_loop *loop = data;
    const ritual_http_request *req = ritual_http_exchange_request(ex);
    if (req->target_len != 1 || req->target[0] != '/') {
        ritual_http_respond_error(ex, 404, 0);
        return;
    }
    static const ritual_http_header headers[] = {
        RITUAL_HTTP_HEADER("Content-Type", "text/event-stream"),
        RITUAL_HTTP_HEADER("Cache-Control", "no-cache"),
    };
    struct client *c = calloc(1, sizeof *c);
    if (c)
        c->tick = ritual_timer_new(loop, tick, c);
    if (!c || !c->tick) {
        free(c);
        ritual_http_respond_error(ex, 503, 1);
        return;
    }
    c->ex = ex;
    ritual_list_add_tail(&clients, &c->link);
    ritual_http_exchange_set_callbacks(ex, &stream_callbacks, c);
    if (ritual_http_stream_start(ex, 200, headers, 2, RITUAL_HTTP_LENGTH_UNKNOWN) < 0) {
        client_free(c);
        return;
    }
    if (req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0) {
        ritual_http_stream_end(ex); /* the head is the whole answer */
        client_free(c);
        return;
    }
    /* Quiet between events for up to a second: more than the default
     * send timeout allows for nothing would be wrong, so say so. */
    ritual_conn_set_idle_timeout(ritual_http_exchange_conn(ex), 30000);
    tick(c->tick, c);
    ritual_timer_start(c->tick, 1000, 1000);
}

/* SIGINT, SIGTERM: no new connections, every stream ended properly (the
 * last chunk, then the connection closes), and the loop returns once they
 * have gone. */
static void stop(ritual_signal *signal, int signum, void *data)
{
    (void)signal, (void)signum;
    ritual_loop *loop = data;
    ritual_loop_shutdown(loop, 5000);
    while (clients.next != &clients) {
        struct client *c = ritual_container_of(clients.next, struct client, link);
        ritual_http_stream_end(c->ex);
        client_free(c);
    }
}

int main(int argc, char **argv)
{
    ritual_error err;
    ritual_loop *loop = ritual_loop_new(NULL, &err);
    ritual_http_options opts = {.handler = handle, .data = loop};
    ritual_listener *l =
        loop ? ritual_http_listen(loop, argc > 1 ? argv[1] : "127.0.0.1:8082", &opts, &err) : NULL;
    ritual_signal *sigint = l ? ritual_signal_new(loop, SIGINT, stop, loop, &err) : NULL;
    ritual_signal *sigterm = sigint ? ritual_signal_new(loop, SIGTERM, stop, loop, &err) : NULL;
    if (!sigterm) {
        fprintf(stderr, "sse_clock: %s\n", err.message);
        ritual_loop_free(loop);
        return 1;
    }
    printf("listening on port %d\n", ritual_listener_port(l));
    fflush(stdout);
    int rc = ritual_loop_run(loop);
    ritual_signal_free(sigint);
    ritual_signal_free(sigterm);
    ritual_loop_free(loop);
    return rc == 0 ? 0 : 1;
}
