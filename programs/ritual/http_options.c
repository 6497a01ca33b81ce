/* http_options.c - see http_options.h. */
#include "http_options.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char http_usage[] =
    "Usage: ritual http --root DIR [options]\n"
    "\n"
    "Serve the files under DIR over HTTP/1.1 (GET and HEAD). Request bodies are\n"
    "read and dropped; one over 1 MiB is answered 413 and the connection closed.\n"
    "\n"
    "Options:\n"
    "  --listen ADDRESS            where to listen (default 127.0.0.1:8080); repeat\n"
    "                              for more (up to 16): HOST:PORT (HOST an IPv4\n"
    "                              address, [IPv6], localhost, or * for all; PORT 0\n"
    "                              picks a free one), unix:/PATH (a socket file; a\n"
    "                              stale one is replaced), unix:@NAME (abstract),\n"
    "                              fd:N (an inherited socket), systemd:NAME (socket\n"
    "                              activation)\n"
    "  --socket-mode MODE          a unix:/PATH socket file's permissions, in octal\n"
    "                              (e.g. 0660; default 0777 less the umask)\n"
    "  --socket-owner USER[:GROUP] a unix:/PATH socket file's owner (names or\n"
    "                              numbers)\n"
    "  --user NAME[:GROUP]         once listening and every file is open (root, log,\n"
    "                              keys, --mime), run as this user (and its group,\n"
    "                              or GROUP); root only; what SIGHUP reopens must\n"
    "                              then be readable (writable) by that user\n"
    "  --root DIR                  the document root (required); nothing outside it\n"
    "                              is reachable, by any path, escape or symlink\n"
    "  --index NAME                file served for a directory (default index.html)\n"
    "  --autoindex                 list directories that have no index file\n"
    "                              (default: 403 Forbidden)\n"
    "  --allow-dotfiles            serve names that start with a dot (/.git/config,\n"
    "                              /.env); by default they are 404 Not Found, except\n"
    "                              under /.well-known/\n"
    "  --fallback PATH             serve PATH (e.g. /index.html) for a path that does\n"
    "                              not exist, with 200: a single-page app's routes\n"
    "  --error-page STATUS=PATH    answer STATUS with the file at PATH (e.g.\n"
    "                              404=/404.html), keeping the status; STATUS is one\n"
    "                              the file server answers: 400, 403, 404, 405, 412,\n"
    "                              414, 416, 500 or 503 (the HTTP layer's own 400,\n"
    "                              408, 413, 431, ... keep their text); a PATH that is\n"
    "                              not a readable file is warned of at start, and the\n"
    "                              short text is sent until it is one; repeatable\n"
    "  --header 'NAME: VALUE'      add this header to every answer, errors included;\n"
    "                              repeatable; spaces around VALUE are dropped, an\n"
    "                              empty one is refused; X-Content-Type-Options:\n"
    "                              nosniff is always sent unless a --header names it;\n"
    "                              a Cache-Control here is sent besides any\n"
    "                              --cache-control line (two lines, as nginx's\n"
    "                              add_header)\n"
    "  --cache-control GLOB=VALUE  Cache-Control: VALUE on files matching GLOB (e.g.\n"
    "                              '*.js=max-age=31536000, immutable'); a GLOB with no\n"
    "                              '/' matches the file name, else the whole path; the\n"
    "                              first match wins; repeatable\n"
    "  --mime FILE                 more types from a mime.types file\n"
    "                              (/etc/mime.types); read again on SIGHUP\n"
    "  --precompressed LIST        serve FILE.br, FILE.zst or FILE.gz beside FILE to\n"
    "                              clients whose Accept-Encoding takes br, zstd or\n"
    "                              gzip; LIST orders them for ties (default\n"
    "                              br,zstd,gzip; off or an empty LIST: never)\n"
    "  --open-file-cache-valid SECONDS\n"
    "                              how long an open file is served before it is\n"
    "                              checked again on disk (default 1)\n"
    "  --open-file-cache-inactive SECONDS\n"
    "                              close an open file not asked for this long\n"
    "                              (default 60); all workers together keep at most\n"
    "                              a quarter of RLIMIT_NOFILE (each up to 1024)\n"
    "  --access-log FILE|-         log each request to FILE, or - for stdout\n"
    "                              (default: no access log)\n"
    "  --access-log-format FORMAT  combined (default) or json: one JSON object per\n"
    "                              line with time, remote_addr, host, request,\n"
    "                              method, uri, protocol, status, body_bytes_sent,\n"
    "                              referer and user_agent\n"
    "  --workers N                 loops on threads of their own (default: the number\n"
    "                              of online CPUs)\n"
    "  --backend NAME              auto, io_uring, epoll or poll (default auto:\n"
    "                              io_uring where the kernel allows it, else epoll,\n"
    "                              unless the environment variable RITUAL_BACKEND\n"
    "                              names one)\n"
    "  --header-timeout SECONDS    a request head must arrive within this (default 10)\n"
    "  --keepalive-timeout SECONDS close idle keep-alive connections (default 75)\n"
    "  --body-timeout SECONDS      longest wait between body reads (default 60)\n"
    "  --send-timeout SECONDS      close a client that reads nothing for this long\n"
    "                              (default 60)\n"
    "  --max-requests N            requests per connection, then close (default 10000)\n"
    "  --max-conns N               stop accepting at N open connections (default: no\n"
    "                              limit)\n"
    "  --drain-timeout SECONDS     on SIGTERM/SIGINT, let responses finish for up to\n"
    "                              this long (default 10); a second signal stops at once\n"
    "  --pin                       pin worker i to CPU i\n"
    "  --proxy-protocol CIDRS      expect a PROXY protocol header (HAProxy's, v1 or v2)\n"
    "                              from these comma-separated sources, addresses or\n"
    "                              CIDRs (127.0.0.1,10.0.0.0/8); connections from\n"
    "                              elsewhere, or with a bad header, are closed; the\n"
    "                              header's client address is the one logged\n"
    "  --proxy-timeout SECONDS     close a connection whose PROXY header is not whole\n"
    "                              this long after it connected (default 5)\n"
    "  --log-level LEVEL           error, warn, info or debug (default info)\n"
    "  --tls-cert FILE             serve HTTPS with this PEM certificate chain; repeat\n"
    "                              with --tls-key for more, chosen by SNI (the first\n"
    "                              is the default); reloaded on SIGHUP\n"
    "  --tls-key FILE              the PEM private key of the --tls-cert before it\n"
    "  --metrics-listen HOST:PORT  serve Prometheus metrics at /metrics on this address:\n"
    "                              connections, bytes, closes by reason, responses by\n"
    "                              class, a latency histogram, per worker and summed;\n"
    "                              answered by the main thread, never by a busy worker\n"
    "  -h, --help                  show this help\n"
    "\n"
    "Prints 'listening on ADDRESS' on stdout for each address once ready (then\n"
    "'metrics on ADDRESS' with --metrics-listen). Exit status: 0 after a clean\n"
    "shutdown, 1 on a runtime error, 2 on a usage error (a --user or\n"
    "--socket-owner that does not exist included).\n"
    "\n"
    "Signals: SIGTERM, SIGINT and SIGQUIT drain (a second SIGTERM or SIGINT stops at\n"
    "once); SIGHUP and SIGUSR1 reopen the access log file (for logrotate), SIGHUP\n"
    "also reloads the TLS certificates and the --mime file (what fails to load is\n"
    "logged, and the old stays in use); SIGUSR2 starts the executable anew on the\n"
    "same sockets and drains once it is ready (binary upgrade); SIGALRM is logged\n"
    "and ignored. Under systemd (Type=notify) it reports READY=1, RELOADING=1,\n"
    "STOPPING=1 and, with WatchdogSec=, WATCHDOG=1.\n";

