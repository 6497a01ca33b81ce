/* http_access_log_json: --access-log-format json writes one JSON object per
 * line, every line valid JSON (RFC 8259, checked here by a strict reader)
 * whatever a client sends, with the fields in a fixed order:
 *   {"time":"2026-11-26T13:29:55+00:00","remote_addr":"127.0.0.1","host":"x",
 *    "request":"GET /a HTTP/1.1","method":"GET","uri":"/a","protocol":"HTTP/1.1",
 *    "status":200,"body_bytes_sent":13,"referer":"","user_agent":""}
 * values_read_back: quotes, backslashes, tabs, control bytes, valid UTF-8
 * and bytes that are not UTF-8 in the target, the request line, Referer and
 * User-Agent come back as they were sent (a byte that is not UTF-8 is
 * written \u00XX, and read back as that byte, as nginx's escape=json
 * means it); a 400 whose request never parsed still has its line.
 * long_fields_cut_whole: a 4000-byte target of quotes and a User-Agent of
 * 8000 non-UTF-8 bytes are cut short, at a character, in a valid line.
 * rotation_keeps_every_line: two workers, the log moved and SIGUSR1 sent
 * as logrotate does, then again with SIGHUP: each of the three files holds
 * whole JSON lines, none lost.
 * format_choice: an unknown format is a usage error. */
#include "json_line.h"
#include "support.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TIMEOUT 5000

static char root[64], log_path[96];

static void make_tree(void)
{
    temp_dir_make(root, sizeof root);
    file_write_at(root, "hello.txt", "hello, world\n", 13);
    snprintf(log_path, sizeof log_path, "%s/access.log", root);
}

static void remove_root(void)
{
    remove_tree(root);
}

static void serve(struct server *s, const char *workers)
{
    http_server_start(ritual_program(), root,
                      (const char *const[]){"--access-log", log_path, "--access-log-format", "json",
                                            "--workers", workers, NULL},
                      s);
}

static int request(int port, const char *raw)
{
    struct http_response r;
    http_exchange(port, raw, &r, TIMEOUT);
    int status = r.status;
    http_response_free(&r);
    return status;
}

static const char *const keys[] = {
    "time",   "remote_addr",     "host",    "request",   "method", "uri", "protocol",
    "status", "body_bytes_sent", "referer", "user_agent"};
enum { NKEYS = sizeof keys / sizeof keys[0] };

/* The line has exactly the log's keys, in order, numbers where numbers
 * go, and a time within two minutes of now. */
