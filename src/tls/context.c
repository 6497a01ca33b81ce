/* context.c - ritual_tls objects: OpenSSL contexts with our defaults, the
 * certificates (checked at load, chosen by SNI, reloaded in place) and ALPN.
 * Handshakes on any thread take the current generation of contexts under
 * the lock; a reload builds the next one outside it and swaps. */
#include "context.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_HANDSHAKE_TIMEOUT_MS 10000
#define DEFAULT_TICKET_ROTATE_S 3600

/* Mozilla's "intermediate" configuration (v5.7): forward-secret AEAD
 * ciphers for TLS 1.2; TLS 1.3's own suites are all acceptable. */
#define TLS12_CIPHERS                                                                              \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                                   \
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
#define TLS_GROUPS "X25519:P-256:P-384"

/* The last OpenSSL error, as words ("no start line"); clears the queue. */
static const char *openssl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return r ? r : "unknown error";
}

/* A file we cannot open is named with the system's reason, which OpenSSL's
 * messages only bury. */
static int check_readable(const char *path, ritual_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return ritual_error_set(err, -errno, "tls: %s", path);
    fclose(f);
    return 0;
}

static int load_cert(SSL_CTX *ctx, const struct tls_cert_files *files, ritual_error *err)
{
    int rc = check_readable(files->cert, err);
    if (rc == 0)
        rc = check_readable(files->key, err);
    if (rc < 0)
        return rc;
    if (SSL_CTX_use_certificate_chain_file(ctx, files->cert) != 1)
        return ritual_error_set(err, -EINVAL, "tls: %s: not a PEM certificate chain (%s)",
                                files->cert, openssl_reason());
    if (SSL_CTX_use_PrivateKey_file(ctx, files->key, SSL_FILETYPE_PEM) != 1) {
        const char *why = openssl_reason();
        if (strstr(why, "mismatch"))
            return ritual_error_set(err, -EINVAL, "tls: %s does not match %s", files->key,
                                    files->cert);
        return ritual_error_set(err, -EINVAL, "tls: %s: not a PEM private key (%s)", files->key,
                                why);
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        return ritual_error_set(err, -EINVAL, "tls: %s does not match %s", files->key, files->cert);
    }
    return 0;
}

/* SNI: the first certificate that holds the name, else the default. */
static int select_cert(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    struct tls_gen *gen = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name || gen->count < 2)
        return SSL_TLSEXT_ERR_OK;
    for (size_t i = 0; i < gen->count; i++) {
        X509 *cert = SSL_CTX_get0_certificate(gen->ctx[i]);
        if (cert && X509_check_host(cert, name, 0, 0, NULL) == 1) {
            if (i > 0)
                SSL_set_SSL_CTX(ssl, gen->ctx[i]);
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_OK; /* the default's, as nginx's default_server */
}

static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *out_len,
                       const unsigned char *in, unsigned in_len, void *arg)
{
    (void)ssl;
    ritual_tls *tls = arg;
    unsigned char *chosen;
    if (SSL_select_next_proto(&chosen, out_len, tls->alpn, (unsigned)tls->alpn_len, in, in_len) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL; /* no_application_protocol */
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

/* "h2,http/1.1" -> "\x02h2\x08http/1.1" */
static int parse_alpn(ritual_tls *tls, const char *list, ritual_error *err)
{
    size_t n = 0;
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len > 255 || n + 1 + len > sizeof tls->alpn)
            return ritual_error_set(err, -EINVAL, "tls: bad ALPN list \"%s\"", list);
        tls->alpn[n++] = (unsigned char)len;
        memcpy(tls->alpn + n, p, len);
        n += len;
        p += len;
        if (*p == ',')
            p++;
    }
    tls->alpn_len = n;
    return 0;
}

/* What servers and clients share: TLS 1.2 and up, no renegotiation (the
 * client-initiated kind is off unless allowed in OpenSSL 3), no
 * compression. Record buffers are not released after every record
 * (SSL_MODE_RELEASE_BUFFERS, nginx's choice, costs a malloc and a free per
 * record each way); conn_tls.c gives back those of connections idle for a
 * second instead. */