enum {
    OPT_METRICS_LISTEN = 256,
    OPT_ROOT,
    OPT_INDEX,
    OPT_AUTOINDEX,
    OPT_MIME,
    OPT_ACCESS_LOG,
    OPT_ACCESS_LOG_FORMAT,
    OPT_HEADER_TIMEOUT,
    OPT_KEEPALIVE_TIMEOUT,
    OPT_BODY_TIMEOUT,
    OPT_SEND_TIMEOUT,
    OPT_MAX_REQUESTS,
    OPT_MAX_CONNS,
    OPT_ALLOW_DOTFILES,
    OPT_FALLBACK,
    OPT_ERROR_PAGE,
    OPT_CACHE_CONTROL,
    OPT_HEADER,
    OPT_PRECOMPRESSED,
    OPT_CACHE_VALID,
    OPT_CACHE_INACTIVE,
};

static int parse_timeout(const char *name, const char *text, uint64_t *ms)
{
    if (cli_parse_seconds(text, ms) < 0 || *ms == 0)
        return cli_usage_error("http", "%s: '%s' is not a positive number of seconds", name, text);
    return 0;
}

/* Whether `text` holds a control character, DEL included; HTAB passes
 * when `tab_ok` (a header value may hold one, RFC 9110 5.5). */
static bool has_control(const char *text, bool tab_ok)
{
    for (const char *p = text; *p; p++)
        if (((unsigned char)*p < 0x20 && !(tab_ok && *p == '\t')) || *p == 0x7f)
            return true;
    return false;
}

