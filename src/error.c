/* error.c - error codes, error messages and the loop's log. */
#include "loop.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *ritual_strerror(int code)
{
    if (code == 0)
        return "Success";
    /* strerrordesc_np is thread-safe and never formats into a shared buffer. */
    const char *desc = strerrordesc_np(code < 0 ? -code : code);
    return desc ? desc : "Unknown error";
}

int ritual_error_set(ritual_error *err, int code, const char *fmt, ...)
{
    if (!err)
        return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof err->message)
        snprintf(err->message + n, sizeof err->message - (size_t)n, ": %s", ritual_strerror(code));
    return code;
}

static const char *level_name(ritual_log_level level)
{
    switch (level) {
    case RITUAL_LOG_ERROR:
        return "error";
    case RITUAL_LOG_WARN:
        return "warn";
    case RITUAL_LOG_INFO:
        return "info";
    case RITUAL_LOG_DEBUG:
        return "debug";
    default:
        return "log";
    }
}

void ritual_log(ritual_loop *loop, ritual_log_level level, const char *fmt, ...)
{
    if (!ritual__log_enabled(loop, level))
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (loop->log_fn) {
        loop->log_fn(loop->log_data, level, line);
        return;
    }
    /* One fprintf per line: stderr is unbuffered, so lines from several
     * threads do not interleave mid-line. */
    fprintf(stderr, "ritual: %s: %s\n", level_name(level), line);
}
