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
 * mid-way as logrotate does: each file holds whole JSON lines, none lost.
 * format_choice: an unknown format is a usage error. */
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

/* ------------------------------------------------- a strict JSON reader */

/* One line read as a flat object whose values are strings or numbers (all
 * an access log line has). Strings are decoded: \u0000-\u00ff to the byte
 * (how the log writes bytes that are not UTF-8), other code points to
 * UTF-8. */
#define MAX_FIELDS 16
struct json_line {
    int n;
    char key[MAX_FIELDS][32];
    char *value[MAX_FIELDS]; /* malloc'd, NUL-terminated */
    size_t len[MAX_FIELDS];
    int is_string[MAX_FIELDS];
};

struct reader {
    const unsigned char *p, *end;
    const char *line; /* for messages */
    size_t line_len;
};

#define BAD(r, why)                                                                                \
    FAIL("not valid JSON (%s) at byte %zu of the log line\n  %.*s", (why),                         \
         (size_t)((const char *)(r)->p - (r)->line), (int)(r)->line_len, (r)->line)

static void skip_ws(struct reader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static void expect_byte(struct reader *r, char c)
{
    skip_ws(r);
    if (r->p == r->end || *r->p != (unsigned char)c) {
        char why[32];
        snprintf(why, sizeof why, "expected '%c'", c);
        BAD(r, why);
    }
    r->p++;
}

static size_t utf8_valid_len(const unsigned char *s, const unsigned char *end)
{
    unsigned c = s[0];
    size_t n;
    unsigned cp;
    if (c >= 0xc0 && c <= 0xdf)
        n = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf7)
        n = 4, cp = c & 0x07;
    else
        return 0;
    if ((size_t)(end - s) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    static const unsigned min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

static unsigned hex4(struct reader *r)
{
    if (r->end - r->p < 4)
        BAD(r, "short \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = *r->p++, d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            d = (c | 0x20) - 'a' + 10;
        else
            BAD(r, "bad hex digit in \\u escape");
        v = v << 4 | d;
    }
    return v;
}

static size_t put_utf8(char *out, unsigned cp)
{
    if (cp < 0x80)
        return out[0] = (char)cp, 1;
    if (cp < 0x800)
        return out[0] = (char)(0xc0 | cp >> 6), out[1] = (char)(0x80 | (cp & 0x3f)), 2;
    if (cp < 0x10000)
        return out[0] = (char)(0xe0 | cp >> 12), out[1] = (char)(0x80 | (cp >> 6 & 0x3f)),
               out[2] = (char)(0x80 | (cp & 0x3f)), 3;
    return out[0] = (char)(0xf0 | cp >> 18), out[1] = (char)(0x80 | (cp >> 12 & 0x3f)),
           out[2] = (char)(0x80 | (cp >> 6 & 0x3f)), out[3] = (char)(0x80 | (cp & 0x3f)), 4;
}

/* A string at r->p (after its opening quote), decoded into a malloc'd
 * buffer. */
static char *read_string(struct reader *r, size_t *len)
{
    char *out = malloc((size_t)(r->end - r->p) + 1);
    ASSERT(out != NULL);
    size_t n = 0;
    for (;;) {
        if (r->p == r->end)
            BAD(r, "unterminated string");
        unsigned c = *r->p;
        if (c == '"') {
            r->p++;
            break;
        }
        if (c < 0x20)
            BAD(r, "raw control byte in a string");
        if (c >= 0x80) {
            size_t k = utf8_valid_len(r->p, r->end);
            if (k == 0)
                BAD(r, "raw byte that is not UTF-8");
            memcpy(out + n, r->p, k);
            n += k;
            r->p += k;
            continue;
        }
        r->p++;
        if (c != '\\') {
            out[n++] = (char)c;
            continue;
        }
        if (r->p == r->end)
            BAD(r, "escape at the end");
        c = *r->p++;
        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        const char *hit = c ? strchr(from, (int)c) : NULL;
        if (hit) {
            out[n++] = to[hit - from];
        } else if (c == 'u') {
            unsigned cp = hex4(r);
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (r->end - r->p < 2 || r->p[0] != '\\' || r->p[1] != 'u')
                    BAD(r, "lone high surrogate");
                r->p += 2;
                unsigned lo = hex4(r);
                if (lo < 0xdc00 || lo > 0xdfff)
                    BAD(r, "bad low surrogate");
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                BAD(r, "lone low surrogate");
            }
            if (cp <= 0xff)
                out[n++] = (char)cp;
            else
                n += put_utf8(out + n, cp);
        } else {
            BAD(r, "unknown escape");
        }
    }
    out[n] = '\0';
    *len = n;
    return out;
}

static char *read_number(struct reader *r, size_t *len)
{
    const unsigned char *start = r->p;
    if (r->p < r->end && *r->p == '-')
        r->p++;
    if (r->p == r->end || *r->p < '0' || *r->p > '9')
        BAD(r, "not a value");
    if (*r->p == '0')
        r->p++;
    else
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
            r->p++;
    if (r->p < r->end && (*r->p == '.' || (*r->p | 0x20) == 'e'))
        BAD(r, "a fraction or exponent where only integers are expected");
    *len = (size_t)(r->p - start);
    char *out = malloc(*len + 1);
    ASSERT(out != NULL);
    memcpy(out, start, *len);
    out[*len] = '\0';
    return out;
}

/* Reads line[0..len) (no '\n') as one object; fails the test unless it is
 * valid JSON with nothing after it. */
static void json_read(const char *line, size_t len, struct json_line *j)
{
    struct reader r = {(const unsigned char *)line, (const unsigned char *)line + len, line, len};
    memset(j, 0, sizeof *j);
    expect_byte(&r, '{');
    skip_ws(&r);
    if (r.p < r.end && *r.p == '}') {
        r.p++;
    } else {
        for (;;) {
            expect_byte(&r, '"');
            size_t klen;
            char *key = read_string(&r, &klen);
            if (j->n == MAX_FIELDS || klen >= sizeof j->key[0])
                BAD(&r, "more or longer keys than a log line has");
            memcpy(j->key[j->n], key, klen + 1);
            free(key);
            expect_byte(&r, ':');
            skip_ws(&r);
            if (r.p < r.end && *r.p == '"') {
                r.p++;
                j->value[j->n] = read_string(&r, &j->len[j->n]);
                j->is_string[j->n] = 1;
            } else {
                j->value[j->n] = read_number(&r, &j->len[j->n]);
            }
            j->n++;
            skip_ws(&r);
            if (r.p < r.end && *r.p == ',') {
                r.p++;
                continue;
            }
            expect_byte(&r, '}');
            break;
        }
    }
    skip_ws(&r);
    if (r.p != r.end)
        BAD(&r, "bytes after the object");
}

static void json_free(struct json_line *j)
{
    for (int i = 0; i < j->n; i++)
        free(j->value[i]);
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
    for (int i = 0; i < j->n; i++) {
        if (strcmp(j->key[i], key) == 0) {
            if (len)
                *len = j->len[i];
            return j->value[i];
        }
    }
    FAIL("no field \"%s\"", key);
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
        json_read(line, (size_t)(eol - line), &j);
        expect_shape(line, (size_t)(eol - line), &j);
        if (each)
            each(&j, n);
        json_free(&j);
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
    {"GET /\x01\x1b[31m\xff\"\\ HTTP/1.1\r\nHost: x\r\n\r\n",
     400,
     {NULL, NULL, "", "GET /\x01\x1b[31m\xff\"\\ HTTP/1.1", "", "", "", "400", NULL, "", ""}},
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

static void rotation_keeps_every_line(void)
{
    char rotated[140];
    snprintf(rotated, sizeof rotated, "%s.1", log_path);
    struct server s;
    serve(&s, "2");
    enum { BEFORE = 60, AFTER = 40, CLIENTS = 4 };
    /* Keep-alive clients spread over both workers, each with lines
     * buffered when the signal comes. */
    struct http_client *c[CLIENTS];
    for (int k = 0; k < CLIENTS; k++)
        c[k] = http_client_open(s.port);
    for (int i = 0; i < BEFORE + AFTER; i++) {
        if (i == BEFORE) {
            SYSCHECK(rename(log_path, rotated));
            SYSCHECK(kill(s.pid, SIGUSR1));
            server_wait_log(&s, "reopened the access log", 1);
        }
        struct http_client *cl = c[i % CLIENTS];
        char raw[128];
        snprintf(raw, sizeof raw, "GET /hello.txt?n=%d HTTP/1.1\r\nHost: x\r\n\r\n", i);
        http_send(cl, raw);
        struct http_response r;
        ASSERT(http_read_response(cl, &r, 0, TIMEOUT));
        HTTP_EXPECT_STATUS(&r, 200);
        http_response_free(&r);
    }
    for (int k = 0; k < CLIENTS; k++)
        http_client_close(c[k]);
    server_expect_clean_exit(&s);
    int old_lines = check_lines(rotated, NULL), new_lines = check_lines(log_path, NULL);
    note("2 workers, SIGUSR1 after %d requests: %d whole JSON lines in the moved file, %d in the "
         "new one",
         BEFORE, old_lines, new_lines);
    ASSERT_EQ(old_lines, BEFORE);
    ASSERT_EQ(new_lines, AFTER);
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
