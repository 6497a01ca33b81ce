/* http_internal.h - what the HTTP server's files share: the per-loop site,
 * the per-connection state and the exchange. Private to the library.
 *
 * Layers: server.c (connection state machine, timeouts) -> response.c
 * (formatting and the output stage) -> parser.c (pure) and the core. */
#ifndef RITUAL_HTTP_INTERNAL_H
#define RITUAL_HTTP_INTERNAL_H

#include "ritual.h"
#include "ritual_http.h"
#include "ritual_list.h"

#include <stdbool.h>
#include <stdint.h>

/* A run of staged output: bytes of the stage (ext NULL: at offset `off`,
 * as the stage may move when it grows) or a referenced body. */
struct http_piece {
    const char *ext;
    size_t off, len;
    void (*release)(void *arg);
    void *arg;
};

/* Options shared, read-only, by the sites of every worker. */
struct http_config {
    ritual_http_options opts; /* defaults filled in */
    unsigned refs;            /* one per site */
    unsigned nsites;
    struct http_site **sites;
};

/* Per loop: what connections of one listener on one loop share. */
struct http_site {
    struct http_config *config;
    const ritual_http_options *opts;
    ritual_loop *loop;

    /* Responses of one on_data call are staged here and sent with one write
     * when it returns. `stage_conn` owns what is staged: heads (and copied
     * bodies) in `stage`, the order of everything in `pieces`, and bodies
     * that are referenced rather than copied in pieces of their own, with
     * a release to run once they are written. */
    char *stage;
    size_t stage_len, stage_cap;
    struct http_piece *pieces;
    size_t npieces, pieces_cap;
    size_t staged_bytes; /* in all pieces */
    struct http_conn *stage_conn;

    /* Headers of a request being parsed synchronously. */
    ritual_http_header *headers;

    /* Date header, formatted once per second of the realtime clock, and
     * the lines every response starts with after its status line. */
    int64_t date_sec;
    char date[30];
    char *common; /* "\r\nDate: ...\r\nServer: ...\r\n" and extra_headers */
    size_t common_len, common_cap;

    /* Connections whose request body is arriving, oldest deadline first, as
     * for `waiting` (a body read moves a connection to the end). */
    struct ritual_list body_waiting;
    ritual_timer *body_timer;

    /* Connections waiting for a request head, oldest deadline first (every
     * deadline is now + the same timeout, so appending keeps the order). */
    struct ritual_list waiting;
    ritual_timer *header_timer;

    struct http_stats *stats; /* the loop's, shared with its other sites */

    struct http_conn *free_conns; /* recycled, linked by next_free */
    struct ritual_list all_conns; /* every http_conn allocated, for the loop's free */
};

/* A request answered after its handler returned, and a body that arrived
 * over several reads, live in a buffer of their own: the head bytes copied
 * and parsed again there, then the decoded body. */
struct http_owned {
    size_t head_len; /* bytes of head at data */
    size_t body_len; /* decoded body bytes after the head */
    size_t cap;
    ritual_http_header *headers; /* max_headers slots, after data */
    char data[];
};

/* How a streamed response frames its body (ritual_http_stream_*). */
enum http_stream {
    STREAM_NONE = 0,
    STREAM_LENGTH,  /* Content-Length: stream_left bytes to go */
    STREAM_CHUNKED, /* Transfer-Encoding: chunked */
    STREAM_CLOSE,   /* HTTP/1.0, no length: the close ends it */
    STREAM_DROP,    /* HEAD, 204, 304: no body at all */
};

struct ritual_http_exchange {
    struct http_conn *hc;
    ritual_http_request req;
    const char *body;
    size_t body_len;
    int64_t unix_time;
    bool responded;
    bool head_method;
    bool keep_alive;   /* the request allows the connection to stay open */
    bool held;         /* the handler returned without answering */
    bool drain_wanted; /* a stream write found the queue full */
    uint8_t stream;    /* enum http_stream */
    uint16_t stream_status;
    const ritual_http_exchange_callbacks *cbs;
    void *cb_arg;
    uint64_t stream_left;  /* STREAM_LENGTH: bytes still to write */
    uint64_t stream_bytes; /* body bytes written */
    uint64_t head_us;      /* ritual_loop_now_us when the head was complete */
};

