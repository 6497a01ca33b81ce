/* ritual_http.h - HTTP/1.1 on libritual.
 *
 * Two layers, usable apart:
 *   - a parser in the picohttpparser mould: pure functions over a caller's
 *     buffer, incremental, zero-copy, no allocation, no knowledge of sockets;
 *   - a server: keep-alive, pipelining (every complete request of one read is
 *     answered, in order, with one write), 100-continue, HTTP/1.0, HEAD, a
 *     cached Date header, timeouts, and strict handling of bad input. A user
 *     registers one handler and answers each request with ritual_http_respond,
 *     or writes the answer as it goes (ritual_http_stream_*), takes the body
 *     as it arrives (RITUAL_HTTP_BODY_STREAM), or takes the connection over
 *     for another protocol (ritual_http_upgrade).
 *
 * Errors are negative errnos, as everywhere in libritual; a request that
 * fails to parse also says which status to answer with (req->status).
 */
#ifndef RITUAL_HTTP_H
#define RITUAL_HTTP_H

#include "ritual.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* --------------------------------------------------------------- parser */

/* The head is not complete yet: call again with more bytes. */
#define RITUAL_HTTP_PARTIAL (-EAGAIN)

typedef struct ritual_http_header {
    const char *name; /* as received; compare case-insensitively */
    size_t name_len;
    const char *value; /* leading and trailing whitespace removed */
    size_t value_len;
} ritual_http_header;

/* Builds a header from two string literals. */
#define RITUAL_HTTP_HEADER(name, value)                                                            \
    ((ritual_http_header){(name), sizeof(name) - 1, (value), sizeof(value) - 1})

/* How the body of a message is framed (RFC 9112 section 6). */
typedef enum ritual_http_body {
    RITUAL_HTTP_BODY_NONE = 0,    /* no body */
    RITUAL_HTTP_BODY_LENGTH,      /* Content-Length bytes */
    RITUAL_HTTP_BODY_CHUNKED,     /* Transfer-Encoding: chunked */
    RITUAL_HTTP_BODY_UNTIL_CLOSE, /* responses only: read until the server closes */
} ritual_http_body;

enum {
    RITUAL_HTTP_CONN_CLOSE = 1u << 0,      /* Connection: close */
    RITUAL_HTTP_CONN_KEEP_ALIVE = 1u << 1, /* Connection: keep-alive */
    RITUAL_HTTP_EXPECT_CONTINUE = 1u << 2, /* Expect: 100-continue */
    RITUAL_HTTP_HAS_HOST = 1u << 3,        /* a Host header was present */
};

typedef struct ritual_http_limits {
    size_t max_request_line; /* bytes, CRLF excluded: longer is 414; default 8192 */
    size_t max_head;         /* request line and headers: longer is 431; default 32768 */
} ritual_http_limits;

/* One parsed request head. Pointers point into the parsed buffer. */
typedef struct ritual_http_request {
    const char *method;
    size_t method_len;
    const char *target; /* the request-target, raw (still percent-encoded) */
    size_t target_len;
    int minor_version; /* HTTP/1.x: 0 or 1 */
    /* In: `headers` points to `num_headers` slots. Out: the count used.
     * More headers than slots is -431. */
    ritual_http_header *headers;
    size_t num_headers;
    ritual_http_body body;
    uint64_t content_length; /* when body is RITUAL_HTTP_BODY_LENGTH */
    unsigned flags;          /* RITUAL_HTTP_* above */
    int status;              /* after a failed parse: the status to answer */
} ritual_http_request;

/* Parses a request head from buf[0..len).
 * Returns the length of the head (through the empty line; leading empty
 * lines are skipped and counted), RITUAL_HTTP_PARTIAL (-EAGAIN) if it is not
 * complete, or a negative errno with the status to answer in req->status:
 * -EBADMSG with 400, -EMSGSIZE with 414 or 431, -EOPNOTSUPP with 417 or 501,
 * -EPROTONOSUPPORT with 505. The statuses:
 *   400 malformed syntax, bare CR or LF, whitespace before a colon, obsolete
 *        line folding, control characters, invalid method, target or header
 *        name (a target in a form the method does not take; an http or
 *        https absolute-form target whose host is empty, whose port is not
 *        digits, whose IP literal lacks its ']', or with userinfo "u@"),
 *        missing (HTTP/1.1) or repeated Host, Content-Length that is not a
 *        number, overflows, or repeats, Content-Length together with
 *        Transfer-Encoding, a Transfer-Encoding whose last coding is not
 *        chunked, or Transfer-Encoding in an HTTP/1.0 request;
 *   414 request line longer than limits->max_request_line;
 *   417 an Expect other than 100-continue;
 *   431 head longer than limits->max_head, or more headers than slots;
 *   501 a transfer coding other than chunked (before a final chunked);
 *   505 an HTTP version other than 1.x.
 * A request split at any byte parses exactly as the whole does. `limits` may
 * be NULL for the defaults. `last_len` is the length given in the previous
 * call for the same request (0 the first time): bytes already known not to
 * end the head are not scanned again. */
