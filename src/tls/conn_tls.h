/* conn_tls.h - what the parts of TLS under a connection share: its state
 * (struct ritual_tls_conn), the loop's buffers (struct ritual_tls_loop),
 * and the calls between conn_tls.c (life and handshake), records.c
 * (records in and out) and stage.c (OpenSSL's BIO, the staging buffer,
 * the idle sweep). Private to src/tls. */
#ifndef RITUAL_TLS_CONN_TLS_H
#define RITUAL_TLS_CONN_TLS_H

#include "../conn_parts.h"
#include "context.h"
#include "tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#define TLS_RECORD 16384 /* the most plaintext a record holds */
/* A record's most ciphertext (TLS 1.2 allows 2 KiB of expansion) and its
 * header: the backend may receive this much beyond the input bound, so a
 * record can always complete. */
#define TLS_RECORD_SLACK (TLS_RECORD + 2048 + 5)
#define TLS_FIRST_BYTE 0x16 /* a handshake record: every ClientHello starts so */

enum {
    TLS_SERVER = 1u << 0,
    TLS_HANDSHAKEN = 1u << 1, /* on_open ran */
    TLS_EOF = 1u << 2,        /* the transport's FIN came */
    TLS_NOTIFY_SENT = 1u << 3,
    TLS_CLOSE_WAIT = 1u << 4, /* closed before the handshake, with writes waiting */
    TLS_PLAINTEXT_OK = 1u << 5,
    TLS_FAILED = 1u << 6,
    TLS_STARTED = 1u << 7, /* the first bytes came (a ClientHello may come in pieces) */
};

struct ritual_tls_conn {
    SSL *ssl;
    struct tls_gen *gen;
    struct ritual_tls_loop *loop_bufs;
    unsigned state;
    uint32_t idle_ms; /* the user's idle timeout, set aside during the handshake */
    const char *src;  /* ciphertext OpenSSL reads next */
    size_t src_len;
    struct ritual_inbuf *held; /* ciphertext received while reading was held back */
    char *early;               /* outbound: plaintext written before the handshake */
    size_t early_len, early_cap;
};

/* A file is read and encrypted this much at a time: four records, sent
 * with one system call. */
#define TLS_FILE_STEP (4 * TLS_RECORD)

/* A connection idle this long gives its record buffers (some 34 KiB)
 * back to the allocator: a server holds many more idle connections than
 * busy ones. */
#define TLS_IDLE_MS 1000

struct ritual_tls_loop {
    ritual_timer *sweep; /* every TLS_IDLE_MS while TLS connections exist */
    unsigned conns;      /* TLS connections of the loop */
    /* Ciphertext OpenSSL wrote, on its way to the queue: `owner`'s. While a
     * connection's received bytes are being read (`deferring`), what it
     * writes waits here until they are done, so that a handshake's tickets,
     * the answer to a request and close_notify leave in one system call. */
    char *staged;
    size_t staged_len, staged_cap;
    ritual_conn *owner;
    ritual_conn *deferring;
    bool failed; /* the staging could not grow */
    char record[TLS_RECORD];
    char file[TLS_FILE_STEP];
};

static struct ritual_tls_conn *tls_of(const ritual_conn *conn)
{
    return conn->tls;
}

/* SSL_get_error reads the thread's error queue, which must hold nothing
 * from before the call it explains (another library's, the user's). Only
 * looking is cheap; clearing an empty queue is not (OpenSSL 3 walks all of
 * its slots). */
static inline void clear_errors(void)
{
    if (ERR_peek_error())
        ERR_clear_error();
}

/* stage.c */
struct ritual_tls_loop *ritual__tls_loop_bufs(ritual_loop *loop); /* made on first use */
/* Sends what OpenSSL staged for the connection. Returns 0, or the
 * negative errno the connection closed with. */
int ritual__tls_flush_staged(ritual_conn *conn);
/* Before OpenSSL writes for `conn`: another connection's staged bytes go
 * to that connection first. */
void ritual__tls_stage_claim(ritual_conn *conn);
/* As ritual__tls_flush_staged, unless the output may wait for the end of
 * the reading under way (stage.c says when). */
int ritual__tls_flush_unless_deferred(ritual_conn *conn);

/* conn_tls.c */
/* TLS failed: its alert (if any) goes out, then the connection closes. */
void ritual__tls_failed(ritual_conn *conn);
/* Runs the handshake on what has arrived. Returns 1 when it completed
 * (on_open ran), 0 while it waits for the peer, -1 if the connection is
 * closing or closed. */
int ritual__tls_handshake(ritual_conn *conn);
/* A first byte that no TLS handshake starts with, on a listener that
 * takes plain text: the connection goes on without TLS. */
void ritual__tls_become_plain(ritual_conn *conn, const char *bytes, size_t len);

#endif
