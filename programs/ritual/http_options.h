/* http_options.h - the command line of `ritual http`: every option, read
 * and checked before anything is opened. */
#ifndef RITUAL_HTTP_OPTIONS_H
#define RITUAL_HTTP_OPTIONS_H

#include "cli.h"
#include "http_app.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_RULES_MAX 64

struct http_cli {
    struct cli_listen listen;
    const char *metrics_listen; /* NULL: no metrics */
    const char *root;
    const char *index;
    const char *mime;
    const char *access_log;
    bool access_log_json;
    bool autoindex;
    bool allow_dotfiles;
    const char *fallback;
    struct header_rule cache_rules[HTTP_RULES_MAX];
    size_t ncache_rules;
    char headers[8192]; /* --header lines, each ending in CRLF */
    size_t headers_len;
    struct error_page error_pages[HTTP_RULES_MAX];
    size_t nerror_pages;
    struct file_cache_options cache;
    struct cli_server common;
    ritual_http_options http;
};

/* Reads argv into cfg (its defaults set by the caller). Returns 0, -1 after
 * --help (printed: exit 0), or EXIT_USAGE after printing the error. */
int http_parse_args(int argc, char **argv, struct http_cli *cfg);

#endif