RITUAL_API int ritual_http_parse_request(const char *buf, size_t len, ritual_http_request *req,
                                         const ritual_http_limits *limits, size_t last_len);

/* One parsed response head (for clients and load generators). */
typedef struct ritual_http_response {
    int status;
    int minor_version;
    const char *reason;
    size_t reason_len;
    ritual_http_header *headers; /* in: slots, as for requests */
    size_t num_headers;          /* in: slot count; out: used */
    ritual_http_body body;
    uint64_t content_length;
    unsigned flags; /* RITUAL_HTTP_CONN_* */
} ritual_http_response;

/* Parses a response head. `head_request` nonzero: the response answers a
 * HEAD request, so it has no body whatever its headers say (1xx, 204 and
 * 304 have none either). Returns as ritual_http_parse_request (a malformed
 * response is -EBADMSG; there is no status to answer). */
RITUAL_API int ritual_http_parse_response(const char *buf, size_t len, ritual_http_response *res,
                                          int head_request, size_t last_len);

/* State of a chunked body decoder; zero it before the first call. */
typedef struct ritual_http_chunked {
    uint64_t remaining; /* data bytes left in the current chunk */
    unsigned state;
    unsigned count; /* bytes in the current size line or trailer section */
} ritual_http_chunked;

/* Decodes chunked framing from buf[0..len) without copying. Returns 0 with
 * *used the bytes consumed and *data pointing at the body bytes found among
 * them (*data_len, possibly 0; at most one run per call, so call again
 * while bytes remain), or -EBADMSG for malformed framing or a chunk size
 * that overflows (answer 400). Chunk extensions and trailers are read and
 * discarded. ritual_http_chunked_done tells when the last chunk and
 * trailers are in. */
RITUAL_API int ritual_http_chunked_decode(ritual_http_chunked *dec, const char *buf, size_t len,
                                          size_t *used, const char **data, size_t *data_len);
RITUAL_API int ritual_http_chunked_done(const ritual_http_chunked *dec);

/* Finds a header by name (case-insensitive); NULL if absent. */
RITUAL_API const ritual_http_header *ritual_http_find_header(const ritual_http_header *headers,
                                                             size_t count, const char *name);

/* The reason phrase of a status ("Not Found"), "Unknown" for others. */
RITUAL_API const char *ritual_http_reason(int status);

/* --------------------------------------------------------------- server */

/* One request and its answer. Valid from the handler call until the
 * exchange ends: the answer is complete (ritual_http_respond*), a stream
 * ended (ritual_http_stream_end), the connection handed over
 * (ritual_http_upgrade), or its on_close returned (see
 * ritual_http_exchange_callbacks). That may be later than the handler's
 * return: the connection then waits, and requests pipelined behind it are
 * answered after it, in order. For such a late answer the request is
 * copied when the handler returns: take the request and body pointers
 * again from the exchange (the ones seen during the call pointed into the
 * read buffer). A handler that closes or aborts the connection instead of
 * answering (or whose stream write failed) ends the exchange with it: it
 * must not answer afterwards; its on_close, if set, runs as the connection
 * goes. ritual_loop_free runs queued posts first, so an answer posted from
 * another thread still finds its exchange.
 *
 * While an exchange waits, the connection goes on reading until a byte of
 * the next request arrives (that one waits, kept, for its turn). A FIN
 * that comes first is taken as the client leaving, as nginx does (its
 * 499): the connection closes and on_close runs with -EPIPE, at once, not
 * at the next write or the idle timeout. The price: a client that only
 * half-closed after its request loses an answer given after the handler
 * returned (one given in the handler was sent already). */
typedef struct ritual_http_exchange ritual_http_exchange;

typedef void (*ritual_http_handler)(ritual_http_exchange *ex, void *data);

