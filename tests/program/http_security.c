/* http_security: nothing outside the document root is reachable. The root
 * is BASE/root; BASE/secret and BASE/root2/secret (a sibling whose name
 * starts like the root's) hold secrets. Every way up tried here (dot
 * segments, plain, percent-encoded, mixed case, through %2F, in absolute
 * form, with backslashes, doubled encodings, overlong UTF-8, NUL bytes) must
 * be answered without a secret, with the exact status the design gives:
 * 400 for a path that climbs above the root or holds %00 or a bad escape,
 * 404 for a name that merely looks odd, 403 for a symlink leading out.
 * Sent over raw sockets: curl would normalise the paths first. The cases
 * dot_segments, odd_names, redirects and symlinks run against one worker;
 * autoindex_listings repeats some with --autoindex: listings never show
 * what is outside; fallback_agrees asks the same symlink paths of a server
 * opening with openat2 and of one forced onto beneath.c's fallback. */
#include "support.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define TIMEOUT 5000

static char base[64], root[96];
static int port;
static struct server server;
static int checked;

static const char hello[] = "hello inside\n";

static void make_tree(void)
{
    temp_dir_make(base, sizeof base);
    snprintf(root, sizeof root, "%s/root", base);
    dir_make_at(base, "root");
    dir_make_at(base, "root2");
    file_write_at(base, "secret", "TOP-SECRET\n", 11);
    file_write_at(base, "root2/secret", "SIBLING-SECRET\n", 15);
    file_write_at(root, "index.html", "<h1>root</h1>\n", 14);
    file_write_at(root, "hello.txt", hello, strlen(hello));
    dir_make_at(root, "a");
    file_write_at(root, "a/inner.txt", "inner\n", 6);

    char target[256], link[256];
    snprintf(link, sizeof link, "%s/link_out", root);
    SYSCHECK(symlink("../secret", link)); /* relative, out of the root */
    snprintf(target, sizeof target, "%s/secret", base);
    snprintf(link, sizeof link, "%s/link_abs", root);
    SYSCHECK(symlink(target, link)); /* absolute, out of the root */
    snprintf(link, sizeof link, "%s/link_root", root);
    SYSCHECK(symlink(root, link)); /* absolute, to the root itself */
    snprintf(link, sizeof link, "%s/dir_out", root);
    SYSCHECK(symlink("../root2", link)); /* a directory out of the root */
    snprintf(link, sizeof link, "%s/link_etc", root);
    SYSCHECK(symlink("/etc/passwd", link));
    snprintf(link, sizeof link, "%s/link_in", root);
    SYSCHECK(symlink("hello.txt", link)); /* inside: served */
    snprintf(link, sizeof link, "%s/a/link_up", root);
    SYSCHECK(symlink("../hello.txt", link)); /* up, but still inside: served */
    snprintf(link, sizeof link, "%s/a/link_dir", root);
    SYSCHECK(symlink("..", link)); /* a directory inside */
    snprintf(link, sizeof link, "%s/loop", root);
    SYSCHECK(symlink("loop", link));
    dir_make_at(root, "evil.com");
    dir_make_at(root, "ix");
    snprintf(link, sizeof link, "%s/ix/index.html", root);
    SYSCHECK(symlink("../hello.txt", link)); /* an index file elsewhere in the root */
    snprintf(link, sizeof link, "%s/fifo", root);
    SYSCHECK(mkfifo(link, 0644));
}

/* Starts the case's server on the root (extra_args NULL-terminated). */
static void serve(const char *const extra_args[])
{
    http_server_start(ritual_program(), root, extra_args, &server);
    port = server.port;
}

static void stop_and_remove_tree(void)
{
    server_expect_clean_exit(&server);
    note("%d requests, none answered with a secret", checked);
    remove_tree(base);
}

/* Sends `raw` (a whole request) and expects `status`; the body must not
 * hold any secret. Returns nothing: fails the test otherwise. */