static SSL_CTX *new_ctx(ritual_tls *tls, const SSL_METHOD *method, ritual_error *err)
{
    SSL_CTX *ctx = SSL_CTX_new(method);
    if (!ctx) {
        ritual_error_set(err, -ENOMEM, "tls: SSL_CTX_new: %s", openssl_reason());
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_app_data(ctx, tls);
    return ctx;
}

static SSL_CTX *new_server_ctx(ritual_tls *tls, ritual_error *err)
{
    SSL_CTX *ctx = new_ctx(tls, TLS_server_method(), err);
    if (!ctx)
        return NULL;
    SSL_CTX_set_max_early_data(ctx, 0);
    if (SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1 ||
        SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) != 1) {
        ritual_error_set(err, -EINVAL, "tls: cipher setup: %s", openssl_reason());
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_dh_auto(ctx, 1);
    /* Resumption is by tickets only: nothing to share between workers but
     * the keys, which the ritual_tls holds. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (tls->no_resume) {
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(ctx, 0);
    } else {
        SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ritual__tls_ticket_cb);
    }
    if (tls->alpn_len)
        SSL_CTX_set_alpn_select_cb(ctx, select_alpn, tls);
    return ctx;
}

static SSL_CTX *new_client_ctx(ritual_tls *tls, ritual_error *err)
{
    SSL_CTX *ctx = new_ctx(tls, TLS_client_method(), err);
    if (!ctx)
        return NULL;
    if (!tls->no_verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        int ok = tls->ca_file ? SSL_CTX_load_verify_locations(ctx, tls->ca_file, NULL)
                              : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
            if (tls->ca_file && check_readable(tls->ca_file, err) < 0) {
                SSL_CTX_free(ctx);
                return NULL;
            }
            ritual_error_set(err, -EINVAL, "tls: %s: no CA certificates (%s)",
                             tls->ca_file ? tls->ca_file : "system store", openssl_reason());
            SSL_CTX_free(ctx);
            return NULL;
        }
    }
    if (tls->alpn_len && SSL_CTX_set_alpn_protos(ctx, tls->alpn, (unsigned)tls->alpn_len) != 0) {
        ritual_error_set(err, -ENOMEM, "tls: ALPN: %s", openssl_reason());
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (!tls->no_resume) {
        /* Sessions arrive after the handshake in TLS 1.3: kept by callback,
         * not in OpenSSL's cache. */
        SSL_CTX_set_session_cache_mode(ctx,
                                       SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx, ritual__tls_session_saved);
    }
    return ctx;
}

static void tls_put(ritual_tls *tls);

static void gen_free(struct tls_gen *gen)
{
    for (size_t i = 0; i < gen->count; i++)
        SSL_CTX_free(gen->ctx[i]);
    ritual_tls *tls = gen->tls;
    free(gen);
    tls_put(tls);
}

/* Loads every certificate file into a new generation. */
static struct tls_gen *gen_build(ritual_tls *tls, const struct tls_cert_files *certs, size_t count,
                                 ritual_error *err)
{
    size_t n = tls->server ? count : 1;
    struct tls_gen *gen = calloc(1, sizeof *gen + n * sizeof gen->ctx[0]);
    if (!gen) {
        ritual_error_set(err, -ENOMEM, "tls");
        return NULL;
    }
    atomic_init(&gen->refs, 1);
    gen->tls = tls;
    atomic_fetch_add(&tls->refs, 1);
    for (size_t i = 0; i < n; i++) {
        SSL_CTX *ctx = tls->server ? new_server_ctx(tls, err) : new_client_ctx(tls, err);
        if (!ctx || (tls->server && load_cert(ctx, &certs[i], err) < 0)) {
            SSL_CTX_free(ctx);
            gen_free(gen);
            return NULL;
        }
        gen->ctx[gen->count++] = ctx;
    }
    if (tls->server)
        SSL_CTX_set_tlsext_servername_callback(gen->ctx[0], select_cert);
    if (tls->server)
        SSL_CTX_set_tlsext_servername_arg(gen->ctx[0], gen);
    return gen;
}

struct tls_gen *ritual__tls_gen_get(ritual_tls *tls)
{
    pthread_mutex_lock(&tls->lock);
    struct tls_gen *gen = tls->gen; /* NULL once every user let go */
    if (gen)
        atomic_fetch_add(&gen->refs, 1);
    pthread_mutex_unlock(&tls->lock);
    return gen;
}

void ritual__tls_gen_put(struct tls_gen *gen)
{
    if (gen && atomic_fetch_sub(&gen->refs, 1) == 1)
        gen_free(gen);
}

static ritual_tls *tls_new(const ritual_tls_options *o, bool server, ritual_error *err)
{
    ritual_tls *tls = calloc(1, sizeof *tls);
    if (!tls) {
        ritual_error_set(err, -ENOMEM, "tls");
        return NULL;
    }
    atomic_init(&tls->refs, 1);
    atomic_init(&tls->users, 1);
    tls->server = server;
    tls->no_verify = o->no_verify != 0;
    tls->no_resume = o->no_resume != 0;
    tls->handshake_timeout_ms =
        o->handshake_timeout_ms ? o->handshake_timeout_ms : DEFAULT_HANDSHAKE_TIMEOUT_MS;
    pthread_mutex_init(&tls->lock, NULL);
    tls->bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ritual");
    if (!tls->bio_method || (o->ca_file && !(tls->ca_file = strdup(o->ca_file)))) {
        ritual_error_set(err, -ENOMEM, "tls");
        ritual_tls_free(tls);
        return NULL;
    }
    ritual__tls_bio_method_init(tls->bio_method);
    if (o->alpn && parse_alpn(tls, o->alpn, err) < 0) {
        ritual_tls_free(tls);
        return NULL;
    }
    if (server)
        ritual__tls_tickets_init(tls,
                                 o->ticket_rotate_s ? o->ticket_rotate_s : DEFAULT_TICKET_ROTATE_S);
    return tls;
}