/* One line for the access log: everything the common/combined log formats
 * need. Called after each response is queued. */
typedef struct ritual_http_log_entry {
    ritual_conn *conn; /* the connection (its loop tells which worker) */
    /* The request line as received ("GET / HTTP/1.1"), at most 1 KiB of it
     * for a request that did not parse; length 0 if there was none (408). */
    const char *request_line;
    size_t request_line_len;
    /* The parsed request; NULL when the layer answered before any handler
     * could run (400, 408, 413, 414, 431, 501, 505). */
    const ritual_http_request *req;
    const char *peer; /* "127.0.0.1:5555" */
    int status;
    uint64_t body_bytes; /* response body length */
    int64_t unix_time;   /* when the request head was complete */
} ritual_http_log_entry;
typedef void (*ritual_http_log_fn)(const ritual_http_log_entry *entry, void *data);

/* What the layer does with request bodies (ritual_http_options.body_mode).
 * In every mode a Content-Length above max_body is refused with 413 before
 * any of the body is read (then the connection closes), a chunked body that
 * grows past it gets 413 when it does, and a body that stalls for
 * body_timeout_ms gets 408 and a close. Nothing is allocated from a
 * Content-Length: buffers grow as bytes arrive. */
typedef enum ritual_http_body_mode {
    /* The handler runs once the whole body is in, which
     * ritual_http_exchange_body returns. */
    RITUAL_HTTP_BODY_BUFFER = 0,
    /* The handler runs as soon as the head is in; the body goes, piece by
     * piece as it arrives, to the on_body the handler sets with
     * ritual_http_exchange_set_callbacks (see there). Without an on_body,
     * or once the exchange is answered, the rest of the body is dropped
     * as it arrives (the connection stays usable). 100 Continue is sent
     * only to a handler that kept the exchange and set on_body. */
    RITUAL_HTTP_BODY_STREAM,
    /* For a server that takes no bodies (only GET and HEAD): body bytes are
     * read and dropped as they arrive, never kept; the handler runs once
     * the body is over and sees none. The connection stays reusable. */
    RITUAL_HTTP_BODY_DISCARD,
} ritual_http_body_mode;

typedef struct ritual_http_options {
    ritual_http_handler handler; /* required */
    void *data;                  /* passed to handler and log; also the
                                    listener's ritual_listener_data */
    ritual_http_log_fn log;      /* optional access log */
    ritual_http_limits limits;
    size_t max_headers;            /* default 100 */
    uint64_t max_body;             /* bytes; larger is 413; default 1 MiB */
    unsigned max_requests;         /* per connection, then close; default 10000 */
    uint64_t header_timeout_ms;    /* from a request's first byte to its
                                      empty line: then 408; default 10 s */
    uint64_t body_timeout_ms;      /* between body reads: then 408 and
                                      close; default 60 s */
    uint64_t keepalive_timeout_ms; /* idle between requests; default 75 s */
    uint64_t send_timeout_ms;      /* a response making no progress; default 60 s */
    const char *server_name;       /* Server header; default "ritual" */
    ritual_conn_options conn;      /* buffers and watermarks */
    int backlog;
    unsigned listen_flags; /* RITUAL_LISTEN_* */
    unsigned max_conns;
    ritual_tls *tls; /* HTTPS (ritual_tls.h); plain HTTP that comes to it is
                        answered with 400 and closed, as nginx does */
    ritual_http_body_mode body_mode;
    /* Header lines added to every response head the layer writes, its own
     * errors (400, 408, 413, ...) included, after Date and Server: whole
     * lines, each ending in CRLF ("X-Content-Type-Options: nosniff\r\n").
     * Checked when listening: a name that is not a token, a missing colon,
     * a bare CR or LF, a control character but HTAB in a value, or a
     * Content-Length, Transfer-Encoding or Connection line (the layer's
     * own, any case) is -EINVAL. Copied. NULL or "": none. */
    const char *extra_headers;
    /* As in ritual_listen_options: PROXY protocol sources and header
     * timeout, and a unix:/path socket file's mode and owner. */
    const char *proxy_from;
    uint64_t proxy_timeout_ms;
    unsigned unix_mode;
    const char *unix_owner;
} ritual_http_options;

/* Serves HTTP on `address` in `loop` (see ritual_listen). `options` is
 * copied. Returns the listener, or NULL with `err` filled. */
