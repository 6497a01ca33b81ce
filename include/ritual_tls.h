/* ritual_tls.h - TLS (OpenSSL 3) under any protocol.
 *
 * TLS is a property of a listener (ritual_listen_options.tls) or of an
 * outbound connection (ritual_connect_options.tls). Under it the ordinary
 * connection API is unchanged: on_data receives plaintext, ritual_write,
 * ritual_writev, ritual_write_ref and ritual_write_file take plaintext, and
 * the watermarks, write_limit and timeouts keep their meaning (they count
 * the encrypted bytes queued, which are the plaintext plus a few bytes a
 * record). So echo, HTTP or a protocol of your own gets TLS without a
 * changed line. One difference in timing: what a connection writes while
 * its own on_data (or on_open, on_eof) runs is encrypted at once but sent
 * once what arrived with it has all been handed over, in one system call
 * (up to 64 KiB; more goes at once), on every backend.
 *
 * The handshake runs before the protocol sees the connection: on_open comes
 * once it completed, and a connection whose handshake fails or times out
 * closes without on_open or on_close. Received records are decrypted from
 * whatever buffer the backend received them in (the same path on io_uring,
 * epoll and poll). A file segment is read 64 KiB at a time into a buffer
 * of the loop and encrypted as the socket drains, so a peer that does not
 * read holds at most those 64 KiB of it in memory, not the file. ritual_write_ref's
 * bytes are encrypted at once and released before it returns.
 *
 * Closing: ritual_conn_close sends close_notify after the queued output,
 * then the FIN; ritual_conn_shutdown_write does the same and keeps reading.
 * A peer's close_notify is its end of stream (on_eof); a stream cut without
 * one, a record that does not decrypt, or a failed handshake closes the
 * connection with -EPROTO.
 *
 * Defaults, chosen as a security reviewer would: TLS 1.2 and 1.3 only,
 * Mozilla's "intermediate" ciphers for TLS 1.2, no renegotiation, no
 * compression, no 0-RTT; stateless session tickets (TLS 1.3 and 1.2) whose
 * keys live in the ritual_tls object, so every loop and worker using it
 * shares them, and rotate. docs/tls.md says why each default is what it is.
 *
 * A ritual_tls is shared: any loop on any thread may use it at once. Free
 * it whenever you like; it lives on until the last listener and connection
 * using it are gone. */
#ifndef RITUAL_TLS_H
#define RITUAL_TLS_H

#include "ritual.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ritual_tls_options {
    /* Server: the first certificate, a PEM chain (leaf first) and its key
     * (PEM; RSA or ECDSA). More with ritual_tls_add_cert. */
    const char *cert_file;
    const char *key_file;
    /* Client: the CAs to verify servers against (PEM); NULL: the system's. */
    const char *ca_file;
    int no_verify; /* client: accept any certificate (tests and benchmarks) */
    /* ALPN protocols, most preferred first, comma-separated ("http/1.1",
     * later "h2,http/1.1"). Server: a client that offers ALPN but none of
     * these is refused with no_application_protocol, as nginx does; NULL:
     * ALPN is ignored. Client: offered. */
    const char *alpn;
    uint64_t handshake_timeout_ms; /* server and client; default 10 s */
    uint64_t ticket_rotate_s;      /* a new ticket key this often; the two
                                      before it still resume; default 1 h */
    int no_resume;                 /* server: issue no tickets; client: never
                                      offer a saved session */
} ritual_tls_options;

/* A server configuration with its first certificate. Checks at once that
 * each file reads, parses and that key and certificate match. Returns NULL
 * with `err` naming the file and the reason ("tls: cert.pem: No such file or
 * directory", "tls: key.pem does not match cert.pem"). */
RITUAL_API ritual_tls *ritual_tls_server_new(const ritual_tls_options *options, ritual_error *err);

/* Adds a certificate chosen by SNI: a client asking for a name the
 * certificate holds (subjectAltName DNS entries, wildcards included; the
 * common name if it has none) gets it; any other gets the first. Returns 0
 * or a negative errno with `err` filled as for ritual_tls_server_new. */
RITUAL_API int ritual_tls_add_cert(ritual_tls *tls, const char *cert_file, const char *key_file,
                                   ritual_error *err);

/* A client configuration. It keeps the sessions servers give it (the 16
 * newest) and offers each once, to a new connection with the same server
 * name: TLS 1.3 tickets are single-use, and the server sends a fresh one
 * with every resumption. */
RITUAL_API ritual_tls *ritual_tls_client_new(const ritual_tls_options *options, ritual_error *err);

/* Reads every certificate file again (a renewed certificate). Handshakes
 * that start after it returns use the new ones; connections already open
 * keep theirs, and the ticket keys stay, so sessions still resume. If any
 * file fails, nothing changes and the error says which. Any thread. */
RITUAL_API int ritual_tls_reload(ritual_tls *tls, ritual_error *err);

/* Drops the caller's reference (NULL is ignored). */
RITUAL_API void ritual_tls_free(ritual_tls *tls);

/* Whether this kernel offers kernel TLS (the `tls` upper-layer protocol).
 * ritual encrypts in user space either way today; a program says which path
 * runs. */
RITUAL_API int ritual_tls_kernel_available(void);

typedef struct ritual_tls_info {
    const char *version;     /* "TLSv1.3" */
    const char *cipher;      /* "TLS_AES_128_GCM_SHA256" */
    const char *server_name; /* SNI as sent by the client, or NULL */
    char alpn[32];           /* the protocol agreed on, or "" */
    int resumed;             /* nonzero: an abbreviated handshake */
} ritual_tls_info;

/* Fills `out` for a connection running TLS with its handshake done (from
 * on_open on, until on_close returns). Returns 0, or -ENOPROTOOPT for a
 * connection without TLS (a plain one, or one that came to a listener with
 * RITUAL_LISTEN_TLS_PLAINTEXT and spoke plain text). */
RITUAL_API int ritual_conn_tls_info(const ritual_conn *conn, ritual_tls_info *out);

/* The TLS configuration a listener was given, or NULL. */
RITUAL_API ritual_tls *ritual_listener_tls(const ritual_listener *listener);

#ifdef __cplusplus
}
#endif

#endif