ritual_tls *ritual_tls_server_new(const ritual_tls_options *options, ritual_error *err)
{
    if (!options || !options->cert_file || !options->key_file) {
        ritual_error_set(err, -EINVAL, "tls: a server needs a certificate and its key");
        return NULL;
    }
    ritual_tls *tls = tls_new(options, true, err);
    if (tls && ritual_tls_add_cert(tls, options->cert_file, options->key_file, err) < 0) {
        ritual_tls_free(tls);
        return NULL;
    }
    return tls;
}

int ritual_tls_add_cert(ritual_tls *tls, const char *cert_file, const char *key_file,
                        ritual_error *err)
{
    if (!tls->server || !cert_file || !key_file)
        return ritual_error_set(err, -EINVAL, "tls: a certificate needs a server and a key");
    pthread_mutex_lock(&tls->lock);
    size_t n = tls->cert_count;
    struct tls_cert_files *certs = malloc((n + 1) * sizeof *certs);
    char *cert = strdup(cert_file), *key = strdup(key_file);
    int rc = (certs && cert && key) ? 0 : ritual_error_set(err, -ENOMEM, "tls");
    struct tls_gen *gen = NULL;
    if (rc == 0) {
        if (n > 0) /* tls->certs is NULL before the first */
            memcpy(certs, tls->certs, n * sizeof *certs);
        certs[n] = (struct tls_cert_files){cert, key};
        gen = gen_build(tls, certs, n + 1, err);
        rc = gen ? 0 : err ? err->code : -EINVAL;
    }
    struct tls_gen *old = NULL;
    if (rc == 0) {
        free(tls->certs);
        tls->certs = certs;
        tls->cert_count = n + 1;
        old = tls->gen;
        tls->gen = gen;
    } else {
        free(certs);
        free(cert);
        free(key);
    }
    pthread_mutex_unlock(&tls->lock);
    ritual__tls_gen_put(old);
    return rc;
}

ritual_tls *ritual_tls_client_new(const ritual_tls_options *options, ritual_error *err)
{
    ritual_tls_options none;
    memset(&none, 0, sizeof none);
    ritual_tls *tls = tls_new(options ? options : &none, false, err);
    if (!tls)
        return NULL;
    tls->gen = gen_build(tls, NULL, 0, err);
    if (!tls->gen) {
        ritual_tls_free(tls);
        return NULL;
    }
    return tls;
}

int ritual_tls_reload(ritual_tls *tls, ritual_error *err)
{
    if (!tls->server)
        return 0;
    /* The file list only grows under the lock, and only by add_cert: a
     * copy of it taken now is what this reload loads. */
    pthread_mutex_lock(&tls->lock);
    size_t n = tls->cert_count;
    struct tls_cert_files *certs = malloc(n * sizeof *certs);
    if (certs)
        memcpy(certs, tls->certs, n * sizeof *certs);
    pthread_mutex_unlock(&tls->lock);
    if (!certs)
        return ritual_error_set(err, -ENOMEM, "tls: reload");
    struct tls_gen *gen = gen_build(tls, certs, n, err);
    free(certs);
    if (!gen)
        return err ? err->code : -EINVAL;
    pthread_mutex_lock(&tls->lock);
    struct tls_gen *old = tls->gen;
    tls->gen = gen;
    pthread_mutex_unlock(&tls->lock);
    ritual__tls_gen_put(old);
    return 0;
}

/* The memory goes with the last reference: the users' (all of them count
 * as one) and one per generation. */
static void tls_put(ritual_tls *tls)
{
    if (atomic_fetch_sub(&tls->refs, 1) != 1)
        return;
    for (size_t i = 0; i < tls->cert_count; i++) {
        free(tls->certs[i].cert);
        free(tls->certs[i].key);
    }
    free(tls->certs);
    free(tls->ca_file);
    ritual__tls_sessions_clear(tls);
    ritual__tls_tickets_clear(tls);
    BIO_meth_free(tls->bio_method);
    pthread_mutex_destroy(&tls->lock);
    free(tls);
}

void ritual__tls_use(ritual_tls *tls)
{
    atomic_fetch_add(&tls->users, 1);
}

void ritual_tls_free(ritual_tls *tls)
{
    if (!tls || atomic_fetch_sub(&tls->users, 1) != 1)
        return;
    /* No listener or user left to start a handshake: the current
     * generation goes once the connections using it have. */
    pthread_mutex_lock(&tls->lock);
    struct tls_gen *gen = tls->gen;
    tls->gen = NULL;
    pthread_mutex_unlock(&tls->lock);
    ritual__tls_gen_put(gen);
    tls_put(tls);
}

int ritual_tls_kernel_available(void)
{
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "r");
    if (!f)
        return 0;
    char line[256];
    int found = 0;
    if (fgets(line, sizeof line, f)) {
        char *save = NULL;
        for (char *tok = strtok_r(line, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save))
            found |= strcmp(tok, "tls") == 0;
    }
    fclose(f);
    return found;
}
