/* fuzz_server.c - feeds bytes to the real HTTP server code, the way h2o's
 * fuzz/driver.cc does: one end of a socketpair is handed to an HTTP
 * listener, the input is written to the other end in packets (split at each
 * MARKER), the loop runs between packets, and after the last one the client
 * half-closes and the loop runs until the server closes its end.
 *
 * Checked: no sanitizer report, no hang (the loop must finish within a
 * bounded number of turns), every response starts with a well-formed head,
 * and no connection is left open afterwards.
 *
 * Built with FUZZ_TLS (fuzz_tls), the listener runs TLS with a certificate
 * made at start, as `ritual http --tls-cert` does: the bytes meet the TLS
 * record layer and handshake first (a ClientHello cannot be answered the
 * same way twice, so a replayed input never completes a handshake), and
 * plain text meets the HTTP server behind it. What comes back is then TLS
 * records (an alert, a ServerHello) or a plain-text answer. */
#include "ritual.h"
#include "ritual_http.h"
#include "ritual_tls.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MARKER "\n--8<--\n"
#define MAX_TURNS 2000

struct fuzz_state {
    ritual_loop *loop;
    ritual_listener *listener;
    ritual_timer *tick;
    int file_fd;
};

static struct fuzz_state *state; /* the fuzzer's process-wide harness, not library state */

/* A handler with a few behaviours chosen by the path, to reach every
 * response path: memory bodies, files, late answers and errors. */
struct late {
    ritual_http_exchange *ex;
    ritual_timer *timer;
};

static void late_fired(ritual_timer *timer, void *data)
{
    struct late *late = data;
    static const char body[] = "late\n";
    ritual_http_respond(late->ex, 200, NULL, 0, body, sizeof body - 1);
    ritual_timer_free(timer);
    free(late);
}

static void ref_done(void *arg)
{
    (void)arg;
}

static void handle(ritual_http_exchange *ex, void *data)
{
    (void)data;
    const ritual_http_request *req = ritual_http_exchange_request(ex);
    size_t body_len;
    ritual_http_exchange_body(ex, &body_len);
    const char *t = req->target;
    size_t n = req->target_len;
    if (n >= 5 && memcmp(t, "/file", 5) == 0) {
        ritual_http_respond_file(ex, 200, NULL, 0, state->file_fd, 3, 4000, NULL, NULL);
    } else if (n >= 5 && memcmp(t, "/late", 5) == 0) {
        struct late *late = malloc(sizeof *late);
        late->ex = ex;
        late->timer = ritual_timer_new(state->loop, late_fired, late);
        ritual_timer_start(late->timer, 0, 0);
    } else if (n >= 4 && memcmp(t, "/err", 4) == 0) {
        ritual_http_respond_error(ex, 500, t[4] == 'c');
    } else if (n >= 4 && memcmp(t, "/ref", 4) == 0) {
        static const char body[] = "referenced, not copied\n";
        ritual_http_respond_ref(ex, 200, NULL, 0, body, sizeof body - 1, ref_done, NULL);
    } else if (n >= 4 && memcmp(t, "/big", 4) == 0) {
        static char big[100000];
        ritual_http_respond(ex, 200, NULL, 0, big, sizeof big);
    } else {
        char text[64];
        int len = snprintf(text, sizeof text, "body %zu\n", body_len);
        const ritual_http_header h = RITUAL_HTTP_HEADER("Content-Type", "text/plain");
        ritual_http_respond(ex, 200, &h, 1, text, (size_t)len);
    }
}

static void tick_fired(ritual_timer *timer, void *data)
{
    (void)timer;
    ritual_loop_stop(data);
}

/* One turn of the loop: whatever is ready, then back here. */
static void turn(void)
{
    ritual_timer_start(state->tick, 0, 0);
    ritual_loop_run(state->loop);
}

#ifdef FUZZ_TLS
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

/* A self-signed ECDSA certificate for localhost, written to temporary
 * files for ritual_tls_server_new and removed once loaded. */
static ritual_tls *make_tls(void)
{
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *x = X509_new();
    if (!pkey || !x)
        abort();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, pkey);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    if (!X509_sign(x, pkey, EVP_sha256()))
        abort();
    char cert[] = "/tmp/ritual-fuzz-cert-XXXXXX", key[] = "/tmp/ritual-fuzz-key-XXXXXX";
    int cfd = mkstemp(cert), kfd = mkstemp(key);
    FILE *cf = cfd >= 0 ? fdopen(cfd, "w") : NULL, *kf = kfd >= 0 ? fdopen(kfd, "w") : NULL;
    if (!cf || !kf || !PEM_write_X509(cf, x) ||
        !PEM_write_PrivateKey(kf, pkey, NULL, NULL, 0, NULL, NULL))
        abort();
    fclose(cf);
    fclose(kf);
    X509_free(x);
    EVP_PKEY_free(pkey);
    ritual_tls_options o = {.cert_file = cert, .key_file = key, .alpn = "http/1.1"};
    ritual_error err;
    ritual_tls *tls = ritual_tls_server_new(&o, &err);
    unlink(cert);
    unlink(key);
    if (!tls) {
        fprintf(stderr, "fuzz_tls: %s\n", err.message);
        abort();
    }
    return tls;
}
#endif