RITUAL_API ritual_listener *ritual_http_listen(ritual_loop *loop, const char *address,
                                               const ritual_http_options *options,
                                               ritual_error *err);

/* The same for every worker of a server (max_conns counts per worker). */
RITUAL_API ritual_listener *ritual_http_server_listen(ritual_server *server, const char *address,
                                                      const ritual_http_options *options,
                                                      ritual_error *err);

/* What a loop's HTTP listeners have answered, for metrics: counters that
 * only grow, written by the loop's thread and readable from any thread
 * without a lock. A response counts once its last byte is queued (a
 * stream's at ritual_http_stream_end), the layer's own errors (400, 408,
 * 413, ...) included; its latency runs from the request head's last byte
 * to then. */
#define RITUAL_HTTP_LATENCY_BUCKETS 14
/* The upper bounds of the latency buckets, in microseconds: 100 us, 250 us,
 * 500 us, 1 ms, 2.5 ms, 5 ms, 10 ms, 25 ms, 50 ms, 100 ms, 250 ms,
 * 500 ms, 1 s, 10 s; a last bucket holds the rest. */
RITUAL_API extern const uint64_t ritual_http_latency_bounds_us[RITUAL_HTTP_LATENCY_BUCKETS];

typedef struct ritual_http_stats {
    /* every response */
    uint64_t responses;
    /* by class: status[1] 1xx ... status[5] 5xx (status[0] stays 0) */
    uint64_t status[6];
    /* responses per latency bucket (not cumulative); the last: slower */
    uint64_t latency[RITUAL_HTTP_LATENCY_BUCKETS + 1];
    uint64_t latency_sum_us;
    /* response body bytes */
    uint64_t body_bytes;
} ritual_http_stats;

/* Fills `out` with `loop`'s counters (zero if it never served HTTP). */
RITUAL_API void ritual_http_stats_get(const ritual_loop *loop, ritual_http_stats *out);

/* The sum over a server's workers. */
RITUAL_API void ritual_http_server_stats_get(const ritual_server *server, ritual_http_stats *out);

/* The request being answered. In RITUAL_HTTP_BODY_BUFFER mode its body,
 * if it had one, is complete (ritual_http_exchange_body); in
 * RITUAL_HTTP_BODY_STREAM mode the body may still be arriving (on_body),
 * and ritual_http_exchange_body returns none; in RITUAL_HTTP_BODY_DISCARD
 * mode it was dropped. */
RITUAL_API const ritual_http_request *ritual_http_exchange_request(const ritual_http_exchange *ex);
RITUAL_API const char *ritual_http_exchange_body(const ritual_http_exchange *ex, size_t *len);
/* The exchange's connection, or NULL once it has closed (an answer given
 * later then returns -EPIPE). */
RITUAL_API ritual_conn *ritual_http_exchange_conn(const ritual_http_exchange *ex);

/* Answers with `status`, `headers` and `body` (copied; may be NULL when len
 * is 0). The layer adds Date, Server, Content-Length and, when the
 * connection will close, Connection: close; for HEAD it sends no body.
 * A header whose name is NULL is raw text, copied as is: whole lines, each
 * ending in CRLF (a block of headers prepared once and reused).
 * The framing and the connection are the layer's: a caller's
 * Content-Length, Transfer-Encoding or Connection header (any case, named
 * or in raw text) would contradict its own, and is refused; to close the
 * connection after an answer, use ritual_http_respond_error's `close`.
 * Expect: 100-continue (RITUAL_HTTP_BODY_STREAM): an answer given before
 * any of the body came, with no 100 sent, says Connection: close and
 * closes after it, as Go's net/http does: the client may rightly never
 * send the body, and its next request could not be told from it.
 * Returns 0 or a negative errno: -EINVAL for a status outside 100-599, a
 * header name that is empty or holds a control character, a space or a
 * colon, a value with CR, LF or another control character but HTAB (header
 * injection), raw text that is not whole lines, or a header of the
 * layer's as above (then
 * nothing is sent and the exchange is still to be answered); -EALREADY if
 * it was answered; else the connection is gone or going (-EPIPE: nothing
 * was sent; the exchange's on_close, if it has one, still runs). */
RITUAL_API int ritual_http_respond(ritual_http_exchange *ex, int status,
                                   const ritual_http_header *headers, size_t num_headers,
                                   const void *body, size_t len);