static void expect_raw(const char *raw, int status, const char *body)
{
    struct http_response r;
    http_exchange(port, raw, &r, TIMEOUT);
    const char *line_end = strstr(raw, "\r\n");
    int line_len = line_end ? (int)(line_end - raw) : (int)strlen(raw);
    if (r.body != NULL && (strstr(r.body, "SECRET") != NULL || strstr(r.body, "root:") != NULL))
        FAIL("\"%.*s\" leaked a secret (status %d): %s", line_len, raw, r.status, r.body);
    if (r.status != status)
        FAIL("\"%.*s\": status %d, expected %d (body \"%.80s\")", line_len, raw, r.status, status,
             r.body ? r.body : "");
    if (body != NULL && strcmp(r.body, body) != 0)
        FAIL("\"%.*s\": body \"%.80s\", expected \"%s\"", line_len, raw, r.body, body);
    http_response_free(&r);
    checked++;
}

static void expect_get(const char *target, int status, const char *body)
{
    char req[1024];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", target);
    expect_raw(req, status, body);
}

static void dot_segments(void)
{
    serve((const char *const[]){"--workers", "1", NULL});
    static const char *const above[] = {
        "/..",
        "/../",
        "/../secret",
        "/../../../../../../etc/passwd",
        "/%2e%2e/secret",
        "/%2E%2E/secret",
        "/.%2e/secret",
        "/%2e./secret",
        "/%2E%2E%2Fsecret",
        "/..%2fsecret",
        "/..%2Fsecret",
        "/a/../../secret",
        "/a/..%2f..%2fsecret",
        "/a/%2e%2e/%2e%2e/secret",
        "/./../secret",
        "/a/./.././../secret",
        "/../root2/secret",
        "/%2e%2e/root2/secret",
        "/..%2froot2%2fsecret",
        "/a/../../root2/secret",
        "/../root/../secret",
        "/hello.txt/../../secret",
        "/../secret?x=1",
    };
    for (size_t i = 0; i < sizeof above / sizeof above[0]; i++)
        expect_get(above[i], 400, "400 Bad Request\n");
    note("%zu paths climbing above the root: 400", sizeof above / sizeof above[0]);

    /* Absolute-form: the path after the authority is checked the same way. */
    expect_raw("GET http://x/../secret HTTP/1.1\r\nHost: x\r\n\r\n", 400, NULL);
    expect_raw("GET http://x/%2e%2e/secret HTTP/1.1\r\nHost: x\r\n\r\n", 400, NULL);
    expect_raw("GET http://x/a/../../root2/secret HTTP/1.1\r\nHost: x\r\n\r\n", 400, NULL);
    expect_raw("GET http://x/hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", 200, hello);
    expect_raw("GET http://x HTTP/1.1\r\nHost: x\r\n\r\n", 200, "<h1>root</h1>\n");
    expect_raw("GET http://x?../secret HTTP/1.1\r\nHost: x\r\n\r\n", 200, "<h1>root</h1>\n");
    /* An authority that is not one (RFC 9110 4.2.1, 4.2.4): 400, as nginx. */
    expect_raw("GET http:///hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", 400, NULL);
    expect_raw("GET http://x:abc/hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", 400, NULL);
    expect_raw("GET http://[::1/hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", 400, NULL);
    expect_raw("GET http://x@/hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", 400, NULL);
    expect_raw("GET http:// HTTP/1.1\r\nHost: x\r\n\r\n", 400, NULL);
    expect_raw("GET HTTPS://[::1]:8080/hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", 200, hello);
    /* Neither origin- nor absolute-form. */
    expect_raw("GET secret HTTP/1.1\r\nHost: x\r\n\r\n", 400, NULL);
    expect_raw("GET ../secret HTTP/1.1\r\nHost: x\r\n\r\n", 400, NULL);
    expect_raw("GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400, NULL);
    expect_raw("GET x:/../secret HTTP/1.1\r\nHost: x\r\n\r\n", 400, NULL);
    note("absolute-form targets resolved the same; other forms 400");

    /* Dot segments that stay inside are resolved. */
    expect_get("/a/../hello.txt", 200, hello);
    expect_get("/a/%2e%2e/hello.txt", 200, hello);
    expect_get("/a/..%2fhello.txt", 200, hello);
    expect_get("/./a/./inner.txt", 200, "inner\n");
    expect_get("/.", 200, "<h1>root</h1>\n");
    expect_get("//etc/passwd", 404, NULL); /* below the root, so absent */
    expect_get("/etc/passwd", 404, NULL);
    expect_get("/root2/secret", 404, NULL);
    expect_get("/secret", 404, NULL);
}

static void odd_names(void)
{
    serve((const char *const[]){"--workers", "1", NULL});
    /* Names that only look like a way up: files that do not exist. */
    static const char *const absent[] = {
        "/...",
        "/.../secret",
        "/%252e%252e/secret",
        "/%252e%252e%252fsecret",
        "/%25%32%65%25%32%65/secret",
        "/..\\secret",
        "/%2e%2e%5csecret",
        "/..%5c..%5csecret",
        "/%c0%ae%c0%ae/secret",
        "/%c0%af..%c0%afsecret",
        "/%e0%80%ae%e0%80%ae/secret",
        "/..;/secret",
        "/hello.txt%2f",
        "/hello.txt/",
        "/hello.txt/.",
    };
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++)
        expect_get(absent[i], 404, "404 Not Found\n");
    note("%zu doubled, overlong or backslashed encodings: 404 (no such file)",
         sizeof absent / sizeof absent[0]);

    /* NUL bytes and broken escapes never reach the file system. */
    static const char *const bad[] = {
        "/%00", "/a%00.txt", "/hello.txt%00.html", "/hello.txt%00", "/%",
        "/%2",  "/%zz",      "/%g0hello.txt",      "/a%2",          "/%%32%65",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_get(bad[i], 400, "400 Bad Request\n");
    note("%zu targets with %%00 or a bad escape: 400", sizeof bad / sizeof bad[0]);
}

/* Redirects to the slash never point off the site ("//host/" would). */
static void redirects(void)
{
    serve((const char *const[]){"--workers", "1", NULL});
    static const char *const targets[] = {"//evil.com", "/%2Fevil.com", "/%2f%2fevil.com",
                                          "/./evil.com", "http://x//evil.com"};
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        char req[256];
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", targets[i]);
        struct http_response r;
        http_exchange(port, req, &r, TIMEOUT);
        if (strstr(r.body, "SECRET") != NULL)
            FAIL("GET %s leaked a secret: %s", targets[i], r.body);
        if (r.status != 301 || http_field(&r, "Location") == NULL ||
            strcmp(http_field(&r, "Location"), "/evil.com/") != 0)
            FAIL("GET %s: %d Location: %s, expected 301 to /evil.com/", targets[i], r.status,
                 http_field(&r, "Location") ? http_field(&r, "Location") : "(none)");
        http_response_free(&r);
        checked++;
    }
    note("redirects to a directory's slash stay on the site (no //host)");
}