/* A path under the root as an option gives it: absolute, no escapes. */
static int parse_site_path(const char *name, const char *text)
{
    char shown[128];
    if (text[0] != '/' || has_control(text, false) || strpbrk(text, "?#%"))
        return cli_usage_error("http", "%s: '%s' is not a path starting with /", name,
                               cli_printable(text, shown, sizeof shown));
    return 0;
}

/* --error-page STATUS=PATH, STATUS one the file handler answers itself:
 * a page for one only the HTTP layer sends (408, 413, 431, ...) could
 * never be used. */
static int parse_error_page(const char *text, struct http_cli *cfg)
{
    char shown[128], list[64];
    size_t at = 0;
    bool known = false;
    char *end;
    long status = strtol(text, &end, 10);
    for (int i = 0; i < FILES_ERROR_STATUSES; i++) {
        known |= files_error_statuses[i] == status;
        at += (size_t)snprintf(list + at, sizeof list - at, "%s%d", i ? ", " : "",
                               files_error_statuses[i]);
    }
    if (end == text || *end != '=' || !known)
        return cli_usage_error("http",
                               "--error-page: '%s' is not STATUS=PATH with a status "
                               "the file server answers (%s)",
                               cli_printable(text, shown, sizeof shown), list);
    if (cfg->nerror_pages == HTTP_RULES_MAX)
        return cli_usage_error("http", "--error-page: more than %d", HTTP_RULES_MAX);
    if (parse_site_path("--error-page", end + 1) != 0)
        return EXIT_USAGE;
    cfg->error_pages[cfg->nerror_pages++] = (struct error_page){(int)status, end + 1};
    return 0;
}

/* --cache-control GLOB=VALUE: the value must be a header value. */
static int parse_cache_control(char *text, struct http_cli *cfg)
{
    char shown[128];
    char *eq = strchr(text, '=');
    if (!eq || eq == text || !eq[1])
        return cli_usage_error("http", "--cache-control: '%s' is not GLOB=VALUE",
                               cli_printable(text, shown, sizeof shown));
    if (has_control(eq + 1, true))
        return cli_usage_error("http", "--cache-control: a control character in '%s'",
                               cli_printable(text, shown, sizeof shown));
    if (cfg->ncache_rules == HTTP_RULES_MAX)
        return cli_usage_error("http", "--cache-control: more than %d", HTTP_RULES_MAX);
    *eq = '\0';
    cfg->cache_rules[cfg->ncache_rules++] = (struct header_rule){text, eq + 1};
    return 0;
}

static int add_header_line(struct http_cli *cfg, const char *name, size_t name_len,
                           const char *value, size_t value_len)
{
    size_t room = sizeof cfg->headers - cfg->headers_len;
    int n = snprintf(cfg->headers + cfg->headers_len, room, "%.*s: %.*s\r\n", (int)name_len, name,
                     (int)value_len, value);
    if (n < 0 || (size_t)n >= room)
        return cli_usage_error("http", "--header: more than %zu bytes of headers in all",
                               sizeof cfg->headers - 64);
    cfg->headers_len += (size_t)n;
    return 0;
}

/* --header 'NAME: VALUE': a token, a colon, a value without control
 * characters (RFC 9110 5.1, 5.5). */