enum http_state {
    HTTP_IDLE = 0, /* between requests (or none yet) */
    HTTP_BODY,     /* head parsed; its body is arriving into `owned` */
    HTTP_WAITING,  /* a handler has not answered yet */
    HTTP_UPGRADED, /* answered 101: the connection is someone else's */
};

struct http_conn {
    ritual_conn *conn; /* NULL once closed (then only a waiting exchange keeps us) */
    struct http_site *site;
    uint8_t state;
    bool in_delivery;   /* inside on_data: responses are staged, not sent */
    bool close_after;   /* the next response says Connection: close... */
    bool done;          /* ...and once it is staged, nothing more is read */
    bool eof;           /* the peer finished sending */
    bool held;          /* complete requests left in the buffer: output is full */
    bool plain_on_tls;  /* plain text came to a TLS listener: answered with 400 */
    bool discard;       /* HTTP_BODY: the bytes are dropped, not kept */
    bool body_streamed; /* HTTP_BODY: the handler ran; bytes go to on_body */
    bool body_paused;   /* ritual_http_body_pause */
    bool client_left;   /* a FIN while an answer was pending (on_eof) */
    /* HTTP_BODY: Expect: 100-continue asked, and neither 100 sent nor a body
     * byte come: the client may never send the body (ritual__http_settle_close). */
    bool expect_unmet;
    uint32_t idle_ms;  /* the idle timeout last set on the connection */
    unsigned requests; /* answered on this connection */
    size_t last_len;   /* bytes of an incomplete head already scanned */
    const char *raw;   /* a request that failed to parse, for the log */
    size_t raw_len;
    uint64_t deadline_ms;    /* header deadline while on site->waiting */
    struct ritual_list wait; /* in site->waiting (empty when not) */
    struct ritual_list all;  /* in site->all_conns */
    struct http_conn *next_free;
    /* HTTP_BODY: where the body stands */
    struct http_owned *owned;
    uint64_t body_left; /* Content-Length bytes still to come */
    uint64_t body_seen; /* decoded body bytes so far */
    uint64_t body_deadline_ms;
    struct ritual_list body_wait; /* in site->body_waiting (empty when not) */
    ritual_http_chunked chunked;
    ritual_http_body body_kind;
    size_t (*upgraded_on_data)(ritual_conn *conn, const char *bytes, size_t len);
    struct ritual_http_exchange ex; /* the current exchange */
};

/* server.c: the callbacks of every HTTP connection, the per-loop header
 * deadline, and what a connection owns beside the library's buffer. */
extern const ritual_conn_callbacks ritual__http_callbacks;
void ritual__http_header_timer_fired(ritual_timer *timer, void *data);
void ritual__http_owned_free(struct http_conn *hc);
/* Copies a head (and room for `body_cap` body bytes) into a buffer of the
 * connection's own. Returns 0 or -ENOMEM. */
int ritual__http_owned_new(struct http_conn *hc, const char *head, size_t head_len,
                           size_t body_cap);
/* Parses the owned head again so the request points into the owned copy. */
void ritual__http_reparse_owned(struct http_conn *hc);
/* Runs the handler for the request in hc->ex; an exchange it keeps moves
 * its request into an owned copy (of `head`, unless owned already), and
 * the connection waits for the answer. */
void ritual__http_dispatch(struct http_conn *hc, const char *head, size_t head_len);
/* Sets the handler's fields of the exchange and runs it. Returns true if
 * it kept the exchange (to answer later), false if it answered or closed. */
