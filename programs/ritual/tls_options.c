/* tls_options.c - the TLS options `ritual echo` and `ritual http` share:
 * --tls-cert FILE --tls-key FILE, repeated for more certificates (chosen
 * by SNI; the first is the default). */
#include "cli.h"

#include "ritual_tls.h"

int cli_tls_option(const char *cmd, struct cli_tls *t, bool is_cert, const char *file)
{
    int *n = is_cert ? &t->ncert : &t->nkey;
    if (cli_path_option(cmd, is_cert ? "--tls-cert" : "--tls-key", file) != 0)
        return EXIT_USAGE;
    if (*n == CLI_TLS_MAX)
        return cli_usage_error(cmd, "at most %d certificates", CLI_TLS_MAX);
    (is_cert ? t->cert : t->key)[(*n)++] = file;
    return 0;
}

int cli_tls_check(const char *cmd, const struct cli_tls *t)
{
    if (t->ncert != t->nkey)
        return cli_usage_error(cmd,
                               "each --tls-cert needs its --tls-key (%d certificates, %d keys)",
                               t->ncert, t->nkey);
    return 0;
}

ritual_tls *cli_tls_load(const struct cli_tls *t, const char *alpn, uint64_t handshake_ms, int *rc)
{
    *rc = 0;
    if (t->ncert == 0)
        return NULL;
    ritual_tls_options o = {.cert_file = t->cert[0],
                            .key_file = t->key[0],
                            .alpn = alpn,
                            .handshake_timeout_ms = handshake_ms};
    ritual_error err;
    ritual_tls *tls = ritual_tls_server_new(&o, &err);
    for (int i = 1; tls && i < t->ncert; i++) {
        if (ritual_tls_add_cert(tls, t->cert[i], t->key[i], &err) < 0) {
            ritual_tls_free(tls);
            tls = NULL;
        }
    }
    if (!tls)
        *rc = cli_runtime_error("%s", err.message);
    return tls;
}

void cli_tls_log(ritual_server *server, const struct cli_tls *t)
{
    if (t->ncert == 0)
        return;
    /* Files over TLS are read and encrypted here; kernel TLS (sendfile of
     * encrypted records) is not used yet even where the kernel has it. */
    ritual_log(ritual_server_loop(server, 0), RITUAL_LOG_INFO,
               "TLS with %d certificate%s; files encrypted in user space (%s)", t->ncert,
               t->ncert == 1 ? "" : "s",
               ritual_tls_kernel_available() ? "kernel TLS present, not used yet"
                                             : "this kernel has no kernel TLS");
}
