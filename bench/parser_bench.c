/* parser_bench.c - the cost of ritual_http_parse_request on two heads: the
 * 47-byte request a load generator sends, and a 400-byte browser-style
 * request with 10 headers. Prints ns per parse; run it under
 * `valgrind --tool=callgrind` and divide by the iteration count for
 * instructions per parse (repeatable where nanoseconds are not).
 *
 *   parser_bench [iterations [small|browser]]   (default 10000000, both)
 */
#include "ritual_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char small[] = "GET /4k.bin HTTP/1.1\r\nHost: 127.0.0.1:39487\r\n\r\n";

static const char browser[] =
    "GET /static/css/site.min.css?v=20240611 HTTP/1.1\r\n"
    "Host: www.example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0\r\n"
    "Accept: text/css,*/*;q=0.1\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br, zstd\r\n"
    "Referer: https://www.example.com/\r\n"
    "Connection: keep-alive\r\n"
    "Cookie: session=4f2a9c1e7b; theme=dark\r\n"
    "Sec-Fetch-Dest: style\r\n"
    "If-None-Match: \"5f3e-61b2c9a8\"\r\n"
    "\r\n";

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void run(const char *name, const char *req, size_t len, long iterations)
{
    ritual_http_header h[100];
    ritual_http_request r;
    int rc = 0;
    double t0 = now_ns();
    for (long i = 0; i < iterations; i++) {
        r.headers = h;
        r.num_headers = 100;
        rc = ritual_http_parse_request(req, len, &r, NULL, 0);
        __asm__ volatile("" : : "r"(&r), "r"(h) : "memory"); /* keep every parse */
    }
    double t1 = now_ns();
    if (rc != (int)len) {
        fprintf(stderr, "%s: parse returned %d, expected %zu\n", name, rc, len);
        exit(1);
    }
    printf("%-8s %4zu bytes %2zu headers: %6.1f ns/parse\n", name, len, r.num_headers,
           (t1 - t0) / (double)iterations);
}

int main(int argc, char **argv)
{
    long iterations = argc > 1 ? atol(argv[1]) : 10000000;
    const char *only = argc > 2 ? argv[2] : NULL;
    if (!only || strcmp(only, "small") == 0)
        run("small", small, sizeof small - 1, iterations);
    if (!only || strcmp(only, "browser") == 0)
        run("browser", browser, sizeof browser - 1, iterations);
    return 0;
}
