/* resume.c - session resumption. Server: stateless tickets sealed with keys
 * the ritual_tls holds, so every worker (and every generation a reload
 * makes) accepts every other's; a new key every rotation period, and the
 * two before it still open tickets, as h2o and nginx's ssl_session_ticket_key
 * lists do. Client: the last session a server issued, offered again. */
#include "context.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A fresh key in front; the oldest falls off. Under the lock. */
static void rotate(ritual_tls *tls, uint64_t now)
{
    memmove(&tls->keys[1], &tls->keys[0], (TLS_TICKET_KEYS - 1) * sizeof tls->keys[0]);
    struct tls_ticket_key *k = &tls->keys[0];
    if (RAND_bytes(k->name, sizeof k->name) != 1 || RAND_bytes(k->aes, sizeof k->aes) != 1 ||
        RAND_bytes(k->hmac, sizeof k->hmac) != 1) {
        /* No randomness: no key. Tickets stop (full handshakes) rather than
         * being sealed with a guessable one. */
        memmove(&tls->keys[0], &tls->keys[1], (TLS_TICKET_KEYS - 1) * sizeof tls->keys[0]);
        OPENSSL_cleanse(&tls->keys[TLS_TICKET_KEYS - 1], sizeof tls->keys[0]);
        if (tls->key_count > 0)
            tls->key_count--;
        return;
    }
    if (tls->key_count < TLS_TICKET_KEYS)
        tls->key_count++;
    tls->key_born_ns = now;
}

void ritual__tls_tickets_init(ritual_tls *tls, uint64_t rotate_s)
{
    tls->ticket_rotate_ns = rotate_s * 1000000000u;
    rotate(tls, now_ns());
}

void ritual__tls_tickets_clear(ritual_tls *tls)
{
    OPENSSL_cleanse(tls->keys, sizeof tls->keys);
    tls->key_count = 0;
}

static int init_mac(EVP_MAC_CTX *mac, unsigned char *key)
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key, 32),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"sha256", 0),
        OSSL_PARAM_construct_end(),
    };
    return EVP_MAC_CTX_set_params(mac, params);
}

/* OpenSSL's ticket callback: 1 sealed/opened, 2 opened with an old key (a
 * new ticket follows), 0 not ours (a full handshake), -1 failure. */
int ritual__tls_ticket_cb(SSL *ssl, unsigned char key_name[16], unsigned char iv[16],
                          EVP_CIPHER_CTX *cipher, EVP_MAC_CTX *mac, int encrypt)
{
    ritual_tls *tls = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    struct tls_ticket_key key;
    int found = -1;
    pthread_mutex_lock(&tls->lock);
    if (encrypt) {
        uint64_t now = now_ns();
        if (now - tls->key_born_ns >= tls->ticket_rotate_ns)
            rotate(tls, now);
        if (tls->key_count > 0) {
            key = tls->keys[0];
            found = 0;
        }
    } else {
        for (size_t i = 0; i < tls->key_count; i++) {
            if (memcmp(key_name, tls->keys[i].name, sizeof tls->keys[i].name) == 0) {
                key = tls->keys[i];
                found = (int)i;
                break;
            }
        }
    }
    pthread_mutex_unlock(&tls->lock);
    if (found < 0)
        return encrypt ? -1 : 0;
    int rc;
    if (encrypt) {
        memcpy(key_name, key.name, sizeof key.name);
        rc = RAND_bytes(iv, 16) == 1 &&
                     EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), NULL, key.aes, iv) == 1 &&
                     init_mac(mac, key.hmac) == 1
                 ? 1
                 : -1;
    } else {
        /* 2 renews the ticket: for a ticket sealed with an old key, and
         * always in TLS 1.3, whose clients use a ticket once (RFC 8446
         * C.4), so that the next connection has a fresh one to resume
         * with; nginx renews the same way. */
        bool renew = found != 0 || SSL_version(ssl) == TLS1_3_VERSION;
        rc = EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), NULL, key.aes, iv) == 1 &&
                     init_mac(mac, key.hmac) == 1
                 ? (renew ? 2 : 1)
                 : -1;
    }
    OPENSSL_cleanse(&key, sizeof key);
    return rc;
}

/* ----------------------------------------------------------------- client */

static void saved_drop(ritual_tls *tls, size_t i)
{
    SSL_SESSION_free(tls->saved[i].session);
    free(tls->saved[i].name);
    memmove(&tls->saved[i], &tls->saved[i + 1], (tls->saved_count - i - 1) * sizeof tls->saved[0]);
    tls->saved_count--;
}

void ritual__tls_sessions_clear(ritual_tls *tls)
{
    while (tls->saved_count > 0)
        saved_drop(tls, tls->saved_count - 1);
}

/* The newest session for the name goes to this connection, and out of the
 * store: a ticket is used once. `server_name`: "" for a server known by
 * its address. */
void ritual__tls_session_offer(ritual_tls *tls, SSL *ssl, const char *server_name)
{
    if (tls->no_resume)
        return;
    pthread_mutex_lock(&tls->lock);
    for (size_t i = tls->saved_count; i-- > 0;) {
        if (strcmp(tls->saved[i].name, server_name) != 0)
            continue;
        if (SSL_SESSION_is_resumable(tls->saved[i].session))
            SSL_set_session(ssl, tls->saved[i].session);
        saved_drop(tls, i);
        break;
    }
    pthread_mutex_unlock(&tls->lock);
}

/* OpenSSL's new-session callback: returns 1 when it keeps the reference. */
int ritual__tls_session_saved(SSL *ssl, SSL_SESSION *session)
{
    ritual_tls *tls = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    char *copy = strdup(name ? name : "");
    if (!copy)
        return 0;
    pthread_mutex_lock(&tls->lock);
    if (tls->saved_count == TLS_SAVED_SESSIONS)
        saved_drop(tls, 0); /* the oldest */
    tls->saved[tls->saved_count++] = (struct tls_saved_session){session, copy};
    pthread_mutex_unlock(&tls->lock);
    return 1;
}
