/* An HTTP/1.1 server in 30 lines: "Hello, world" on 127.0.0.1:8081 (or argv[1]).
 * Keep-alive, pipelining, HEAD, timeouts and bad requests are the library's.
 * Build: cc hello_http.c $(pkg-config --cflags --libs ritual) */
#include <ritual.h>
#include <ritual_http.h>
#include <stdio.h>

static void hello(ritual_http_exchange *ex, void *data)
{
    (void)data; /* options.data, for your own state */
    static const char body[] = "Hello, world\n";
    const ritual_http_header type = RITUAL_HTTP_HEADER("Content-Type", "text/plain");
    ritual_http_respond(ex, 200, &type, 1, body, sizeof body - 1);
}

int main(int argc, char **argv)
{
    ritual_error err;
    ritual_loop *loop = ritual_loop_new(NULL, &err);
    ritual_http_options opts = {.handler = hello};
    ritual_listener *l =
        loop ? ritual_http_listen(loop, argc > 1 ? argv[1] : "127.0.0.1:8081", &opts, &err) : NULL;
    if (!l) {
        fprintf(stderr, "hello_http: %s\n", err.message);
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
