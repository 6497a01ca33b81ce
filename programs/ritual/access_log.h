/* access_log.h - the line formats of access_log.c beyond the combined one,
 * a file each. Each writes one whole line (ending in '\n') from p, at most
 * ACCESS_LOG_LINE_MAX bytes, and returns the new end; fields too long for
 * the line are cut short, never the line's syntax. */
#ifndef RITUAL_ACCESS_LOG_H
#define RITUAL_ACCESS_LOG_H

#include "ritual_http.h"

#include <stddef.h>

/* The room a line may take, whatever its format. */
#define ACCESS_LOG_LINE_MAX 8192

/* What every format shows besides the entry: the client's address without
 * its port, and the time as the format writes it. */
struct access_log_fields {
    const char *addr;
    size_t addr_len;
    const char *stamp; /* at most 31 bytes */
    size_t stamp_len;
};

/* access_log_json.c: one JSON object per line (see there). The stamp is
 * ISO 8601, "2026-11-26T13:29:55+00:00". */
char *access_log_json_line(char *p, const ritual_http_log_entry *e,
                           const struct access_log_fields *f);

#endif
