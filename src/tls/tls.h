/* tls.h - what the connection core asks of TLS, and the shared objects
 * behind a ritual_tls. Private to the library.
 *
 * A TLS connection is an ordinary one whose bytes pass through here: what the
 * backend receives is ciphertext handed to ritual__tls_received; plaintext
 * reaches on_data through the connection's own input buffer; what the user
 * writes is encrypted at once into the loop's staging buffer and written raw
 * (ritual__conn_write_raw), so the queue, the watermarks and every backend
 * see ciphertext only. File segments stay in the queue as files and are
 * encrypted 64 KiB at a time when they reach its head. */
#ifndef RITUAL_TLS_INTERNAL_H
#define RITUAL_TLS_INTERNAL_H

#include "ritual.h"
#include "ritual_tls.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct ritual_file_chunk;

/* ---------------------------------------------------- per connection */

/* Makes `conn` a TLS connection: a server one (accepted) or a client one
 * (outbound, `server_name` for SNI and verification, NULL: its IP). Its
 * handshake timeout replaces the idle timeout until on_open. `plaintext`:
 * a first byte that cannot start a handshake makes it a plain connection.
 * Returns 0 or a negative errno. */
int ritual__tls_attach(ritual_conn *conn, ritual_tls *tls, bool server, const char *server_name,
                       bool plaintext);
/* Frees the connection's TLS state (after on_close). */
void ritual__tls_detach(ritual_conn *conn);
/* Outbound: TCP is connected; send the ClientHello. */
void ritual__tls_connected(ritual_conn *conn);
/* Ciphertext arrived (len > 0), or the peer's FIN (len 0). */
void ritual__tls_received(ritual_conn *conn, const char *bytes, size_t len);
/* Decrypts and hands over plaintext while reading is not held back. */
void ritual__tls_deliver(ritual_conn *conn);
/* Ciphertext the backend may still receive: the input bound plus room for
 * one whole record, less what is held. */
size_t ritual__tls_receive_room(const ritual_conn *conn);
/* Something received and not yet handed over (ciphertext, decrypted bytes
 * inside OpenSSL, the transport's end). */
bool ritual__tls_holds_input(const ritual_conn *conn);
/* Ciphertext received and held, not yet decrypted. */
size_t ritual__tls_input_held(const ritual_conn *conn);
/* The user's plaintext. Before the handshake completes (outbound) it is kept
 * and sent after. Returns as ritual_writev. */
int ritual__tls_writev(ritual_conn *conn, const struct iovec *iov, int iovcnt);
/* Encrypts the next records (64 KiB) of the file segment at the head of the queue.
 * On return 0 the loop's staging holds it (ritual__tls_staged); a negative
 * errno if the file could not be read (-EIO: it ended early). */
int ritual__tls_encrypt_file(ritual_conn *conn, struct ritual_file_chunk *file);
/* Sends what the connection's writes left staged (before a file joins
 * the queue behind them). */
void ritual__tls_flush(ritual_conn *conn);
/* The ciphertext staged by the last encryption, and its release. */
void ritual__tls_staged(ritual_conn *conn, const char **bytes, size_t *len);
void ritual__tls_staged_clear(ritual_conn *conn);
/* The queue emptied on a closing (or shut) connection: queue close_notify
 * if it is due. Returns true if it queued something (the FIN waits for it),
 * false when the FIN may go now. */
bool ritual__tls_close_notify(ritual_conn *conn);
/* A close asked for before the handshake completed, with writes waiting
 * for it: true if the close is deferred until they have gone. */
bool ritual__tls_defer_close(ritual_conn *conn);
/* The peer's FIN came; what is left is decided without reading more. */
bool ritual__tls_transport_ended(const ritual_conn *conn);
/* A listener or outbound connection takes a user's reference on `tls`
 * (dropped with ritual_tls_free). */
void ritual__tls_use(ritual_tls *tls);
/* An accepted connection whose handshake never completed: the user never
 * saw it, so no on_close. */
bool ritual__tls_unseen(const ritual_conn *conn);
/* Whether the user has been given the connection (on_open ran). */
bool ritual__tls_opened(const ritual_conn *conn);

/* ------------------------------------------------------------ per loop */

/* The loop's TLS buffers (staging and file records), made on first use. */
void ritual__tls_loop_free(ritual_loop *loop);

#endif