static int parse_header(const char *text, struct http_cli *cfg)
{
    static const char tchar[] = "!#$%&'*+-.^_`|~";
    char shown[128];
    size_t name_len = 0;
    while (text[name_len] && text[name_len] != ':') {
        unsigned char c = (unsigned char)text[name_len];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              strchr(tchar, c)))
            return cli_usage_error("http", "--header: '%s' is not NAME: VALUE",
                                   cli_printable(text, shown, sizeof shown));
        name_len++;
    }
    if (name_len == 0 || text[name_len] != ':')
        return cli_usage_error("http", "--header: '%s' is not NAME: VALUE",
                               cli_printable(text, shown, sizeof shown));
    /* The server writes these itself: a second copy would contradict it,
     * and a second Content-Length or Transfer-Encoding would break the
     * framing of every answer. */
    static const char *const owned[] = {
        "Content-Length",
        "Transfer-Encoding",
        "Connection",
        "Keep-Alive",
        "Upgrade",
        "Trailer",
        "Date",
        "Server",
        "Content-Type",
        "Content-Range",
        "Content-Encoding",
        "ETag",
        "Last-Modified",
        "Accept-Ranges",
        "Location",
        "Allow",
    };
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++)
        if (strlen(owned[i]) == name_len && strncasecmp(text, owned[i], name_len) == 0)
            return cli_usage_error("http", "--header: %s is set by the server itself", owned[i]);
    /* The value without the whitespace around it (RFC 9110 5.5); none
     * left is refused rather than sent empty or dropped unseen. */
    const char *value = text + name_len + 1;
    while (*value == ' ' || *value == '\t')
        value++;
    size_t value_len = strlen(value);
    while (value_len > 0 && (value[value_len - 1] == ' ' || value[value_len - 1] == '\t'))
        value_len--;
    if (value_len == 0)
        return cli_usage_error("http", "--header: %.*s has an empty value", (int)name_len, text);
    if (has_control(value, true))
        return cli_usage_error("http", "--header: a control character in the value of %.*s",
                               (int)name_len, text);
    return add_header_line(cfg, text, name_len, value, value_len);
}

/* The headers every answer carries: the --header lines, and nosniff unless
 * one of them says otherwise (a browser must not guess a script or a page
 * out of a file served as text). */
static int finish_headers(struct http_cli *cfg)
{
    static const char nosniff[] = "X-Content-Type-Options:";
    for (const char *line = cfg->headers; *line; line = strstr(line, "\r\n") + 2)
        if (strncasecmp(line, nosniff, sizeof nosniff - 1) == 0)
            return 0;
    return add_header_line(cfg, nosniff, sizeof nosniff - 2, "nosniff", 7);
}

