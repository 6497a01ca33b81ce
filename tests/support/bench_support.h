/* bench_support.h - running `ritual bench` from a test and reading its JSON. */
#ifndef RITUAL_BENCH_SUPPORT_H
#define RITUAL_BENCH_SUPPORT_H

#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The number after "key": in a one-line JSON object (keys are unique in
 * ritual bench's output); fails the test if the key is missing. */
static inline double json_number(const char *json, const char *key)
{
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":", key);
    const char *at = strstr(json, pattern);
    if (!at)
        FAIL("no \"%s\" in %s", key, json);
    char *end;
    double v = strtod(at + strlen(pattern), &end);
    if (end == at + strlen(pattern))
        FAIL("\"%s\" is not a number in %s", key, json);
    return v;
}

/* Runs `ritual bench echo --connect 127.0.0.1:PORT --json EXTRA...`. */
static inline void run_bench(const char *ritual, int port, const char *const extra[],
                             int timeout_ms, struct cmd_result *r)
{
    char target[32];
    snprintf(target, sizeof target, "127.0.0.1:%d", port);
    const char *argv[32] = {ritual, "bench", "echo", "--connect", target, "--json"};
    int n = 6;
    for (int i = 0; extra && extra[i] && n < 31; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    run_command(argv, timeout_ms, r);
}

#endif
