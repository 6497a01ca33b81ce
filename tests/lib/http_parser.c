/* The HTTP/1.1 parser layer: request and response heads, the chunked decoder
 * and dates. Every input, valid or not, is parsed whole and then at every
 * split offset (a buffer growing byte by byte, and two pieces), always
 * placed so that it ends at a PROT_NONE page: a read past the end faults.
 * A prefix must say PARTIAL, or the very verdict the whole input gets.
 *
 * Cases: request_heads, response_heads, chunked_bodies (each its table),
 * dates, header_and_reason_helpers, and parse_throughput (a measurement,
 * reported, not asserted). The fixture maps the guard page and builds the
 * long inputs the tables point to. */
#include "ritual_http.h"
#include "support.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ guard page */

#define GUARD_SPACE (64 * 1024)
static char *guard_end; /* the first byte of the PROT_NONE page */
static char *guard_map;
static size_t guard_map_size;

static void guard_init(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t space = (GUARD_SPACE + page - 1) / page * page;
    char *map =
        mmap(NULL, space + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT(map != MAP_FAILED);
    SYSCHECK(mprotect(map + space, page, PROT_NONE));
    guard_end = map + space;
    guard_map = map;
    guard_map_size = space + page;
}

static void guard_free(void)
{
    SYSCHECK(munmap(guard_map, guard_map_size));
}

/* Copies s[0..n) so that it ends exactly at the guard page. */
static const char *at_guard(const char *s, size_t n)
{
    ASSERT(n <= GUARD_SPACE);
    char *dst = guard_end - n;
    memmove(dst, s, n);
    return dst;
}

/* --------------------------------------------------------------- requests */

struct req_case {
    const char *name;
    const char *in;
    size_t len; /* 0: strlen(in) */
    int want;   /* 0: the whole input is one head; > 0 its length; < 0 status or PARTIAL */
    const char *method, *target;
    int minor;
    int body;
    uint64_t cl;
    unsigned flags;
    const char *headers; /* "name=value\n" each; NULL: not checked */
    size_t slots;        /* 0: 16 */
    size_t max_line, max_head;
    size_t error_at; /* the error shows first at exactly this prefix length */
};

/* A valid request: what it must parse to (the rest as designated fields). */
#define GOOD(name_, in_, method_, target_, minor_, body_, cl_, flags_, ...)                        \
    {                                                                                              \
        .name = (name_), .in = (in_), .method = (method_), .target = (target_), .minor = (minor_), \
        .body = (body_), .cl = (cl_), .flags = (flags_), __VA_ARGS__                               \
    }
/* An invalid one and the status it must get. */
#define BAD(name_, in_, status_, ...)                                                              \
    {                                                                                              \
        .name = (name_), .in = (in_), .want = (status_), __VA_ARGS__                               \
    }
#define BAD_BIN(name_, in_, status_, ...)                                                          \
    {                                                                                              \
        .name = (name_), .in = (in_), .len = sizeof(in_) - 1, .want = (status_), __VA_ARGS__       \
    }
#define H11 "Host: example.com\r\n"
#define HOST RITUAL_HTTP_HAS_HOST
#define LEN RITUAL_HTTP_BODY_LENGTH
#define CHUNKED RITUAL_HTTP_BODY_CHUNKED

#define BROWSER                                                                                    \
    "GET /static/app.js?v=42 HTTP/1.1\r\n"                                                         \
    "Host: www.example.com\r\n"                                                                    \
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"       \
    "Accept: */*\r\n"                                                                              \
    "Accept-Language: en-US,en;q=0.5\r\n"                                                          \
    "Accept-Encoding: gzip, deflate, br\r\n"                                                       \
    "Referer: https://www.example.com/\r\n"                                                        \
    "Connection: keep-alive\r\n"                                                                   \
    "Cookie: session=0123456789abcdef\r\n"                                                         \
    "\r\n"

#define PIPE1 "GET /a HTTP/1.1\r\n" H11 "\r\n"
#define POST_CL "POST /f HTTP/1.1\r\n" H11 "Content-Length: 5\r\n\r\n"
#define POST_TE "POST /u HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n"

/* error_at: the length of the prefix that holds the offending byte. */
#define AT(prefix) .error_at = sizeof(prefix)

/* A request line or a head of a given size, built at start-up. */
static char long_target[9000 + 64];
static char many_crlf[80 + 64];
static char long_head[40000 + 64];

static const struct req_case req_cases[] = {
    /* ---- valid */
    GOOD("simple GET", "GET / HTTP/1.1\r\n" H11 "\r\n", "GET", "/", 1, 0, 0, HOST,
         .headers = "Host=example.com\n"),
    GOOD("HTTP/1.0, no headers", "GET /index.html HTTP/1.0\r\n\r\n", "GET", "/index.html", 0, 0, 0,
         0, .headers = ""),
    GOOD("browser", BROWSER, "GET", "/static/app.js?v=42", 1, 0, 0,
         HOST | RITUAL_HTTP_CONN_KEEP_ALIVE,
         .headers = "Host=www.example.com\n"
                    "User-Agent=Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 "
                    "Firefox/120.0\n"
                    "Accept=*/*\n"
                    "Accept-Language=en-US,en;q=0.5\n"
                    "Accept-Encoding=gzip, deflate, br\n"
                    "Referer=https://www.example.com/\n"
                    "Connection=keep-alive\n"
                    "Cookie=session=0123456789abcdef\n"),
    GOOD("leading empty lines", "\r\n\r\nGET / HTTP/1.1\r\n" H11 "\r\n", "GET", "/", 1, 0, 0, HOST),
    GOOD("pipelined: the first only", PIPE1 "GET /b HTTP/1.1\r\n" H11 "\r\n", "GET", "/a", 1, 0, 0,
         HOST, .want = sizeof(PIPE1) - 1),
    GOOD("Content-Length with the body behind", POST_CL "hello", "POST", "/f", 1, LEN, 5, HOST,
         .want = sizeof(POST_CL) - 1),
    GOOD("chunked POST", POST_TE "5\r\nhello\r\n0\r\n\r\n", "POST", "/u", 1, CHUNKED, 0, HOST,
         .want = sizeof(POST_TE) - 1),
    GOOD("TE case-insensitive, OWS",
         "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding:\t ChUnKeD \t\r\n\r\n", "POST", "/", 1,
         CHUNKED, 0, HOST),
    GOOD("TE list with empty elements",
         "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: , ,chunked,\r\n\r\n", "POST", "/", 1,
         CHUNKED, 0, HOST),
    GOOD("TE over two lines",
         "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding:\r\nTransfer-Encoding: chunked\r\n\r\n",
         "POST", "/", 1, CHUNKED, 0, HOST),
    GOOD("Connection: close", "GET / HTTP/1.1\r\n" H11 "Connection: close\r\n\r\n", "GET", "/", 1,
         0, 0, HOST | RITUAL_HTTP_CONN_CLOSE),
    GOOD("Connection list over lines",
         "GET / HTTP/1.0\r\nConnection: Upgrade, KEEP-ALIVE\r\nconnection: foo ,Close\r\n\r\n",
         "GET", "/", 0, 0, 0, RITUAL_HTTP_CONN_CLOSE | RITUAL_HTTP_CONN_KEEP_ALIVE),
    GOOD("Expect: 100-continue",
         "PUT /x HTTP/1.1\r\n" H11 "Expect: 100-Continue\r\nContent-Length: 10\r\n\r\n", "PUT",
         "/x", 1, LEN, 10, HOST | RITUAL_HTTP_EXPECT_CONTINUE),
    GOOD("Expect ignored in 1.0",
         "PUT /x HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", "PUT", "/x", 0,
         LEN, 1, 0),
    GOOD("HTTP/1.7 is 1.1", "GET / HTTP/1.7\r\n" H11 "\r\n", "GET", "/", 1, 0, 0, HOST),
    GOOD("absolute-form", "GET http://example.com/x?y HTTP/1.1\r\n" H11 "\r\n", "GET",
         "http://example.com/x?y", 1, 0, 0, HOST),
    GOOD("absolute-form with a port", "GET http://h:8080/p HTTP/1.1\r\n" H11 "\r\n", "GET",
         "http://h:8080/p", 1, 0, 0, HOST),
    GOOD("absolute-form IPv6 and port", "GET http://[::1]:8080/p HTTP/1.1\r\n" H11 "\r\n", "GET",
         "http://[::1]:8080/p", 1, 0, 0, HOST),
    GOOD("absolute-form HTTPS, any case", "GET HtTpS://H/p HTTP/1.1\r\n" H11 "\r\n", "GET",
         "HtTpS://H/p", 1, 0, 0, HOST),
    GOOD("absolute-form without a path", "GET http://h HTTP/1.1\r\n" H11 "\r\n", "GET", "http://h",
         1, 0, 0, HOST),
    GOOD("absolute-form, query without a path", "GET http://h:80?q HTTP/1.1\r\n" H11 "\r\n", "GET",
         "http://h:80?q", 1, 0, 0, HOST),
    GOOD("absolute-form, empty port", "GET http://h:/p HTTP/1.1\r\n" H11 "\r\n", "GET",
         "http://h:/p", 1, 0, 0, HOST),
    GOOD("absolute-form, IPv4 host", "GET http://127.0.0.1/p HTTP/1.1\r\n" H11 "\r\n", "GET",
         "http://127.0.0.1/p", 1, 0, 0, HOST),
    GOOD("absolute-form scheme chars", "GET coap+tcp.v-2://h/ HTTP/1.1\r\n" H11 "\r\n", "GET",
         "coap+tcp.v-2://h/", 1, 0, 0, HOST),
    GOOD("OPTIONS *", "OPTIONS * HTTP/1.1\r\n" H11 "\r\n", "OPTIONS", "*", 1, 0, 0, HOST),
    GOOD("CONNECT authority-form",
         "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", "CONNECT",
         "example.com:443", 1, 0, 0, HOST),
    GOOD("CONNECT IPv6", "CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n", "CONNECT",
         "[::1]:8443", 1, 0, 0, HOST),
    GOOD("value trimming, empty values",
         "GET / HTTP/1.1\r\n" H11 "A:  \t v a l \t \r\nB:\r\nC: \t \r\n\r\n", "GET", "/", 1, 0, 0,
         HOST, .headers = "Host=example.com\nA=v a l\nB=\nC=\n"),
    GOOD("obs-text and HTAB in a value", "GET / HTTP/1.1\r\n" H11 "X: caf\xc3\xa9\tbar\xff\r\n\r\n",
         "GET", "/", 1, 0, 0, HOST, .headers = "Host=example.com\nX=caf\xc3\xa9\tbar\xff\n"),
    GOOD("every tchar in a name", "GET / HTTP/1.1\r\n" H11 "!#$%&'*+-.^_`|~09azAZ: 1\r\n\r\n",
         "GET", "/", 1, 0, 0, HOST, .headers = "Host=example.com\n!#$%&'*+-.^_`|~09azAZ=1\n"),
    BAD("* with an extension method", "M-SEARCH * HTTP/1.1\r\n" H11 "\r\n", -400),
    GOOD("extension method, origin-form", "M-SEARCH /x HTTP/1.1\r\n" H11 "\r\n", "M-SEARCH", "/x",
         1, 0, 0, HOST),
    GOOD("Content-Length: 0", "POST / HTTP/1.1\r\n" H11 "Content-Length: 0\r\n\r\n", "POST", "/", 1,
         LEN, 0, HOST),
    GOOD("Content-Length leading zeros", "POST / HTTP/1.1\r\n" H11 "Content-Length: 007\r\n\r\n",
         "POST", "/", 1, LEN, 7, HOST),
    GOOD("Content-Length UINT64_MAX",
         "POST / HTTP/1.1\r\n" H11 "Content-Length: 18446744073709551615\r\n\r\n", "POST", "/", 1,
         LEN, UINT64_MAX, HOST),
    GOOD("empty Host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", "GET", "/", 1, 0, 0, HOST),
    GOOD("HTTP/1.0 without Host", "GET / HTTP/1.0\r\nAccept: */*\r\n\r\n", "GET", "/", 0, 0, 0, 0),
    GOOD("request line exactly at the limit", "GET /12345678 HTTP/1.1\r\n" H11 "\r\n", "GET",
         "/12345678", 1, 0, 0, HOST, .max_line = 22),
    GOOD("head exactly at the limit", "GET / HTTP/1.1\r\n" H11 "\r\n", "GET", "/", 1, 0, 0, HOST,
         .max_head = 37),
    GOOD("slots exactly full", "GET / HTTP/1.1\r\n" H11 "A: b\r\n\r\n", "GET", "/", 1, 0, 0, HOST,
         .slots = 2),
    GOOD("Host first: uppercase, HTAB, trailing OWS",
         "GET / HTTP/1.1\r\nHOST:\tExample.COM \t\r\n\r\n", "GET", "/", 1, 0, 0, HOST,
         .headers = "HOST=Example.COM\n"),
    GOOD("Host not first", "GET / HTTP/1.1\r\nAccept: */*\r\nhost: a\r\n\r\n", "GET", "/", 1, 0, 0,
         HOST, .headers = "Accept=*/*\nhost=a\n"),
    GOOD("Host first, then more", "GET / HTTP/1.0\r\nHost: a:1\r\nX: y\r\n\r\n", "GET", "/", 0, 0,
         0, HOST, .headers = "Host=a:1\nX=y\n"),
    GOOD("Content_Length is another field", "GET / HTTP/1.1\r\n" H11 "Content_Length: 5\r\n\r\n",
         "GET", "/", 1, 0, 0, HOST),
    GOOD("Connection: Keep-Alive, any case",
         "GET / HTTP/1.1\r\n" H11 "Connection: Keep-Alive\r\n\r\n", "GET", "/", 1, 0, 0,
         HOST | RITUAL_HTTP_CONN_KEEP_ALIVE),

    /* ---- request smuggling (RFC 9112 6.3, 11.2) */
    BAD("CL + TE",
        "POST / HTTP/1.1\r\n" H11 "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", -400),
    BAD("TE + CL",
        "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", -400),
    BAD("TE chunked not last", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked, gzip\r\n\r\n",
        -400),
    BAD("TE chunked then a line",
        "POST / HTTP/1.1\r\n" H11
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n",
        -400),
    BAD("TE gzip only", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: gzip\r\n\r\n", -400),
    BAD("TE xchunked", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: xchunked\r\n\r\n", -400),
    BAD("TE empty", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: \r\n\r\n", -400),
    BAD("TE chunked twice", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked, chunked\r\n\r\n",
        -400),
    BAD("TE chunked on two lines",
        "POST / HTTP/1.1\r\n" H11
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        -400),
    BAD("TE gzip, chunked", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: gzip, chunked\r\n\r\n",
        -501),
    BAD("TE deflate line, chunked line",
        "POST / HTTP/1.1\r\n" H11
        "Transfer-Encoding: deflate\r\nTransfer-Encoding: chunked\r\n\r\n",
        -501),
    BAD("TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", -400),
    BAD("TE chunked with a parameter",
        "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked;q=1\r\n\r\n", -400),
    BAD("TE junk after the token", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked x\r\n\r\n",
        -400),
    BAD("TE quoted", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: \"chunked\"\r\n\r\n", -400),
    BAD("TE with a vertical tab",
        "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\x0b\r\n\r\n", -400),
    BAD("space before the colon", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding : chunked\r\n\r\n",
        -400, AT("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding")),
    BAD("tab before the colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", -400,
        AT("GET / HTTP/1.1\r\nHost")),
    BAD("obs-fold TE", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding:\r\n chunked\r\n\r\n", -400),
    BAD("obs-fold", "GET / HTTP/1.1\r\n" H11 "X: a\r\n\tb\r\n\r\n", -400),
    BAD("space before the first header", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", -400,
        AT("GET / HTTP/1.1\r\n")),
    BAD("duplicate Content-Length, same value",
        "POST / HTTP/1.1\r\n" H11 "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", -400),
    BAD("conflicting Content-Length",
        "POST / HTTP/1.1\r\n" H11 "Content-Length: 5\r\ncontent-length: 6\r\n\r\n", -400),
    BAD("Content-Length list", "POST / HTTP/1.1\r\n" H11 "Content-Length: 5, 5\r\n\r\n", -400),
    BAD("Content-Length with a sign", "POST / HTTP/1.1\r\n" H11 "Content-Length: +5\r\n\r\n", -400),
    BAD("Content-Length negative", "POST / HTTP/1.1\r\n" H11 "Content-Length: -1\r\n\r\n", -400),
    BAD("Content-Length inner space", "POST / HTTP/1.1\r\n" H11 "Content-Length: 1 2\r\n\r\n",
        -400),
    BAD("Content-Length hex", "POST / HTTP/1.1\r\n" H11 "Content-Length: 0x5\r\n\r\n", -400),
    BAD("Content-Length empty", "POST / HTTP/1.1\r\n" H11 "Content-Length:\r\n\r\n", -400),
    BAD("Content-Length letters", "POST / HTTP/1.1\r\n" H11 "Content-Length: abc\r\n\r\n", -400),
    BAD("Content-Length overflow",
        "POST / HTTP/1.1\r\n" H11 "Content-Length: 18446744073709551616\r\n\r\n", -400),
    BAD("Content-Length huge",
        "POST / HTTP/1.1\r\n" H11 "Content-Length: 99999999999999999999999\r\n\r\n", -400),

    /* ---- bare CR and LF, controls */
    BAD("bare LF ends the request line", "GET / HTTP/1.1\n" H11 "\r\n", -400, AT("GET / HTTP/1.1")),
    BAD("bare LF ends a header", "GET / HTTP/1.1\r\nHost: a\n\r\n", -400,
        AT("GET / HTTP/1.1\r\nHost: a")),
    BAD("bare LF ends the head", "GET / HTTP/1.1\r\n" H11 "\n", -400, AT("GET / HTTP/1.1\r\n" H11)),
    BAD("LF LF", "GET / HTTP/1.1\n\n", -400, AT("GET / HTTP/1.1")),
    BAD("bare LF first", "\nGET / HTTP/1.1\r\n" H11 "\r\n", -400, AT("")),
    BAD("bare CR in the request line", "GET / HTTP/1.1\rX\n" H11 "\r\n", -400,
        AT("GET / HTTP/1.1\r")),
    BAD("bare CR in a value", "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", -400,
        AT("GET / HTTP/1.1\r\nHost: a\r")),
    BAD("bare CR ending the head", "GET / HTTP/1.1\r\n" H11 "\r\r\n", -400,
        AT("GET / HTTP/1.1\r\n" H11 "\r")),
    BAD("CR CR leading", "\r\rGET / HTTP/1.1\r\n" H11 "\r\n", -400, AT("\r")),
    BAD_BIN("NUL in the target", "GET /a\0b HTTP/1.1\r\n" H11 "\r\n", -400, AT("GET /a")),
    BAD_BIN("NUL in a value", "GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n", -400,
            AT("GET / HTTP/1.1\r\nHost: a")),
    BAD_BIN("NUL in a name", "GET / HTTP/1.1\r\nHo\0st: a\r\n\r\n", -400,
            AT("GET / HTTP/1.1\r\nHo")),
    BAD("control in a value", "GET / HTTP/1.1\r\n" H11 "X: a\x01z\r\n\r\n", -400),
    BAD("DEL in a value", "GET / HTTP/1.1\r\n" H11 "X: a\x7fz\r\n\r\n", -400),
    BAD("DEL in the target", "GET /\x7f HTTP/1.1\r\n" H11 "\r\n", -400),
    BAD("8-bit byte in the target", "GET /caf\xc3\xa9 HTTP/1.1\r\n" H11 "\r\n", -400),
    BAD("tab in the request line", "GET\t/ HTTP/1.1\r\n" H11 "\r\n", -400),
    BAD("escape in a value", "GET / HTTP/1.1\r\n" H11 "X: \x1b[31m\r\n\r\n", -400),

    /* ---- names, methods, targets, versions */
    BAD("empty header name", "GET / HTTP/1.1\r\n" H11 ": x\r\n\r\n", -400),
    BAD("@ in a header name", "GET / HTTP/1.1\r\n" H11 "X@Y: z\r\n\r\n", -400),
    BAD("8-bit byte in a name", "GET / HTTP/1.1\r\n" H11 "X\xe9: z\r\n\r\n", -400),
    BAD("header without a colon", "GET / HTTP/1.1\r\n" H11 "Host\r\n\r\n", -400),
    BAD("empty method", " / HTTP/1.1\r\n" H11 "\r\n", -400, AT(" / HTTP/1.1\r")),
    BAD("non-tchar method", "G(T / HTTP/1.1\r\n" H11 "\r\n", -400),
    BAD("method with an 8-bit byte", "G\xc9T / HTTP/1.1\r\n" H11 "\r\n", -400),
    BAD("empty target (two spaces)", "GET  HTTP/1.1\r\n" H11 "\r\n", -400),
    BAD("two spaces after the target", "GET /  HTTP/1.1\r\n" H11 "\r\n", -400),
    BAD("space after the version", "GET / HTTP/1.1 \r\n" H11 "\r\n", -400),
    BAD("no version", "GET /\r\n" H11 "\r\n", -400),
    BAD("method only", "GET\r\n\r\n", -400),
    BAD("target not in any form", "GET x HTTP/1.1\r\n" H11 "\r\n", -400),
    BAD("space in the target", "GET /a b HTTP/1.1\r\n" H11 "\r\n", -400),
    BAD("incomplete head", "GET / HTTP/1.1\r\n" H11 "X: 1\r\n", RITUAL_HTTP_PARTIAL),
    BAD("incomplete request line", "GET / HTTP/1.1\r", RITUAL_HTTP_PARTIAL),
    BAD("only empty lines", "\r\n\r\n\r", RITUAL_HTTP_PARTIAL),
    BAD("* with GET", "GET * HTTP/1.1\r\n" H11 "\r\n", -400),
    BAD("authority-form with GET", "GET example.com:80 HTTP/1.1\r\n" H11 "\r\n", -400),
    BAD("CONNECT origin-form", "CONNECT / HTTP/1.1\r\n" H11 "\r\n", -400),
    BAD("CONNECT absolute-form", "CONNECT http://example.com:80/ HTTP/1.1\r\n" H11 "\r\n", -400),
    BAD("CONNECT without a port", "CONNECT example.com HTTP/1.1\r\n" H11 "\r\n", -400),
    BAD("CONNECT empty port", "CONNECT example.com: HTTP/1.1\r\n" H11 "\r\n", -400),
    BAD("CONNECT without a host", "CONNECT :443 HTTP/1.1\r\n" H11 "\r\n", -400),
    BAD("CONNECT junk port", "CONNECT example.com:44x HTTP/1.1\r\n" H11 "\r\n", -400),
    BAD("scheme starting with a digit", "GET 1http://x/ HTTP/1.1\r\n" H11 "\r\n", -400),
    BAD("scheme without //", "GET http:/x HTTP/1.1\r\n" H11 "\r\n", -400),
    /* An http(s) URI's authority (RFC 9110 4.2.1, 4.2.4), as nginx checks it. */
    BAD("http:// with an empty host", "GET http:///f HTTP/1.1\r\n" H11 "\r\n", -400),
    BAD("http:// and nothing", "GET http:// HTTP/1.1\r\n" H11 "\r\n", -400),
    BAD("https:// with an empty host", "GET HTTPS://:443/f HTTP/1.1\r\n" H11 "\r\n", -400),
    BAD("http:// empty host before a query", "GET http://?q HTTP/1.1\r\n" H11 "\r\n", -400),
    BAD("http:// with a port not digits", "GET http://h:abc/f HTTP/1.1\r\n" H11 "\r\n", -400),
    BAD("http:// with a port then junk", "GET http://h:80x HTTP/1.1\r\n" H11 "\r\n", -400),
    BAD("http:// with two ports", "GET http://h:80:81/ HTTP/1.1\r\n" H11 "\r\n", -400),
    BAD("http:// IPv6 without its ]", "GET http://[::1/f HTTP/1.1\r\n" H11 "\r\n", -400),
    BAD("http:// empty brackets", "GET http://[]/f HTTP/1.1\r\n" H11 "\r\n", -400),
    BAD("http:// junk after ]", "GET http://[::1]x/f HTTP/1.1\r\n" H11 "\r\n", -400),
    BAD("http:// stray ]", "GET http://h]/f HTTP/1.1\r\n" H11 "\r\n", -400),
    BAD("http:// userinfo, empty host", "GET http://h@/f HTTP/1.1\r\n" H11 "\r\n", -400),
    BAD("http:// userinfo", "GET http://u:p@h/f HTTP/1.1\r\n" H11 "\r\n", -400),
    BAD("http:// a quote in the host", "GET http://h\"/f HTTP/1.1\r\n" H11 "\r\n", -400),
    BAD("HTTP/2.0", "GET / HTTP/2.0\r\n" H11 "\r\n", -505),
    BAD("HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", -505, AT("PRI * HTTP/2.0\r")),
    BAD("HTTP/0.9", "GET / HTTP/0.9\r\n" H11 "\r\n", -505),
    BAD("HTTP/3.0", "GET / HTTP/3.0\r\n" H11 "\r\n", -505),
    BAD("HTTP/1.10", "GET / HTTP/1.10\r\n" H11 "\r\n", -400),
    BAD("lowercase http", "GET / http/1.1\r\n" H11 "\r\n", -400),
    BAD("HTTP/1.", "GET / HTTP/1.\r\n" H11 "\r\n", -400),
    BAD("HTTP/1", "GET / HTTP/1\r\n" H11 "\r\n", -400),
    BAD("HTTP/x.1", "GET / HTTP/x.1\r\n" H11 "\r\n", -400),
    BAD("HTTP/11.1", "GET / HTTP/11.1\r\n" H11 "\r\n", -400),

    /* ---- Host, Expect */
    BAD("no Host in 1.1", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", -400),
    BAD("two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", -400),
    BAD("Host with a space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", -400),
    BAD("Host with a slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", -400),
    BAD("Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", -400),
    BAD("Host with a HTAB inside", "GET / HTTP/1.1\r\nHost: a\tb\r\n\r\n", -400),
    BAD("Host first, then a second one", "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\nHOST: b\r\n\r\n",
        -400),
    BAD("CR inside a name", "GET / HTTP/1.1\r\n" H11 "Content\rLength: 5\r\n\r\n", -400),
    BAD("CR inside Host", "GET / HTTP/1.1\r\nHo\rt: a\r\n\r\n", -400),
    BAD("Expect: other", "PUT / HTTP/1.1\r\n" H11 "Expect: 200-ok\r\n\r\n", -417),
    BAD("Expect: a list", "PUT / HTTP/1.1\r\n" H11 "Expect: 100-continue, x\r\n\r\n", -417),

    /* ---- limits */
    BAD("request line over the limit", "GET /aaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n" H11 "\r\n", -414,
        .max_line = 16, .error_at = 17),
    BAD("request line one over", "GET /123456789 HTTP/1.1\r\n" H11 "\r\n", -414, .max_line = 22,
        .error_at = 23),
    BAD("long request line, default limit", long_target, -414, .error_at = 8193),
    BAD("long head, default limit", long_head, -431, .error_at = 32768),
    BAD("head over the limit",
        "GET / HTTP/1.1\r\n" H11 "X-Long: 0123456789012345678901234567890\r\n\r\n", -431,
        .max_head = 64, .error_at = 64),
    BAD("head one over", "GET / HTTP/1.1\r\n" H11 "\r\n", -431, .max_head = 36, .error_at = 36),
    BAD("endless empty lines", many_crlf, -431, .max_head = 64, .error_at = 64),
    BAD("empty lines count toward the line start", "\r\n\r\nGET /123456789 HTTP/1.1\r\n" H11 "\r\n",
        -414, .max_line = 22, .error_at = 27),
    BAD("more headers than slots", "GET / HTTP/1.1\r\n" H11 "A: 1\r\nB: 2\r\n\r\n", -431,
        .slots = 2, AT("GET / HTTP/1.1\r\n" H11 "A: 1\r\n")),
    BAD("no slots", "GET / HTTP/1.1\r\n" H11 "\r\n", -431, .slots = (size_t)-1,
        AT("GET / HTTP/1.1\r\n")),
};

static void render_headers(const ritual_http_header *h, size_t n, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(out + used, cap - used, "%.*s=%.*s\n", (int)h[i].name_len, h[i].name,
                         (int)h[i].value_len, h[i].value);
        ASSERT(w >= 0 && (size_t)w < cap - used);
        used += (size_t)w;
    }
}

static int within(const char *p, size_t n, const char *buf, size_t len)
{
    return p >= buf && p + n <= buf + len;
}

#define SLOTS 16

/* The errno the API gives with each status a failed parse may ask for. */
static int errno_of_status(int status)
{
    switch (status) {
    case 400:
        return -EBADMSG;
    case 414:
    case 431:
        return -EMSGSIZE;
    case 417:
    case 501:
        return -EOPNOTSUPP;
    case 505:
        return -EPROTONOSUPPORT;
    }
    FAIL("a failed parse asked for status %d", status);
}

/* Parses buf[0..len) as case c says (limits, slots). The cases say what
 * they want as the head's length, RITUAL_HTTP_PARTIAL, or minus the status
 * to answer: a failure comes back so, once its errno is checked against the
 * status the parser set. */
static int parse_case(const struct req_case *c, const char *buf, size_t len,
                      ritual_http_request *req, ritual_http_header *slots, size_t last_len)
{
    ritual_http_limits limits = {c->max_line, c->max_head};
    memset(req, 0xa5, sizeof *req);
    req->headers = slots;
    req->num_headers = c->slots == (size_t)-1 ? 0 : c->slots ? c->slots : SLOTS;
    int rc = ritual_http_parse_request(buf, len, req, &limits, last_len);
    if (rc >= 0 || rc == RITUAL_HTTP_PARTIAL)
        return rc;
    if (rc != errno_of_status(req->status))
        FAIL("%s: %s with status %d", c->name, ritual_strerror(rc), req->status);
    return -req->status;
}

/* The fields of a successful parse of buf[0..len). */
static void check_fields(const struct req_case *c, const ritual_http_request *r, const char *buf,
                         size_t len)
{
    char got[2048];
    ASSERT(within(r->method, r->method_len, buf, len));
    ASSERT(within(r->target, r->target_len, buf, len));
    if (r->method_len != strlen(c->method) || memcmp(r->method, c->method, r->method_len) != 0)
        FAIL("%s: method %.*s", c->name, (int)r->method_len, r->method);
    if (r->target_len != strlen(c->target) || memcmp(r->target, c->target, r->target_len) != 0)
        FAIL("%s: target %.*s", c->name, (int)r->target_len, r->target);
    ASSERT_EQ(r->minor_version, c->minor);
    ASSERT_EQ(r->body, c->body);
    if (r->body == RITUAL_HTTP_BODY_LENGTH)
        ASSERT(r->content_length == c->cl);
    if (r->flags != c->flags)
        FAIL("%s: flags %#x, want %#x", c->name, r->flags, c->flags);
    ASSERT(r->num_headers <= SLOTS);
    for (size_t i = 0; i < r->num_headers; i++) {
        ASSERT(within(r->headers[i].name, r->headers[i].name_len, buf, len));
        ASSERT(within(r->headers[i].value, r->headers[i].value_len, buf, len));
    }
    if (c->headers) {
        render_headers(r->headers, r->num_headers, got, sizeof got);
        if (strcmp(got, c->headers) != 0)
            FAIL("%s: headers\n%s\nwant\n%s", c->name, got, c->headers);
    }
}

/* What a prefix of length k may answer, given the whole's answer. */
static void check_prefix(const struct req_case *c, int whole, size_t k, int got, const char *how)
{
    int ok;
    if (whole > 0)
        ok = k >= (size_t)whole ? got == whole : got == RITUAL_HTTP_PARTIAL;
    else
        ok = got == RITUAL_HTTP_PARTIAL || got == whole;
    if (!ok)
        FAIL("%s: prefix %zu (%s) gave %d; the whole gives %d", c->name, k, how, got, whole);
}

static void check_request(const struct req_case *c)
{
    size_t len = c->len ? c->len : strlen(c->in);
    ritual_http_request req;
    ritual_http_header slots[SLOTS];

    const char *buf = at_guard(c->in, len);
    int whole = parse_case(c, buf, len, &req, slots, 0);
    int want = c->want == 0 ? (int)len : c->want;
    if (whole != want)
        FAIL("%s: parse gave %d, want %d", c->name, whole, want);
    if (whole > 0)
        check_fields(c, &req, buf, len);

    /* Big inputs: every byte near the ends and near error_at, a stride
     * elsewhere (each prefix is copied to the guard page: O(n^2)). */
    size_t stride = len > 4096 ? 61 : 1;
    size_t last = 0, first_error = 0;
    for (size_t k = 0; k <= len; k++) {
        int near = k <= 256 || k + 256 >= len ||
                   (c->error_at && k + 2 >= c->error_at && k <= c->error_at + 2);
        if (stride > 1 && !near && k % stride != 0)
            continue;
        buf = at_guard(c->in, k);

        /* The prefix alone: an error shows at exactly error_at. */
        int fresh = parse_case(c, buf, k, &req, slots, 0);
        check_prefix(c, whole, k, fresh, "fresh");
        if (fresh == whole && whole < 0 && !first_error)
            first_error = k;
        if (c->error_at && k >= c->error_at && first_error != c->error_at)
            FAIL("%s: the error shows at prefix %zu, want %zu", c->name, first_error, c->error_at);

        /* A buffer growing (byte by byte, mostly), last_len chained as a
         * server would: the very same answers. */
        int got = parse_case(c, buf, k, &req, slots, last);
        if (got != fresh)
            FAIL("%s: prefix %zu gave %d with last_len %zu, %d without", c->name, k, got, last,
                 fresh);
        if (got > 0)
            check_fields(c, &req, buf, k);
        last = got == RITUAL_HTTP_PARTIAL ? k : 0; /* a server stops at a verdict */

        /* The prefix, then the whole with last_len = k: one split. */
        if (fresh == RITUAL_HTTP_PARTIAL) {
            buf = at_guard(c->in, len);
            got = parse_case(c, buf, len, &req, slots, k);
            if (got != whole)
                FAIL("%s: split at %zu gave %d; the whole gives %d", c->name, k, got, whole);
            if (got > 0)
                check_fields(c, &req, buf, len);
        }
    }
}

/* A 300-byte request parsed whole, many times: the number in the report. */
static void parse_throughput(void)
{
    ritual_http_header slots[SLOTS];
    ritual_http_request req;
    size_t len = strlen(BROWSER);
    const char *buf = at_guard(BROWSER, len);
    int n = 200000;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < n; i++) {
        req.headers = slots;
        req.num_headers = SLOTS;
        if (ritual_http_parse_request(buf, len, &req, NULL, 0) != (int)len)
            FAIL("throughput parse failed");
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    note("%zu-byte request: %.2f million parses/s (%.0f MB/s)", len, n / s / 1e6,
         (double)len * n / s / 1e6);
}

/* -------------------------------------------------------------- responses */

struct res_case {
    const char *name;
    const char *in;
    int head_request;
    int want; /* 0: whole; > 0 head length; < 0 status */
    int status;
    const char *reason;
    int body;
    uint64_t cl;
    unsigned flags;
};

static const struct res_case res_cases[] = {
    {.name = "200 with Content-Length",
     .in = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
     .head_request = 0,
     .want = 38,
     .status = 200,
     .reason = "OK",
     .body = LEN,
     .cl = 5},
    {.name = "HEAD: no body",
     .in = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
     .head_request = 1,
     .want = 0,
     .status = 200,
     .reason = "OK",
     .body = RITUAL_HTTP_BODY_NONE,
     .cl = 5},
    {.name = "204",
     .in = "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
     .head_request = 0,
     .want = 0,
     .status = 204,
     .reason = "No Content",
     .body = RITUAL_HTTP_BODY_NONE,
     .cl = 5},
    {.name = "304",
     .in = "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
     .head_request = 0,
     .want = 0,
     .status = 304,
     .reason = "Not Modified",
     .body = RITUAL_HTTP_BODY_NONE,
     .cl = 5},
    {.name = "100",
     .in = "HTTP/1.1 100 Continue\r\n\r\n",
     .head_request = 0,
     .want = 0,
     .status = 100,
     .reason = "Continue",
     .body = RITUAL_HTTP_BODY_NONE},
    {.name = "until close",
     .in = "HTTP/1.0 200 OK\r\nConnection: close\r\n\r\n",
     .head_request = 0,
     .want = 0,
     .status = 200,
     .reason = "OK",
     .body = RITUAL_HTTP_BODY_UNTIL_CLOSE,
     .cl = 0,
     .flags = RITUAL_HTTP_CONN_CLOSE},
    {.name = "chunked",
     .in = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
     .head_request = 0,
     .want = 0,
     .status = 200,
     .reason = "OK",
     .body = CHUNKED},
    {.name = "TE not ending in chunked",
     .in = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
     .head_request = 0,
     .want = 0,
     .status = 200,
     .reason = "OK",
     .body = RITUAL_HTTP_BODY_UNTIL_CLOSE},
    {.name = "no reason",
     .in = "HTTP/1.1 404\r\n\r\n",
     .head_request = 0,
     .want = 0,
     .status = 404,
     .reason = "",
     .body = RITUAL_HTTP_BODY_UNTIL_CLOSE},
    {.name = "empty reason",
     .in = "HTTP/1.1 404 \r\n\r\n",
     .head_request = 0,
     .want = 0,
     .status = 404,
     .reason = "",
     .body = RITUAL_HTTP_BODY_UNTIL_CLOSE},
    {.name = "reason with obs-text",
     .in = "HTTP/1.1 200 \xc3\xa7"
           "a va\tbien\r\n\r\n",
     .head_request = 0,
     .want = 0,
     .status = 200,
     .reason = "\xc3\xa7"
               "a va\tbien",
     .body = RITUAL_HTTP_BODY_UNTIL_CLOSE},
    {.name = "HTTP/2.0", .in = "HTTP/2.0 200 OK\r\n\r\n", .head_request = 0, .want = -505},
    {.name = "two-digit status", .in = "HTTP/1.1 20 OK\r\n\r\n", .head_request = 0, .want = -400},
    {.name = "status 600", .in = "HTTP/1.1 600 X\r\n\r\n", .head_request = 0, .want = -400},
    {.name = "status 099", .in = "HTTP/1.1 099 X\r\n\r\n", .head_request = 0, .want = -400},
    {.name = "junk after the status",
     .in = "HTTP/1.1 200OK\r\n\r\n",
     .head_request = 0,
     .want = -400},
    {.name = "CL + TE",
     .in = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
     .head_request = 0,
     .want = -400},
    {.name = "duplicate CL",
     .in = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
     .head_request = 0,
     .want = -400},
    {.name = "bare LF", .in = "HTTP/1.1 200 OK\n\r\n", .head_request = 0, .want = -400},
    {.name = "obs-fold",
     .in = "HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n",
     .head_request = 0,
     .want = -400},
    {.name = "leading empty line",
     .in = "\r\nHTTP/1.1 200 OK\r\n\r\n",
     .head_request = 0,
     .want = -400},
    {.name = "TE in HTTP/1.0",
     .in = "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
     .want = -400},
    {.name = "incomplete", .in = "HTTP/1.1 200 OK\r\nContent-Le", .want = RITUAL_HTTP_PARTIAL},
};

static void check_response_fields(const struct res_case *c, const ritual_http_response *r,
                                  const char *buf, size_t len)
{
    ASSERT_EQ(r->status, c->status);
    ASSERT(within(r->reason, r->reason_len, buf, len));
    if (r->reason_len != strlen(c->reason) || memcmp(r->reason, c->reason, r->reason_len) != 0)
        FAIL("%s: reason '%.*s'", c->name, (int)r->reason_len, r->reason);
    if ((int)r->body != c->body)
        FAIL("%s: body %d, want %d", c->name, (int)r->body, c->body);
    ASSERT(r->content_length == c->cl);
    ASSERT_EQ(r->flags, c->flags);
}

/* A response's failure as the cases say it: minus the status a request
 * failing so would get (400, 431 for a head too long, 505). */
static int response_status(int rc)
{
    if (rc >= 0 || rc == RITUAL_HTTP_PARTIAL)
        return rc;
    if (rc == -EBADMSG)
        return -400;
    if (rc == -EMSGSIZE)
        return -431;
    if (rc == -EPROTONOSUPPORT)
        return -505;
    FAIL("a response parse failed with %s", ritual_strerror(rc));
}

static void check_response(const struct res_case *c)
{
    size_t len = strlen(c->in);
    ritual_http_header slots[SLOTS];
    ritual_http_response res;
    int whole = 0, fresh = 0, want = c->want == 0 ? (int)len : c->want;
    size_t last = 0;
    for (size_t k = 0; k <= len; k++) {
        for (int pass = 0; pass < 2; pass++) { /* fresh, then chained last_len */
            const char *buf = at_guard(c->in, k);
            memset(&res, 0xa5, sizeof res);
            res.headers = slots;
            res.num_headers = SLOTS;
            int got = response_status(
                ritual_http_parse_response(buf, k, &res, c->head_request, pass ? last : 0));
            if (k == len)
                whole = got;
            int ok = want > 0 ? (k >= (size_t)want ? got == want : got == RITUAL_HTTP_PARTIAL)
                              : (got == RITUAL_HTTP_PARTIAL || got == want);
            if (!ok)
                FAIL("%s: prefix %zu gave %d, want %d", c->name, k, got, want);
            if (got > 0)
                check_response_fields(c, &res, buf, k);
            if (pass == 0)
                fresh = got;
            else if (got != fresh)
                FAIL("%s: prefix %zu gave %d with last_len, %d without", c->name, k, got, fresh);
            if (pass)
                last = got == RITUAL_HTTP_PARTIAL ? k : 0;
        }
    }
    if (whole != want)
        FAIL("%s: gave %d, want %d", c->name, whole, want);
}

/* ---------------------------------------------------------------- chunked */

struct chunk_case {
    const char *name;
    const char *in;
    const char *data; /* the decoded body */
    long consumed;    /* 0: all of the input */
    int done;
    int err;    /* 0, or -400 */
    size_t len; /* 0: strlen(in) */
};

static char long_ext[4200 + 32], long_ext_ok[4096 + 32], long_trailer[9000 + 32];

static const struct chunk_case chunk_cases[] = {
    {.name = "one chunk",
     .in = "5\r\nhello\r\n0\r\n\r\n",
     .data = "hello",
     .consumed = 0,
     .done = 1},
    {.name = "several chunks, hex digits",
     .in = "3\r\nabc\r\nA\r\n0123456789\r\n1a\r\nABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n0\r\n\r\n",
     .data = "abc0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
     .consumed = 0,
     .done = 1},
    {.name = "the next request stays",
     .in = "1\r\nx\r\n0\r\n\r\nGET / HTTP/1.1\r\n",
     .data = "x",
     .consumed = 11,
     .done = 1},
    {.name = "extensions",
     .in = "5;a=b\r\nhello\r\n6 ; name ; x = \"q \\\" ;\" ;t=1\r\n world\r\n0;last\r\n\r\n",
     .data = "hello world",
     .consumed = 0,
     .done = 1},
    {.name = "trailers",
     .in = "2\r\nhi\r\n0\r\nX-Checksum: abc\r\nY:\r\nZ: \xff\t v\r\n\r\n",
     .data = "hi",
     .consumed = 0,
     .done = 1},
    {.name = "leading zeros, 16 digits",
     .in = "0000000000000002\r\nok\r\n00\r\n\r\n",
     .data = "ok",
     .consumed = 0,
     .done = 1},
    {.name = "empty body", .in = "0\r\n\r\n", .data = "", .consumed = 0, .done = 1},
    {.name = "incomplete data", .in = "10\r\n0123456", .data = "0123456", .consumed = 0, .done = 0},
    {.name = "incomplete trailers",
     .in = "1\r\na\r\n0\r\nX: y\r\n",
     .data = "a",
     .consumed = 0,
     .done = 0},
    {.name = "huge size: waits",
     .in = "ffffffffffffffff\r\nabc",
     .data = "abc",
     .consumed = 0,
     .done = 0},
    {.name = "size line at the limit", .in = long_ext_ok, .data = "x", .consumed = 0, .done = 1},
    {.name = "17 digits",
     .in = "00000000000000001\r\nx\r\n0\r\n\r\n",
     .data = "",
     .consumed = 0,
     .done = 0,
     .err = -400},
    {.name = "overflow",
     .in = "10000000000000000\r\n",
     .data = "",
     .consumed = 0,
     .done = 0,
     .err = -400},
    {.name = "0x prefix",
     .in = "0x5\r\nhello\r\n0\r\n\r\n",
     .data = "",
     .consumed = 0,
     .done = 0,
     .err = -400},
    {.name = "leading space",
     .in = " 5\r\nhello\r\n0\r\n\r\n",
     .data = "",
     .consumed = 0,
     .done = 0,
     .err = -400},
    {.name = "trailing space",
     .in = "5 \r\nhello\r\n0\r\n\r\n",
     .data = "",
     .consumed = 0,
     .done = 0,
     .err = -400},
    {.name = "trailing junk",
     .in = "5x\r\nhello\r\n0\r\n\r\n",
     .data = "",
     .consumed = 0,
     .done = 0,
     .err = -400},
    {.name = "sign",
     .in = "+5\r\nhello\r\n0\r\n\r\n",
     .data = "",
     .consumed = 0,
     .done = 0,
     .err = -400},
    {.name = "negative", .in = "-1\r\n", .data = "", .consumed = 0, .done = 0, .err = -400},
    {.name = "empty size",
     .in = "\r\nhello\r\n",
     .data = "",
     .consumed = 0,
     .done = 0,
     .err = -400},
    {.name = "bare LF after the size",
     .in = "5\nhello\r\n0\r\n\r\n",
     .data = "",
     .consumed = 0,
     .done = 0,
     .err = -400},
    {.name = "bare CR after the size",
     .in = "5\rhello\r\n0\r\n\r\n",
     .data = "",
     .consumed = 0,
     .done = 0,
     .err = -400},
    {.name = "data not followed by CRLF",
     .in = "5\r\nhelloX\r\n0\r\n\r\n",
     .data = "",
     .consumed = 0,
     .done = 0,
     .err = -400},
    {.name = "data followed by LF",
     .in = "5\r\nhello\n0\r\n\r\n",
     .data = "",
     .consumed = 0,
     .done = 0,
     .err = -400},
    {.name = "data longer than the size",
     .in = "3\r\nhello\r\n0\r\n\r\n",
     .data = "",
     .consumed = 0,
     .done = 0,
     .err = -400},
    {.name = "extension without a name",
     .in = "5;\r\nhello\r\n0\r\n\r\n",
     .data = "",
     .consumed = 0,
     .done = 0,
     .err = -400},
    {.name = "extension without a value",
     .in = "5;a=\r\nhello\r\n0\r\n\r\n",
     .data = "",
     .consumed = 0,
     .done = 0,
     .err = -400},
    {.name = "extension with a bare LF",
     .in = "5;a\nhello\r\n0\r\n\r\n",
     .data = "",
     .consumed = 0,
     .done = 0,
     .err = -400},
    {.name = "unterminated quote",
     .in = "5;a=\"x\r\nhello\r\n0\r\n\r\n",
     .data = "",
     .consumed = 0,
     .done = 0,
     .err = -400},
    {.name = "control in an extension",
     .in = "5;a=\x01\r\nhello\r\n0\r\n\r\n",
     .data = "",
     .consumed = 0,
     .done = 0,
     .err = -400},
    {.name = "space then CR",
     .in = "5;a=b \r\nhello\r\n0\r\n\r\n",
     .data = "",
     .consumed = 0,
     .done = 0,
     .err = -400},
    {.name = "size line too long",
     .in = long_ext,
     .data = "",
     .consumed = 0,
     .done = 0,
     .err = -400},
    {.name = "trailer obs-fold",
     .in = "0\r\nA: b\r\n c\r\n\r\n",
     .data = "",
     .consumed = 0,
     .done = 0,
     .err = -400},
    {.name = "trailer space before the colon",
     .in = "0\r\nA : b\r\n\r\n",
     .data = "",
     .consumed = 0,
     .done = 0,
     .err = -400},
    {.name = "trailer without a colon",
     .in = "0\r\nAb\r\n\r\n",
     .data = "",
     .consumed = 0,
     .done = 0,
     .err = -400},
    {.name = "trailer bare LF",
     .in = "0\r\nA: b\n\r\n",
     .data = "",
     .consumed = 0,
     .done = 0,
     .err = -400},
    {.name = "trailer NUL",
     .in = "0\r\nA: \x00\r\n\r\n",
     .data = "",
     .consumed = 0,
     .done = 0,
     .err = -400,
     .len = 11},
    {.name = "final bare LF", .in = "0\r\n\n", .data = "", .consumed = 0, .done = 0, .err = -400},
    {.name = "final bare CR", .in = "0\r\n\r\r", .data = "", .consumed = 0, .done = 0, .err = -400},
    {.name = "trailers too long",
     .in = long_trailer,
     .data = "",
     .consumed = 0,
     .done = 0,
     .err = -400},
};

struct decoded {
    long consumed;
    int done;
    int err;
    size_t data_len;
    char data[16384];
};

/* Feeds buf[0..len) as a server would: call again while bytes remain, until
 * the body is done or fails. Consumed bytes are dropped between calls. */
static void feed(ritual_http_chunked *dec, const char *in, size_t len, struct decoded *d)
{
    size_t off = 0;
    while (off < len && !d->err && !ritual_http_chunked_done(dec)) {
        const char *b = at_guard(in + off, len - off);
        const char *data = NULL;
        size_t n = 99;
        size_t c;
        int rc = ritual_http_chunked_decode(dec, b, len - off, &c, &data, &n);
        if (rc < 0) {
            ASSERT_EQ(rc, -EBADMSG);
            d->err = -400;
            break;
        }
        ASSERT(c > 0 && (size_t)c <= len - off); /* progress, unless done */
        ASSERT(n <= (size_t)c);
        if (n > 0) {
            ASSERT(within(data, n, b, (size_t)c));
            ASSERT(d->data_len + n <= sizeof d->data);
            memcpy(d->data + d->data_len, data, n);
            d->data_len += n;
        }
        off += (size_t)c;
        d->consumed += c;
    }
    d->done = ritual_http_chunked_done(dec);
}

static size_t chunk_len(const struct chunk_case *c)
{
    return c->len ? c->len : strlen(c->in);
}

static void check_decoded(const struct chunk_case *c, const struct decoded *d, const char *how,
                          size_t k)
{
    size_t len = chunk_len(c);
    long consumed = c->consumed ? c->consumed : (long)len;
    int ok = d->err == c->err && d->done == c->done;
    if (!c->err)
        ok = ok && d->consumed == consumed && d->data_len == strlen(c->data) &&
             memcmp(d->data, c->data, d->data_len) == 0;
    if (!ok)
        FAIL("%s (%s %zu): err %d done %d consumed %ld data '%.*s'", c->name, how, k, d->err,
             d->done, d->consumed, (int)d->data_len, d->data);
}

static void check_chunked(const struct chunk_case *c)
{
    size_t len = chunk_len(c);
    static struct decoded d;
    ritual_http_chunked dec;

    memset(&dec, 0, sizeof dec);
    memset(&d, 0, sizeof d);
    feed(&dec, c->in, len, &d);
    check_decoded(c, &d, "whole", len);

    size_t stride = len > 2048 ? 97 : 1;
    for (size_t k = 0; k <= len; k += (k < 64 || k + 64 > len) ? 1 : stride) {
        memset(&dec, 0, sizeof dec);
        memset(&d, 0, sizeof d);
        feed(&dec, c->in, k, &d);
        if (!d.err && !d.done)
            feed(&dec, c->in + k, len - k, &d);
        check_decoded(c, &d, "split at", k);
    }
    if (len <= 2048) { /* one byte at a time */
        memset(&dec, 0, sizeof dec);
        memset(&d, 0, sizeof d);
        for (size_t k = 0; k < len && !d.err && !d.done; k++)
            feed(&dec, c->in + k, 1, &d);
        check_decoded(c, &d, "bytewise", 0);
    }
    /* After a failure the decoder stays failed. */
    if (c->err) {
        const char *data;
        size_t n;
        size_t used;
        ASSERT_EQ(ritual_http_chunked_decode(&dec, "0\r\n\r\n", 5, &used, &data, &n), -EBADMSG);
    }
}

/* ------------------------------------------------------------------ dates */

static void dates(void)
{
    static const struct {
        int64_t t;
        const char *text;
    } fixed[] = {
        {0, "Thu, 01 Jan 1970 00:00:00 GMT"},
        {784111777, "Sun, 06 Nov 1994 08:49:37 GMT"},
        {951782400, "Tue, 29 Feb 2000 00:00:00 GMT"},
        {2147483647, "Tue, 19 Jan 2038 03:14:07 GMT"},
        {4102444800LL, "Fri, 01 Jan 2100 00:00:00 GMT"},
        {-1, "Wed, 31 Dec 1969 23:59:59 GMT"},
        {253402300799LL, "Fri, 31 Dec 9999 23:59:59 GMT"},
    };
    char out[30];
    int64_t t;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        memset(out, 'x', sizeof out);
        ritual_http_date(fixed[i].t, out);
        if (strcmp(out, fixed[i].text) != 0)
            FAIL("date %lld: '%s', want '%s'", (long long)fixed[i].t, out, fixed[i].text);
        ASSERT_EQ(ritual_http_parse_date(out, 29, &t), 0);
        ASSERT_EQ(t, fixed[i].t);
    }
    ritual_http_date(INT64_MAX, out);
    ASSERT(strcmp(out, "Fri, 31 Dec 9999 23:59:59 GMT") == 0);

    /* Against gmtime_r, over a few thousand years in random steps. */
    struct prng r;
    prng_seed(&r, 42);
    for (int i = 0; i < 20000; i++) {
        int64_t x = (int64_t)prng_range(&r, 0, 253402300799ULL) - (i % 4 == 0 ? 62135596800LL : 0);
        time_t tt = (time_t)x;
        struct tm tm;
        char want[64];
        ASSERT(gmtime_r(&tt, &tm) != NULL);
        static const char wd[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
        static const char mo[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
        snprintf(want, sizeof want, "%s, %02d %s %04d %02d:%02d:%02d GMT", wd[tm.tm_wday],
                 tm.tm_mday, mo[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
        ritual_http_date(x, out);
        if (strcmp(out, want) != 0)
            FAIL("date %lld: '%s', want '%s'", (long long)x, out, want);
        ASSERT_EQ(ritual_http_parse_date(out, strlen(out), &t), 0);
        ASSERT_EQ(t, x);
    }

    static const char *const same[] = {
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
        "Sun Nov 06 08:49:37 1994",
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        t = 0;
        if (ritual_http_parse_date(same[i], strlen(same[i]), &t) != 0 || t != 784111777)
            FAIL("'%s' parsed as %lld", same[i], (long long)t);
    }
    /* Two-digit years: the nearest past one unless under 50 years ahead. */
    ASSERT_EQ(ritual_http_parse_date("Saturday, 01-Jan-00 00:00:00 GMT", 32, &t), 0);
    ASSERT_EQ(t, 946684800);

    static const char *const garbage[] = {
        "",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 Nov 1994 08:49:37 gmt",
        "sun, 06 Nov 1994 08:49:37 GMT",
        "Sun, 06 nov 1994 08:49:37 GMT",
        "Sun, 31 Feb 1994 08:49:37 GMT",
        "Sun, 29 Feb 1900 08:49:37 GMT",
        "Sun, 00 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 08:60:00 GMT",
        "Sun, 06 Nov 1994 08:49:61 GMT",
        "Sun, 06 Nov 1994 08-49-37 GMT",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 94 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT ",
        " Sun, 06 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT\r\n",
        "Xyz, 06 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov +994 08:49:37 GMT",
        "Sunday, 06-Nov-1994 08:49:37 GMT",
        "Sunday, 06 Nov 94 08:49:37 GMT",
        "Sonday, 06-Nov-94 08:49:37 GMT",
        "Sunday, 6-Nov-94 08:49:37 GMT",
        "Sun Nov 6 08:49:37 1994",
        "Sun Nov  6 08:49:37 94",
        "Sun Nov    08:49:37 1994",
        "Sun Nov  6 08:49:37  994",
        "1994-11-06T08:49:37Z",
    };
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++)
        if (ritual_http_parse_date(garbage[i], strlen(garbage[i]), &t) != -EINVAL)
            FAIL("'%s' parsed", garbage[i]);
}

/* ---------------------------------------------------------- small helpers */

static void header_and_reason_helpers(void)
{
    ritual_http_header h[3] = {RITUAL_HTTP_HEADER("Host", "a"),
                               RITUAL_HTTP_HEADER("Content-Type", "text/plain"),
                               RITUAL_HTTP_HEADER("X-A", "1")};
    ASSERT(ritual_http_find_header(h, 3, "content-type") == &h[1]);
    ASSERT(ritual_http_find_header(h, 3, "HOST") == &h[0]);
    ASSERT(ritual_http_find_header(h, 3, "X-B") == NULL);
    ASSERT(ritual_http_find_header(h, 3, "X-") == NULL);
    ASSERT(ritual_http_find_header(h, 2, "X-A") == NULL);
    ASSERT(strcmp(ritual_http_reason(404), "Not Found") == 0);
    ASSERT(strcmp(ritual_http_reason(200), "OK") == 0);
    ASSERT(strcmp(ritual_http_reason(431), "Request Header Fields Too Large") == 0);
    ASSERT(strcmp(ritual_http_reason(599), "Unknown") == 0);
    ASSERT(strcmp(ritual_http_reason(-1), "Unknown") == 0);
}

static void build_inputs(void)
{
    /* GET /aaaa...(9000) HTTP/1.1 */
    char *p = long_target;
    p += sprintf(p, "GET /");
    memset(p, 'a', 9000);
    p += 9000;
    strcpy(p, " HTTP/1.1\r\nHost: a\r\n\r\n");

    p = long_head;
    p += sprintf(p, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < 4; i++) { /* few headers, long values: 431 from the length */
        p += sprintf(p, "X-%d: ", i);
        memset(p, 'v', 9000);
        p += 9000;
        p += sprintf(p, "\r\n");
    }
    strcpy(p, "\r\n");

    p = many_crlf;
    for (int i = 0; i < 40; i++)
        p += sprintf(p, "\r\n");
    strcpy(p, "GET / HTTP/1.1\r\n" H11 "\r\n");

    /* A size line of exactly 4096 bytes, and one of 4097. */
    p = long_ext_ok;
    p += sprintf(p, "1;a=");
    memset(p, 'v', 4096 - 4);
    p += 4096 - 4;
    strcpy(p, "\r\nx\r\n0\r\n\r\n");
    p = long_ext;
    p += sprintf(p, "1;a=");
    memset(p, 'v', 4097 - 4);
    p += 4097 - 4;
    strcpy(p, "\r\nx\r\n0\r\n\r\n");

    p = long_trailer;
    p += sprintf(p, "0\r\n");
    for (int i = 0; i < 900; i++)
        p += sprintf(p, "X: 12345\r\n");
    strcpy(p, "\r\n");
}

/* The fixture: the guard page and the long inputs, for every case. */
static void set_up(void)
{
    guard_init();
    build_inputs();
}

static void request_heads(void)
{
    size_t n_req = sizeof req_cases / sizeof req_cases[0];
    for (size_t i = 0; i < n_req; i++)
        check_request(&req_cases[i]);
    note("%zu request cases, whole and at every split", n_req);
}

static void response_heads(void)
{
    size_t n_res = sizeof res_cases / sizeof res_cases[0];
    for (size_t i = 0; i < n_res; i++)
        check_response(&res_cases[i]);
    note("%zu response cases", n_res);
}

static void chunked_bodies(void)
{
    size_t n_chunk = sizeof chunk_cases / sizeof chunk_cases[0];
    for (size_t i = 0; i < n_chunk; i++)
        check_chunked(&chunk_cases[i]);
    note("%zu chunked cases", n_chunk);
}

TEST_CASES_WITH(set_up, guard_free, CASE(request_heads), CASE(response_heads), CASE(chunked_bodies),
                CASE(dates), CASE(header_and_reason_helpers), CASE(parse_throughput))
