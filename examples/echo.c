/* The smallest complete ritual server: echo on 127.0.0.1:7000 (or argv[1]).
 * Build: cc echo.c $(pkg-config --cflags --libs ritual) */
#include <ritual.h>
#include <stdio.h>

static size_t on_data(ritual_conn *conn, const char *bytes, size_t len)
{
    ritual_write(conn, bytes, len); /* sent now, or queued by the library */
    return len;                     /* consumed everything */
}

int main(int argc, char **argv)
{
    ritual_error err;
    ritual_loop *loop = ritual_loop_new(NULL, &err);
    if (!loop) {
        fprintf(stderr, "echo: %s\n", err.message);
        return 1;
    }
    ritual_listen_options opts = {.conn.idle_timeout_ms = 60000};
    ritual_conn_callbacks cbs = {.on_data = on_data};
    ritual_listener *l =
        ritual_listen(loop, argc > 1 ? argv[1] : "127.0.0.1:7000", &opts, &cbs, &err);
    if (!l) {
        fprintf(stderr, "echo: %s\n",
                err.message); /* "bind 127.0.0.1:7000: Address already in use" */
        ritual_loop_free(loop);
        return 1;
    }
    ritual_loop_shutdown_on_signals(loop, 5000); /* SIGINT/SIGTERM: drain 5 s, then exit */
    printf("listening on port %d\n", ritual_listener_port(l)); /* the real one, if 0 was asked */
    fflush(stdout);
    int rc = ritual_loop_run(loop); /* until SIGINT/SIGTERM and drained */
    ritual_loop_free(loop);
    return rc == 0 ? 0 : 1;
}