/* As ritual_http_respond, but the body is referenced, not copied: it must
 * stay valid until `release(arg)` runs, which is once it has been written
 * or copied into the connection's queue (by the end of the current read, or
 * at once on failure). For bodies kept in memory anyway, such as a cache of
 * small files. Returns as ritual_http_respond; release runs in every case. */
RITUAL_API int ritual_http_respond_ref(ritual_http_exchange *ex, int status,
                                       const ritual_http_header *headers, size_t num_headers,
                                       const void *body, size_t len, void (*release)(void *arg),
                                       void *arg);

/* Answers with `len` bytes of file `fd` from `offset`, sent with sendfile
 * (no copy through user space). `release(arg)` runs once the bytes are sent
 * or dropped; the fd must stay open until then. Returns as ritual_http_respond;
 * release runs in every case. */
RITUAL_API int ritual_http_respond_file(ritual_http_exchange *ex, int status,
                                        const ritual_http_header *headers, size_t num_headers,
                                        int fd, uint64_t offset, uint64_t len,
                                        void (*release)(void *arg), void *arg);

/* Answers with an error status and a short text body (for HEAD, the head
 * alone, with the Content-Length a GET would get); `close` nonzero also
 * closes the connection after it. Returns as ritual_http_respond. */
RITUAL_API int ritual_http_respond_error(ritual_http_exchange *ex, int status, int close);

/* ------------------------------------------ streaming, bodies, upgrades */

/* What an exchange tells its application after the handler returned. Each
 * may be NULL. `arg` is the one given to ritual_http_exchange_set_callbacks. */
typedef struct ritual_http_exchange_callbacks {
    /* RITUAL_HTTP_BODY_STREAM: the next `len` bytes of the request body
     * (decoded from chunked framing), valid during the call only. A piece
     * is never longer than conn.read_buffer_size (default 64 KiB): it lies
     * in the connection's read buffer. */
    void (*on_body)(ritual_http_exchange *ex, const char *data, size_t len, void *arg);
    /* RITUAL_HTTP_BODY_STREAM: the body is complete (also for a request
     * without one: then just after the handler returns). The usual place
     * to answer an upload. */
    void (*on_body_end)(ritual_http_exchange *ex, void *arg);
    /* A streamed response's connection took the queued output: write more.
     * Runs after ritual_http_stream_write returned RITUAL_HTTP_STREAM_FULL,
     * once the queue is back under its low watermark. */
    void (*on_drain)(ritual_http_exchange *ex, void *arg);
    /* The connection closed (`reason` as ritual_conn_callbacks.on_close)
     * before the exchange was answered or its stream ended; -EPIPE when the
     * client closed its side while the answer was pending (see
     * ritual_http_exchange). The exchange is freed when this returns: never
     * touch it again. Without on_close the exchange is kept until answered
     * (the answer then returns -EPIPE). */
    void (*on_close)(ritual_http_exchange *ex, int reason, void *arg);
} ritual_http_exchange_callbacks;

/* Sets the exchange's callbacks (`cbs` is not copied: keep it for the
 * exchange's life, as a static const) and their `arg`. Call from the
 * handler to hear about the body, or before writing a stream. */
RITUAL_API void ritual_http_exchange_set_callbacks(ritual_http_exchange *ex,
                                                   const ritual_http_exchange_callbacks *cbs,
                                                   void *arg);

/* RITUAL_HTTP_BODY_STREAM: stop delivering body pieces (the request's bytes
 * wait in the kernel, and TCP slows the client down) until resumed; the
 * body timeout does not run meanwhile, however long. Callable from the
 * handler (before any piece) and from on_body. Resuming
 * hands over what was held, from the loop, not inside the call.
 * Return 0, -EALREADY if the body is complete, -EINVAL if the exchange
 * does not stream a body, or -EPIPE if the connection is gone. */
RITUAL_API int ritual_http_body_pause(ritual_http_exchange *ex);
RITUAL_API int ritual_http_body_resume(ritual_http_exchange *ex);