static void expect_shape(const char *line, size_t len, const struct json_line *j)
{
    if (j->n != NKEYS)
        FAIL("%d fields, expected %d: %.*s", j->n, NKEYS, (int)len, line);
    for (int i = 0; i < NKEYS; i++) {
        if (strcmp(j->key[i], keys[i]) != 0)
            FAIL("field %d is \"%s\", expected \"%s\": %.*s", i, j->key[i], keys[i], (int)len,
                 line);
        int number = strcmp(keys[i], "status") == 0 || strcmp(keys[i], "body_bytes_sent") == 0;
        if (j->is_string[i] == number)
            FAIL("\"%s\" should be a %s: %.*s", keys[i], number ? "number" : "string", (int)len,
                 line);
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(j->value[0], "%Y-%m-%dT%H:%M:%S+00:00", &tm);
    if (end == NULL || *end != '\0')
        FAIL("\"time\" is not YYYY-MM-DDTHH:MM:SS+00:00: %s", j->value[0]);
    time_t when = timegm(&tm), now = time(NULL);
    if (when > now + 5 || when < now - 120)
        FAIL("\"time\" %s is %lld s from now", j->value[0], (long long)(when - now));
}

static const char *field(const struct json_line *j, const char *key, size_t *len)
{
    const char *v = json_line_get(j, key, len);
    if (v == NULL)
        FAIL("no field \"%s\"", key);
    return v;
}

static void expect_field(const struct json_line *j, const char *key, const char *want)
{
    size_t len;
    const char *got = field(j, key, &len);
    if (len != strlen(want) || memcmp(got, want, len) != 0)
        FAIL("\"%s\" reads back as \"%s\" (%zu bytes), sent \"%s\" (%zu bytes)", key, got, len,
             want, strlen(want));
}

static char *read_log(const char *path, size_t *len)
{
    char *text = file_read(path, len);
    if (text == NULL)
        FAIL("%s: not created", path);
    return text;
}

/* Every line of `path` read and shape-checked; calls `each` (may be NULL)
 * on each. Returns the count. */
static int check_lines(const char *path, void (*each)(const struct json_line *j, int i))
{
    size_t len;
    char *text = read_log(path, &len);
    if (len > 0 && text[len - 1] != '\n')
        FAIL("%s does not end on a whole line", path);
    int n = 0;
    for (char *line = text; line < text + len; n++) {
        char *eol = memchr(line, '\n', (size_t)(text + len - line));
        struct json_line j;
        json_line_read(line, (size_t)(eol - line), &j);
        expect_shape(line, (size_t)(eol - line), &j);
        if (each)
            each(&j, n);
        json_line_free(&j);
        line = eol + 1;
    }
    free(text);
    return n;
}

/* ---------------------------------------------------------------- cases */

#define HOSTILE_UA                                                                                 \
    "agent \"quoted\" back\\slash\ttab caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 "                 \
    "bad:\xff\xfe \xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80 \xe2\x82 \x80 end"
#define HOSTILE_REFERER "http://r.example/\"x\"\\\t\xc3\x28 \xe0\x80\xaf"
#define HOSTILE_TARGET "/hello.txt?q=\"x\"\\y'{}<>%22"

static const struct {
    const char *raw;
    int status;
    const char *values[NKEYS]; /* time and remote_addr not compared */
} cases[] = {
    {"GET " HOSTILE_TARGET " HTTP/1.1\r\nHost: site.example:8080\r\n"
     "User-Agent: " HOSTILE_UA "\r\nReferer: " HOSTILE_REFERER "\r\n\r\n",
     200,
     {NULL, NULL, "site.example:8080", "GET " HOSTILE_TARGET " HTTP/1.1", "GET", HOSTILE_TARGET,
      "HTTP/1.1", "200", "13", HOSTILE_REFERER, HOSTILE_UA}},
    {"HEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n",
     200,
     {NULL, NULL, "x", "HEAD /hello.txt HTTP/1.1", "HEAD", "/hello.txt", "HTTP/1.1", "200", "0", "",
      ""}},
    {"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n",
     404,
     {NULL, NULL, "x", "GET /nope HTTP/1.1", "GET", "/nope", "HTTP/1.1", "404", "14", "", ""}},
    {"GET /hello.txt HTTP/1.0\r\n\r\n",
     200,
     {NULL, NULL, "", "GET /hello.txt HTTP/1.0", "GET", "/hello.txt", "HTTP/1.0", "200", "13", "",
      ""}},
    /* Refused before any handler: the request line as it came. */
    {"GET /\x01\x1b[31m\x7f\xff\"\\ HTTP/1.1\r\nHost: x\r\n\r\n",
     400,
     {NULL, NULL, "", "GET /\x01\x1b[31m\x7f\xff\"\\ HTTP/1.1", "", "", "", "400", NULL, "", ""}},
    {"GET /hello.txt HTTP/1.1\r\nHost: a\r\nHost: b\r\nUser-Agent: u\r\n\r\n",
     400,
     {NULL, NULL, "", "GET /hello.txt HTTP/1.1", "", "", "", "400", NULL, "", ""}},
};
enum { NCASES = sizeof cases / sizeof cases[0] };

static void check_case(const struct json_line *j, int i)
{
    ASSERT_LT(i, NCASES);
    expect_field(j, "remote_addr", "127.0.0.1");
    for (int k = 2; k < NKEYS; k++)
        if (cases[i].values[k])
            expect_field(j, keys[k], cases[i].values[k]);
}

static void values_read_back(void)
{
    struct server s;
    serve(&s, "1");
    for (int i = 0; i < NCASES; i++)
        ASSERT_EQ(request(s.port, cases[i].raw), cases[i].status);
    server_expect_clean_exit(&s);
    ASSERT_EQ(check_lines(log_path, check_case), NCASES);
    size_t len;
    char *text = read_log(log_path, &len);
    note(
        "%d requests, hostile ones too, each one valid JSON line that reads back; the first:\n%.*s",
        NCASES, (int)(strchr(text, '\n') - text), text);
    free(text);
}

static int is_prefix(const char *part, size_t part_len, const char *whole)
{
    return part_len <= strlen(whole) && memcmp(part, whole, part_len) == 0;
}

static char long_target[4001], long_ua[8001];

static void check_long(const struct json_line *j, int i)
{
    (void)i;
    size_t len;
    const char *uri = field(j, "uri", &len);
    if (len < 512 || !is_prefix(uri, len, long_target))
        FAIL("\"uri\": %zu bytes that do not begin the 4000 sent", len);
    const char *ua = field(j, "user_agent", &len);
    if (len < 128 || !is_prefix(ua, len, long_ua))
        FAIL("\"user_agent\": %zu bytes that do not begin the 8000 sent", len);
    note("a 4000-byte target of quotes logged as %zu bytes of its start; an 8000-byte "
         "User-Agent not in UTF-8 as %zu",
         strlen(field(j, "uri", NULL)), len);
}

static void long_fields_cut_whole(void)
{
    long_target[0] = '/';
    for (int i = 1; i < 4000; i++)
        long_target[i] = i % 2 ? '"' : '\\';
    memset(long_ua, 0xff, 8000);
    size_t cap = 20000;
    char *raw = malloc(cap);
    ASSERT(raw != NULL);
    snprintf(raw, cap, "GET %s HTTP/1.1\r\nHost: x\r\nUser-Agent: %s\r\n\r\n", long_target,
             long_ua);
    struct server s;
    serve(&s, "1");
    ASSERT_EQ(request(s.port, raw), 404);
    server_expect_clean_exit(&s);
    free(raw);
    ASSERT_EQ(check_lines(log_path, check_long), 1);
    size_t len;
    char *text = read_log(log_path, &len);
    ASSERT_LE(len, 8192);
    free(text);
}

/* Rotated twice as logrotate does, the file moved and then a signal:
 * SIGUSR1 after the first 60 requests, SIGHUP after 40 more, then 20. */
static void rotation_keeps_every_line(void)
{
    enum { CLIENTS = 4, ROTATIONS = 2 };
    static const int counts[ROTATIONS + 1] = {60, 40, 20};
    static const int signals[ROTATIONS] = {SIGUSR1, SIGHUP};
    char moved[ROTATIONS][140];
    struct server s;
    serve(&s, "2");
    /* Keep-alive clients spread over both workers, each with lines
     * buffered when a signal comes. */
    struct http_client *c[CLIENTS];
    for (int k = 0; k < CLIENTS; k++)
        c[k] = http_client_open(s.port);
    int n = 0;
    for (int round = 0; round <= ROTATIONS; round++) {
        if (round > 0) {
            snprintf(moved[round - 1], sizeof moved[0], "%s.%d", log_path, round);
            SYSCHECK(rename(log_path, moved[round - 1]));
            SYSCHECK(kill(s.pid, signals[round - 1]));
            server_wait_log(&s, "reopened the access log", round);
        }
        for (int i = 0; i < counts[round]; i++, n++) {
            struct http_client *cl = c[n % CLIENTS];
            char raw[128];
            snprintf(raw, sizeof raw, "GET /hello.txt?n=%d HTTP/1.1\r\nHost: x\r\n\r\n", n);
            http_send(cl, raw);
            struct http_response r;
            ASSERT(http_read_response(cl, &r, 0, TIMEOUT));
            HTTP_EXPECT_STATUS(&r, 200);
            http_response_free(&r);
        }
    }
    for (int k = 0; k < CLIENTS; k++)
        http_client_close(c[k]);
    server_expect_clean_exit(&s);
    int in_first = check_lines(moved[0], NULL), in_second = check_lines(moved[1], NULL),
        in_new = check_lines(log_path, NULL);
    note("2 workers, SIGUSR1 after %d requests, SIGHUP after %d more, then %d: %d, %d and %d "
         "whole JSON lines in the three files",
         counts[0], counts[1], counts[2], in_first, in_second, in_new);
    ASSERT_EQ(in_first, counts[0]);
    ASSERT_EQ(in_second, counts[1]);
    ASSERT_EQ(in_new, counts[2]);
}

static void format_choice(void)
{
    const char *const argv[] = {ritual_program(),      "http", "--root", root,
                                "--access-log-format", "xml",  NULL};
    struct cmd_result r;
    run_command(argv, 10000, &r);
    static const char want[] = "ritual http: --access-log-format: 'xml' is not combined or json "
                               "(see 'ritual http --help')\n";
    if (r.exit_code != 2 || strcmp(r.err, want) != 0)
        FAIL("--access-log-format xml: exit %d, stderr \"%s\"; expected 2 and \"%s\"", r.exit_code,
             r.err, want);
}

TEST_CASES_WITH(make_tree, remove_root, CASE(values_read_back), CASE(long_fields_cut_whole),
                CASE(rotation_keeps_every_line), CASE(format_choice))
