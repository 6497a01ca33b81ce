/* http_client.h - a strict HTTP/1.1 client, for the tests. */
#ifndef RITUAL_TEST_HTTP_CLIENT_H
#define RITUAL_TEST_HTTP_CLIENT_H

#include "check.h"
#include "server.h"

#include <stddef.h>
#include <stdint.h>

/* A client connection and the bytes it read past the last response (the
 * start of the next one, when requests are pipelined). */
struct http_client {
    int fd;
    size_t len;
    char buf[1 << 16];
};

#define HTTP_MAX_FIELDS 64

/* One response, as read off the wire by a small strict parser: a status
 * line "HTTP/1.x NNN reason", header lines ending in CRLF, and a body framed
 * by Content-Length (none for HEAD, 1xx, 204 and 304; until the close when
 * there is no Content-Length). A chunked one is refused unless only its head
 * is read (http_read_head): the chunks are the caller's to decode. */
struct http_response {
    int status;
    int minor_version;
    size_t head_len; /* bytes of the head, its empty line included */
    size_t num_fields;
    const char *names[HTTP_MAX_FIELDS]; /* NUL-terminated, in `fields` */
    const char *values[HTTP_MAX_FIELDS];
    char fields[16384];
    int has_length; /* a Content-Length header was present */
    uint64_t content_length;
    int chunked; /* Transfer-Encoding: chunked (only http_read_head reads those) */
    char *body;  /* malloc'd and NUL-terminated (NULL after http_read_head) */
    size_t body_len;
};

/* Starts `ritual http --listen 127.0.0.1:0 --root ROOT EXTRA...` as
 * server_start does (extra_args NULL-terminated, or NULL). */
void http_server_start(const char *ritual_path, const char *root, const char *const extra_args[],
                       struct server *out);

/* Connects to 127.0.0.1:port (blocking, TCP_NODELAY); fails the test on error. */
struct http_client *http_client_open(int port);
void http_client_close(struct http_client *c);

/* Sends the NUL-terminated `raw` bytes as they are. */
void http_send(struct http_client *c, const char *raw);

/* Reads one whole response within timeout_ms. `head_request` nonzero: it
 * answers a HEAD, so it has no body. Returns 1 with *r filled (free it with
 * http_response_free), or 0 if the server closed the connection before a
 * single byte of a response. A timeout, a reset, a malformed head or a body
 * cut short fails the test. */
int http_read_response(struct http_client *c, struct http_response *r, int head_request,
                       int timeout_ms);

/* Reads only the head: the body stays to be read with http_client_recv. */
int http_read_head(struct http_client *c, struct http_response *r, int timeout_ms);

/* Up to `cap` bytes: first those read ahead, then from the socket, waiting
 * up to timeout_ms. Returns the count, 0 at the end of the stream; fails the
 * test on a timeout or a socket error. */
size_t http_client_recv(struct http_client *c, void *buf, size_t cap, int timeout_ms);

/* Expects nothing more from the server than its FIN within timeout_ms. */
void http_expect_eof(struct http_client *c, int timeout_ms);

/* Sends "METHOD TARGET HTTP/1.1", Host and the extra header lines of `fmt`
 * (each ending in CRLF) on c, and reads the response within 5 s; a close
 * instead of an answer fails the test. */
void http_ask(struct http_client *c, struct http_response *r, const char *method,
              const char *target, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Connects, sends `raw`, reads one response (a HEAD if `raw` starts with
 * "HEAD "), closes. Fails the test if no response comes within timeout_ms. */
void http_exchange(int port, const char *raw, struct http_response *r, int timeout_ms);

/* The value of the first header `name` (case-insensitive), or NULL. */
const char *http_field(const struct http_response *r, const char *name);

/* How many times header `name` appears. */
int http_field_count(const struct http_response *r, const char *name);

void http_response_free(struct http_response *r);

/* Assert the status, and the value of a header (NULL: absent), showing the
 * response on failure. */
#define HTTP_EXPECT_STATUS(r, want) http_expect_status_((r), (want), __FILE__, __LINE__)
#define HTTP_EXPECT_FIELD(r, name, want) http_expect_field_((r), (name), (want), __FILE__, __LINE__)
void http_expect_status_(const struct http_response *r, int want, const char *file, int line);
void http_expect_field_(const struct http_response *r, const char *name, const char *want,
                        const char *file, int line);

#endif