static void symlinks(void)
{
    serve((const char *const[]){"--workers", "1", NULL});
    expect_get("/link_out", 403, "403 Forbidden\n");
    expect_get("/link_abs", 403, "403 Forbidden\n");
    expect_get("/link_etc", 403, "403 Forbidden\n");
    expect_get("/link_root/hello.txt", 403, "403 Forbidden\n"); /* absolute, even to the root */
    expect_get("/dir_out/secret", 403, "403 Forbidden\n");
    expect_get("/dir_out/", 403, "403 Forbidden\n");
    expect_get("/dir_out", 403, "403 Forbidden\n");
    expect_get("/loop", 403, "403 Forbidden\n"); /* ELOOP */
    expect_get("/link_in", 200, hello);
    expect_get("/a/link_up", 200, hello);
    expect_get("/a/link_dir/hello.txt", 200, hello);
    expect_get("/a/link_dir/a/inner.txt", 200, "inner\n");
    expect_get("/a/link_dir/a/link_dir/a/link_up", 200, hello);
    note("symlinks out of the root: 403; inside it: served");

    /* A FIFO is not served, and opening it must not hang the worker. */
    expect_get("/fifo", 403, "403 Forbidden\n");
    expect_get("/hello.txt", 200, hello);

    /* The file system changes under the server: a file replaced by a symlink
     * out of the root is refused once the cache looks again. */
    char path[256], target[256];
    file_write_at(root, "swap.txt", "swap\n", 5);
    expect_get("/swap.txt", 200, "swap\n");
    snprintf(path, sizeof path, "%s/swap.txt", root);
    snprintf(target, sizeof target, "%s/secret", base);
    SYSCHECK(unlink(path));
    SYSCHECK(symlink(target, path));
    /* The cache may answer from its entry for up to a second; the old bytes
     * are fine, a secret never is. Bounded: 40 tries, 50 ms apart. */
    int status = 0;
    for (int i = 0; i < 40 && status != 403; i++) {
        struct http_response r;
        http_exchange(port, "GET /swap.txt HTTP/1.1\r\nHost: x\r\n\r\n", &r, TIMEOUT);
        if (strstr(r.body, "SECRET") != NULL)
            FAIL("a file swapped for a symlink out of the root leaked: %s", r.body);
        status = r.status;
        if (status != 403 && !(status == 200 && strcmp(r.body, "swap\n") == 0))
            FAIL("/swap.txt swapped for a symlink: status %d, body \"%s\"", status, r.body);
        http_response_free(&r);
        if (status != 403)
            sleep_ms(50);
    }
    ASSERT_EQ(status, 403);
    note("a file swapped for a symlink out of the root: 403 once the cache rechecks");

    if (geteuid() == 0) {
        note("running as root: an unreadable file cannot be tested (root reads it)");
    } else {
        file_write_at(root, "private.txt", "private\n", 8);
        snprintf(path, sizeof path, "%s/private.txt", root);
        SYSCHECK(chmod(path, 0));
        expect_get("/private.txt", 403, "403 Forbidden\n");
    }
}