int http_parse_args(int argc, char **argv, struct http_cli *cfg)
{
    static const struct option options[] = {
        CLI_LISTEN_LONGOPTS,
        CLI_SERVER_LONGOPTS,
        {"metrics-listen", required_argument, NULL, OPT_METRICS_LISTEN},
        {"root", required_argument, NULL, OPT_ROOT},
        {"index", required_argument, NULL, OPT_INDEX},
        {"autoindex", no_argument, NULL, OPT_AUTOINDEX},
        {"mime", required_argument, NULL, OPT_MIME},
        {"access-log", required_argument, NULL, OPT_ACCESS_LOG},
        {"access-log-format", required_argument, NULL, OPT_ACCESS_LOG_FORMAT},
        {"header-timeout", required_argument, NULL, OPT_HEADER_TIMEOUT},
        {"keepalive-timeout", required_argument, NULL, OPT_KEEPALIVE_TIMEOUT},
        {"body-timeout", required_argument, NULL, OPT_BODY_TIMEOUT},
        {"send-timeout", required_argument, NULL, OPT_SEND_TIMEOUT},
        {"max-requests", required_argument, NULL, OPT_MAX_REQUESTS},
        {"max-conns", required_argument, NULL, OPT_MAX_CONNS},
        {"allow-dotfiles", no_argument, NULL, OPT_ALLOW_DOTFILES},
        {"fallback", required_argument, NULL, OPT_FALLBACK},
        {"error-page", required_argument, NULL, OPT_ERROR_PAGE},
        {"cache-control", required_argument, NULL, OPT_CACHE_CONTROL},
        {"header", required_argument, NULL, OPT_HEADER},
        {"precompressed", required_argument, NULL, OPT_PRECOMPRESSED},
        {"open-file-cache-valid", required_argument, NULL, OPT_CACHE_VALID},
        {"open-file-cache-inactive", required_argument, NULL, OPT_CACHE_INACTIVE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    unsigned long n;
    int c, rc = 0;
    opterr = 0;
    while (rc == 0 && (c = cli_getopt(argc, argv, ":h", options)) != -1) {
        switch (c) {
        case CLI_OPT_LISTEN:
        case CLI_OPT_SOCKET_MODE:
        case CLI_OPT_SOCKET_OWNER:
        case CLI_OPT_USER:
            rc = cli_listen_option("http", &cfg->listen, c, optarg);
            break;
        case OPT_METRICS_LISTEN:
            cfg->metrics_listen = optarg;
            break;
        case OPT_ROOT:
            rc = cli_path_option("http", "--root", optarg);
            cfg->root = optarg;
            break;
        case OPT_INDEX:
            if (!optarg[0] || strchr(optarg, '/') || strcmp(optarg, ".") == 0 ||
                strcmp(optarg, "..") == 0)
                return cli_usage_error("http", "--index: '%s' is not a file name", optarg);
            cfg->index = optarg;
            break;
        case OPT_AUTOINDEX:
            cfg->autoindex = true;
            break;
        case OPT_MIME:
            rc = cli_path_option("http", "--mime", optarg);
            cfg->mime = optarg;
            break;
        case OPT_ACCESS_LOG:
            rc = cli_path_option("http", "--access-log", optarg);
            cfg->access_log = optarg;
            break;
        case OPT_ACCESS_LOG_FORMAT:
            if (strcmp(optarg, "combined") != 0 && strcmp(optarg, "json") != 0)
                return cli_usage_error("http", "--access-log-format: '%s' is not combined or json",
                                       optarg);
            cfg->access_log_json = strcmp(optarg, "json") == 0;
            break;
        case OPT_HEADER_TIMEOUT:
            rc = parse_timeout("--header-timeout", optarg, &cfg->http.header_timeout_ms);
            break;
        case OPT_KEEPALIVE_TIMEOUT:
            rc = parse_timeout("--keepalive-timeout", optarg, &cfg->http.keepalive_timeout_ms);
            break;
        case OPT_BODY_TIMEOUT:
            rc = parse_timeout("--body-timeout", optarg, &cfg->http.body_timeout_ms);
            break;
        case OPT_SEND_TIMEOUT:
            rc = parse_timeout("--send-timeout", optarg, &cfg->http.send_timeout_ms);
            break;
        case OPT_MAX_REQUESTS:
            if (cli_parse_uint(optarg, 1u << 30, &n) < 0 || n == 0)
                return cli_usage_error("http", "--max-requests: '%s' is not a positive number",
                                       optarg);
            cfg->http.max_requests = (unsigned)n;
            break;
        case OPT_MAX_CONNS:
            if (cli_parse_uint(optarg, 1u << 30, &n) < 0)
                return cli_usage_error("http", "--max-conns: '%s' is not a number", optarg);
            cfg->http.max_conns = (unsigned)n;
            break;
        case OPT_ALLOW_DOTFILES:
            cfg->allow_dotfiles = true;
            break;
        case OPT_FALLBACK:
            rc = parse_site_path("--fallback", optarg);
            cfg->fallback = optarg;
            break;
        case OPT_ERROR_PAGE:
            rc = parse_error_page(optarg, cfg);
            break;
        case OPT_CACHE_CONTROL:
            rc = parse_cache_control(optarg, cfg);
            break;
        case OPT_HEADER:
            rc = parse_header(optarg, cfg);
            break;
        case OPT_PRECOMPRESSED:
            if (coding_list_parse(optarg, &cfg->cache.precompressed) < 0)
                return cli_usage_error(
                    "http", "--precompressed: '%s' is not a list of br, zstd and gzip, or off",
                    optarg);
            break;
        case OPT_CACHE_VALID:
            if (cli_parse_seconds(optarg, &cfg->cache.valid_ms) < 0)
                return cli_usage_error(
                    "http", "--open-file-cache-valid: '%s' is not a number of seconds", optarg);
            break;
        case OPT_CACHE_INACTIVE:
            rc = parse_timeout("--open-file-cache-inactive", optarg, &cfg->cache.inactive_ms);
            break;
        case 'h':
            fputs(http_usage, stdout);
            return -1;
        default:
            if (!cli_is_server_option(c))
                return cli_getopt_error("http", c, argv, optind);
            rc = cli_server_option("http", &cfg->common, c, optarg);
            break;
        }
    }
    if (rc != 0)
        return rc;
    if (optind < argc)
        return cli_usage_error("http", "unexpected argument '%s'", argv[optind]);
    if (!cfg->root)
        return cli_usage_error("http", "--root DIR is required");
    if (finish_headers(cfg) != 0)
        return EXIT_USAGE;
    cfg->http.proxy_from = cfg->common.proxy_from;
    cfg->http.proxy_timeout_ms = cfg->common.proxy_timeout_ms;
    if (cli_tls_check("http", &cfg->common.tls) != 0)
        return EXIT_USAGE;
    if (cfg->metrics_listen) {
        ritual_error err;
        if (ritual_address_parse(cfg->metrics_listen, NULL, NULL, &err) < 0)
            return cli_usage_error("http", "--metrics-listen: %s", err.message);
    }
    return cli_listen_check("http", &cfg->listen, "127.0.0.1:8080");
}
