/* context.h - a ritual_tls: its OpenSSL contexts, in generations that a
 * reload replaces, and the session ticket keys every generation shares.
 * Private to the library. */
#ifndef RITUAL_TLS_CONTEXT_H
#define RITUAL_TLS_CONTEXT_H

#include "ritual_tls.h"

#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A ticket key: the name a ticket carries, and what encrypts and signs it. */
struct tls_ticket_key {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
};

#define TLS_TICKET_KEYS 3     /* the current key and the two before it */
#define TLS_SAVED_SESSIONS 16 /* a client's sessions kept for resumption */

/* One set of certificates as loaded: ctx[0] is the default, the others are
 * chosen by SNI. A connection holds a reference from its handshake on, so a
 * reload never pulls a context from under one. */
struct tls_gen {
    atomic_uint refs;
    ritual_tls *tls;
    size_t count;
    SSL_CTX *ctx[];
};

struct tls_cert_files {
    char *cert;
    char *key;
};

struct ritual_tls {
    atomic_uint users; /* the user's, and each listener's and outbound
                          connection's: the current generation stays while
                          any is left */
    atomic_uint refs;  /* the memory: one for all users, one per generation */
    bool server;
    bool no_verify;
    bool no_resume;
    uint64_t handshake_timeout_ms;
    unsigned char alpn[256]; /* wire format: length-prefixed names */
    size_t alpn_len;
    char *ca_file;
    BIO_METHOD *bio_method;
    pthread_mutex_t lock; /* the fields below */
    struct tls_gen *gen;  /* what new handshakes use */
    struct tls_cert_files *certs;
    size_t cert_count;
    /* server: ticket keys, keys[0] current, rotated every ticket_rotate_ns */
    struct tls_ticket_key keys[TLS_TICKET_KEYS];
    size_t key_count;
    uint64_t key_born_ns;
    uint64_t ticket_rotate_ns;
    /* client: sessions servers gave, newest last, each offered once (a
     * TLS 1.3 ticket is single-use), with the SNI they were for */
    struct tls_saved_session {
        SSL_SESSION *session;
        char *name;
    } saved[TLS_SAVED_SESSIONS];
    size_t saved_count;
};

/* A listener or outbound connection takes a user's reference (dropped with
 * ritual_tls_free). */
void ritual__tls_use(ritual_tls *tls);
/* The current generation (NULL once every user let go), with a reference
 * the caller drops. */
struct tls_gen *ritual__tls_gen_get(ritual_tls *tls);
void ritual__tls_gen_put(struct tls_gen *gen);

/* conn_tls.c: our BIO's functions */
void ritual__tls_bio_method_init(BIO_METHOD *m);

/* resume.c */
void ritual__tls_tickets_init(ritual_tls *tls, uint64_t rotate_s);
void ritual__tls_tickets_clear(ritual_tls *tls);
int ritual__tls_ticket_cb(SSL *ssl, unsigned char key_name[16], unsigned char iv[16],
                          EVP_CIPHER_CTX *cipher, EVP_MAC_CTX *mac, int encrypt);

/* Client sessions: offered on a new connection, saved when a server issues
 * one; ritual__tls_sessions_clear drops them all. */
void ritual__tls_sessions_clear(ritual_tls *tls);
void ritual__tls_session_offer(ritual_tls *tls, SSL *ssl, const char *server_name);
int ritual__tls_session_saved(SSL *ssl, SSL_SESSION *session);

#endif