/* The same with --autoindex: listings never show what is outside. */
static void autoindex_listings(void)
{
    serve((const char *const[]){"--autoindex", NULL});
    expect_get("/../", 400, NULL);
    expect_get("/dir_out/", 403, NULL);
    expect_get("/a/link_dir/", 200, NULL);
    expect_get("/a/..%2f..%2f", 400, NULL);

    /* An index file that is a symlink to a file elsewhere inside the root is
     * served, like the same symlink as a plain file (/a/link_up): a link must
     * stay inside the root, not inside the directory that holds it. */
    expect_get("/ix/index.html", 200, hello);
    expect_get("/ix/", 200, hello);
}

/* A symlink at root/REL pointing at `target`. */
static void link_at(const char *rel, const char *target)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    SYSCHECK(symlink(target, path));
}

/* The links the fallback resolves by hand (beneath.c), under root/chain. */
static void make_chain_tree(void)
{
    dir_make_at(root, "chain");
    dir_make_at(root, "chain/b");
    dir_make_at(root, "chain/d");
    file_write_at(root, "chain/d/file", "chained\n", 8);
    link_at("chain/a", "b/c");                /* a -> b/c -> ../d/file */
    link_at("chain/b/c", "../d/file");        /* ".." within a link's target */
    link_at("chain/abs", "/etc/passwd");      /* absolute */
    link_at("chain/out", "../../etc/passwd"); /* climbs out */
    link_at("chain/b/up", "../../..");        /* a directory above the root */
    link_at("chain/loop1", "loop2");
    link_at("chain/loop2", "loop1");
    link_at("chain/dirlink", "d"); /* a directory in the middle */
    link_at("chain/self", ".");
    link_at("chain/via", "dirlink/../d/file"); /* ".." after a linked directory */
    link_at("chain/dangling", "nothing");
    link_at("chain/empty_dir", "b/nothing/");
    link_at("chain/filelink", "../hello.txt");
    link_at("chain/slash", "d/file/"); /* a file named as a directory */
    /* 40 links in a row are followed, 41 are too many (ELOOP). */
    char name[32], target[32];
    for (int i = 0; i < 41; i++) {
        snprintf(name, sizeof name, "chain/l%d", i);
        snprintf(target, sizeof target, i == 40 ? "d/file" : "l%d", i + 1);
        link_at(name, target);
    }
}

/* GET `target` from the server on port `p`: its status; fails the test if
 * the body holds a secret or differs from `body` on a 200. */
static int get_status(int p, const char *target, const char *body)
{
    char req[1024];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", target);
    struct http_response r;
    http_exchange(p, req, &r, TIMEOUT);
    if (r.body != NULL && (strstr(r.body, "SECRET") != NULL || strstr(r.body, "root:") != NULL))
        FAIL("%s leaked a secret (status %d): %s", target, r.status, r.body);
    if (r.status == 200 && body != NULL && strcmp(r.body, body) != 0)
        FAIL("%s: body \"%.80s\", expected \"%s\"", target, r.body, body);
    int status = r.status;
    http_response_free(&r);
    checked++;
    return status;
}