bool ritual__http_run_handler(struct http_conn *hc);
/* Idle timeout of the connection, set only when it changes. */
void ritual__http_set_idle(struct http_conn *hc, uint64_t ms);
/* Returns an http_conn whose connection has gone to the free list. */
void ritual__http_conn_recycle(struct http_conn *hc);
/* Logs the exchange's response (if there is a log). */
void ritual__http_log_exchange(struct http_conn *hc, int status, uint64_t body_bytes);

/* body.c: request bodies as they arrive (kept, dropped or streamed), and
 * the per-loop body deadline. */
void ritual__http_body_timer_fired(ritual_timer *timer, void *data);
/* A head whose body follows at p[head_len..n): returns the bytes consumed. */
size_t ritual__http_body_begin(struct http_conn *hc, const char *p, size_t n, size_t head_len);
/* Body bytes for the request in HTTP_BODY. Returns the bytes consumed. */
size_t ritual__http_body_feed(struct http_conn *hc, const char *p, size_t n);
void ritual__http_body_wait_stop(struct http_conn *hc);
/* A streamed body's exchange was answered before the body ended. */
void ritual__http_body_answered(struct http_conn *hc);

/* Settles whether the exchange's answer closes the connection after it,
 * and says so: asked for, or the body of an Expect: 100-continue still
 * unmet (then keep-alive is turned off here). The client was
 * told to wait for a 100 that never came; it may (rightly) never send the
 * body, so whatever comes next could not be told apart from it: close, as
 * Go's net/http does. Called as an answer's head is staged. */
static inline bool ritual__http_settle_close(struct http_conn *hc, struct ritual_http_exchange *ex)
{
    if (hc->expect_unmet && hc->state == HTTP_BODY)
        ex->keep_alive = false;
    return hc->close_after || !ex->keep_alive;
}

/* response.c */
void ritual__http_date_refresh(struct http_site *site);
/* Sends what is staged for stage_conn. */
void ritual__http_stage_flush(struct http_site *site);
/* Drops what is staged (its connection closed), running the releases. */
void ritual__http_stage_drop(struct http_site *site);
/* Takes the stage for `hc`: flushes another connection's staged bytes. */
void ritual__http_stage_claim(struct http_site *site, struct http_conn *hc);
/* Answers `status` with a short text body (closing after it if asked) when
 * no exchange exists yet (a request that did not parse). */
void ritual__http_respond_early(struct http_conn *hc, int status, bool close);
/* The same with a text of the caller's as the body. */
void ritual__http_respond_early_text(struct http_conn *hc, int status, bool close,
                                     const char *text);
/* Sends "HTTP/1.1 100 Continue". */
void ritual__http_send_continue(struct http_conn *hc);
/* Content-Length values of stage_head that are not lengths. */
#define HTTP_LEN_CHUNKED UINT64_MAX    /* Transfer-Encoding: chunked */
#define HTTP_LEN_NONE (UINT64_MAX - 1) /* no framing header */
/* The parts of an answer, for stream.c and upgrade.c: the checks (0 or a
 * negative errno: see ritual_http_respond), the head staged (0 or
 * -ENOMEM), and the stage sent unless on_data will send it. */
int ritual__http_check_head(int status, const ritual_http_header *headers, size_t num_headers);
int ritual__http_check_exchange(ritual_http_exchange *ex);
int ritual__http_stage_head(struct http_conn *hc, int status, const ritual_http_header *headers,
                            size_t num_headers, uint64_t content_length, bool close, bool http10);
void ritual__http_flush_unless_delivering(struct http_conn *hc);

/* stats.c: the loop's counters (made on first use; NULL: out of memory),
 * and one response counted into the site's, its latency from start_us. */
struct http_stats *ritual__http_stats_of(ritual_loop *loop);
void ritual__http_count(struct http_site *site, int status, uint64_t body_bytes, uint64_t start_us);

/* server.c */
/* Logs a response the layer gave before any handler ran. */
void ritual__http_log_early(struct http_conn *hc, int status, uint64_t body_bytes);
/* The exchange's response is complete: account for it and go on. */
void ritual__http_exchange_done(struct http_conn *hc, int status, uint64_t body_bytes);

#endif