static void setup(void)
{
    state = calloc(1, sizeof *state);
    ritual_loop_options lo = {.log_level = RITUAL_LOG_NONE};
    state->loop = ritual_loop_new(&lo, NULL);
    ritual_http_options o = {
        .handler = handle,
        .max_body = 64 * 1024,
        .limits = {.max_request_line = 1024, .max_head = 4096},
        .max_headers = 16,
        .max_requests = 50,
    };
#ifdef FUZZ_TLS
    o.tls = make_tls(); /* the listener keeps a reference for the process */
#endif
    ritual_error err;
    state->listener = ritual_http_listen(state->loop, "127.0.0.1:0", &o, &err);
    if (!state->listener) {
        fprintf(stderr, "fuzz_server: %s\n", err.message);
        abort();
    }
    state->tick = ritual_timer_new(state->loop, tick_fired, state->loop);
    char path[] = "/tmp/ritual-fuzz-XXXXXX";
    state->file_fd = mkstemp(path);
    unlink(path);
    char block[8192];
    memset(block, 'f', sizeof block);
    if (state->file_fd < 0 || write(state->file_fd, block, sizeof block) != sizeof block)
        abort();
}

/* Checks that what the server sent starts with a response head that parses. */
static void check_output(const char *out, size_t len)
{
    if (len == 0)
        return;
#ifdef FUZZ_TLS
    if (out[0] == 0x15 || out[0] == 0x16)
        return; /* TLS records: an alert, or the server's first flight */
#endif
    ritual_http_header headers[64];
    ritual_http_response res = {.headers = headers, .num_headers = 64};
    int rc = ritual_http_parse_response(out, len, &res, 0, 0);
    if (rc < 0 && rc != RITUAL_HTTP_PARTIAL) {
        fprintf(stderr, "fuzz_server: malformed response head (%d): %.*s\n", rc,
                (int)(len < 200 ? len : 200), out);
        abort();
    }
}

/* Reads what the server sent so far (it must never block on us). Returns
 * true once the server has closed its end. */
static bool drain_client(int client, char *out, size_t *out_len, size_t out_size)
{
    for (;;) {
        char buf[4096];
        ssize_t r = recv(client, buf, sizeof buf, 0);
        if (r > 0 && *out_len + (size_t)r <= out_size) {
            memcpy(out + *out_len, buf, (size_t)r);
            *out_len += (size_t)r;
        }
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
            return true;
        if (r < 0)
            return false;
    }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (!state)
        setup();
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    if (ritual_listener_adopt(state->listener, sv[0]) < 0)
        abort();
    int client = sv[1];
    if (fcntl(client, F_SETFL, O_NONBLOCK) < 0)
        abort();

    static char out[1 << 16];
    size_t out_len = 0;
    const char *p = (const char *)data, *end = p + size;
    bool closed = false;
    int turns = 0;
    while (p < end && !closed && turns < MAX_TURNS) {
        const char *m = memmem(p, (size_t)(end - p), MARKER, sizeof MARKER - 1);
        const char *stop = m ? m : end;
        /* One packet: written whole unless the socket pushes back. */
        while (p < stop && !closed && turns++ < MAX_TURNS) {
            ssize_t n = send(client, p, (size_t)(stop - p), MSG_NOSIGNAL);
            if (n > 0)
                p += n;
            else if (n < 0 && errno != EAGAIN && errno != EINTR)
                closed = true; /* the server closed: the rest goes unread */
            turn();
            closed = drain_client(client, out, &out_len, sizeof out) || closed;
        }
        if (m && p == stop)
            p = m + sizeof MARKER - 1;
    }
    shutdown(client, SHUT_WR);
    for (turns = 0; !closed; turns++) {
        if (turns > MAX_TURNS) {
            fprintf(stderr, "fuzz_server: the server did not close the connection\n");
            abort();
        }
        turn();
        closed = drain_client(client, out, &out_len, sizeof out);
    }
    close(client);
    turn();
    if (ritual_loop_conn_count(state->loop) != 0) {
        fprintf(stderr, "fuzz_server: a connection outlived its client\n");
        abort();
    }
    check_output(out, out_len);
    return 0;
}