/* Symlinks resolved by openat2 and by the fallback (RITUAL_HTTP_NO_OPENAT2)
 * answer alike: one server of each, every path asked of both, the same
 * status from both and the one expected. (Under the .no_openat2 variant the
 * first server is started without the variable, so it is still openat2's
 * where the kernel has it.) */
static void fallback_agrees(void)
{
    make_chain_tree();
    const char *had = getenv("RITUAL_HTTP_NO_OPENAT2");
    ASSERT_EQ(unsetenv("RITUAL_HTTP_NO_OPENAT2"), 0);
    serve((const char *const[]){"--workers", "1", NULL});
    ASSERT_EQ(setenv("RITUAL_HTTP_NO_OPENAT2", "1", 1), 0);
    struct server fallback;
    http_server_start(ritual_program(), root, (const char *const[]){"--workers", "1", NULL},
                      &fallback);
    if (!had)
        ASSERT_EQ(unsetenv("RITUAL_HTTP_NO_OPENAT2"), 0);

    static const struct {
        const char *path;
        int status;
        const char *body;
    } cases[] = {
        {"/chain/a", 200, "chained\n"},
        {"/chain/b/c", 200, "chained\n"},
        {"/chain/abs", 403, NULL},
        {"/chain/out", 403, NULL},
        {"/chain/b/up/hello.txt", 403, NULL},
        {"/chain/b/up/", 403, NULL},
        {"/chain/loop1", 403, NULL},
        {"/chain/loop1/x", 403, NULL},
        {"/chain/dirlink/file", 200, "chained\n"},
        {"/chain/dirlink", 301, NULL},
        {"/chain/dirlink/", 403, NULL},
        {"/chain/self/self/dirlink/file", 200, "chained\n"},
        {"/chain/via", 200, "chained\n"},
        {"/chain/dangling", 404, NULL},
        {"/chain/dangling/x", 404, NULL},
        {"/chain/empty_dir", 404, NULL},
        {"/chain/filelink", 200, hello},
        {"/chain/filelink/", 404, NULL},
        {"/chain/filelink/x", 404, NULL},
        {"/chain/slash", 404, NULL},
        {"/hello.txt/x", 404, NULL},
        {"/chain/l1", 200, "chained\n"}, /* 40 links */
        {"/chain/l0", 403, NULL},        /* 41 */
        {"/link_root/hello.txt", 403, NULL},
        {"/a/link_dir/a/link_up", 200, hello},
        {"/fifo", 403, NULL},
        {"/", 200, "<h1>root</h1>\n"},
        {"/chain/", 403, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int a = get_status(port, cases[i].path, cases[i].body);
        int b = get_status(fallback.port, cases[i].path, cases[i].body);
        if (a != b)
            FAIL("%s: openat2 answers %d, the fallback %d", cases[i].path, a, b);
        if (a != cases[i].status)
            FAIL("%s: status %d, expected %d", cases[i].path, a, cases[i].status);
    }
    server_expect_clean_exit(&fallback);
    note("%zu symlink paths: openat2 and the fallback answer alike",
         sizeof cases / sizeof cases[0]);
}

/* openat2 refused with EPERM by a seccomp filter, as Docker's profile before
 * 20.10 did: installed in this test's process, it holds for the server it
 * starts. The start-up probe must take that EPERM for a missing call and
 * serve through the fallback, not answer every file 403. */
static void openat2_filtered(void)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof filter / sizeof filter[0], .filter = filter};
    SYSCHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
    SYSCHECK(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog));
    serve((const char *const[]){"--workers", "1", "--log-level", "info", NULL});
    server_wait_log(&server, "paths resolved beneath the root one component at a time", 1);
    expect_get("/hello.txt", 200, hello);
    expect_get("/a/link_up", 200, hello);
    expect_get("/link_out", 403, "403 Forbidden\n");
    expect_get("/link_abs", 403, "403 Forbidden\n");
    expect_get("/loop", 403, "403 Forbidden\n");
    expect_get("/nothing", 404, NULL);
    note("openat2 refused by seccomp (EPERM): files served by the fallback");
}

TEST_CASES_WITH(make_tree, stop_and_remove_tree, CASE(dot_segments), CASE(odd_names),
                CASE(redirects), CASE(symlinks), CASE(autoindex_listings), CASE(fallback_agrees),
                CASE(openat2_filtered))