/* A response written as it goes. ritual_http_stream_start sends the head:
 * with `length` >= 0 a Content-Length of that many bytes, which the writes
 * must add up to exactly; with RITUAL_HTTP_LENGTH_UNKNOWN, chunked for an
 * HTTP/1.1 request, and for HTTP/1.0 a body that ends when the connection
 * closes. Then ritual_http_stream_write for each piece, and
 * ritual_http_stream_end. For HEAD, and for 204 and 304, the head is all
 * that is sent: writes are accepted and dropped. Requests pipelined behind
 * the exchange wait for its end, and are answered in order.
 *
 * Backpressure: a write returns RITUAL_HTTP_STREAM_FULL once the
 * connection's queue is above its high watermark (conn.write_high_watermark);
 * stop writing until on_drain (ritual_http_exchange_callbacks) runs. The
 * queue is bounded by conn.write_limit: a write that would take it past
 * (a writer that goes on anyway, or one write larger than the limit that
 * the kernel does not take at once) returns -ENOBUFS and the connection is
 * closed at once (queued output dropped). A connection that closes
 * mid-stream makes writes return a negative errno, and on_close runs.
 *
 * The connection's idle timeout becomes send_timeout_ms at the start: a
 * stream that writes nothing for longer (a quiet event stream) sets its
 * own with ritual_conn_set_idle_timeout(ritual_http_exchange_conn(ex), ms).
 *
 * ritual_http_stream_start returns 0, or as ritual_http_respond: -EINVAL
 * for a bad status (or one below 200) or head, a Content-Length,
 * Transfer-Encoding or Connection header among them (the framing is
 * `length`'s; nothing sent, the exchange still to be answered), -EALREADY
 * if answered or streaming already, -EPIPE if the connection is gone,
 * -ENOMEM. */
#define RITUAL_HTTP_LENGTH_UNKNOWN (-1)
RITUAL_API int ritual_http_stream_start(ritual_http_exchange *ex, int status,
                                        const ritual_http_header *headers, size_t num_headers,
                                        int64_t length);

/* Sends `len` bytes (copied as needed) of the streamed body; len 0 sends
 * nothing. Returns 0 (write on), RITUAL_HTTP_STREAM_FULL (taken, but wait
 * for on_drain), -EINVAL if no stream was started or the bytes would pass
 * the announced length (nothing sent), -EALREADY after the end, or a
 * negative errno from the connection (-EPIPE, -ECONNRESET, -ENOBUFS): it is
 * closing, and on_close follows. */
#define RITUAL_HTTP_STREAM_FULL 1
RITUAL_API int ritual_http_stream_write(ritual_http_exchange *ex, const void *data, size_t len);

/* Ends the stream (the last chunk when chunked; the close when the body
 * runs to it) and with it the exchange: it must not be used after.
 * Returns 0; -EINVAL if fewer bytes than the announced length were
 * written (nothing done: write the rest, or close the connection) or no
 * stream was started; -EALREADY if ended already; or -EPIPE if the
 * connection is gone (the exchange is freed all the same). */
RITUAL_API int ritual_http_stream_end(ritual_http_exchange *ex);

/* Answers 101 Switching Protocols with `headers` (the caller's Upgrade,
 * Connection: upgrade and what the protocol asks, such as
 * Sec-WebSocket-Accept; the layer adds Date, Server and extra_headers) and
 * hands the connection over: from then on it runs on `callbacks` (copied;
 * on_data required, on_open not called) with `data` as its
 * ritual_conn_data, and the HTTP layer lets go of it (no timeouts of its
 * own: the idle timeout is reset to 0, none). Bytes the client sent after
 * the request head (and body) go to the new on_data: right after the
 * handler returns when called from it, else from the loop. The exchange
 * ends here. The layer does not check the request's Upgrade header: the
 * caller chooses the protocol from it (RFC 9110 7.8).
 * Returns 0; -EINVAL for an HTTP/1.0 request (which may not be upgraded),
 * a request whose body is still arriving, callbacks without on_data, or a
 * bad header, Content-Length and Transfer-Encoding included (nothing
 * sent); -EALREADY if answered or streaming; -EPIPE if the connection is
 * gone; -ENOMEM. */
RITUAL_API int ritual_http_upgrade(ritual_http_exchange *ex, const ritual_http_header *headers,
                                   size_t num_headers, const ritual_conn_callbacks *callbacks,
                                   void *data);

/* Formats `unix_time` as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT")
 * into out[30] (29 characters and a NUL). */
RITUAL_API void ritual_http_date(int64_t unix_time, char out[30]);

/* Parses an IMF-fixdate (and the two obsolete forms RFC 9110 allows).
 * Returns 0 with *out set, or -EINVAL. */
RITUAL_API int ritual_http_parse_date(const char *text, size_t len, int64_t *out);

#ifdef __cplusplus
}
#endif

#endif /* RITUAL_HTTP_H */
