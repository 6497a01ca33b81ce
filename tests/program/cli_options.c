/* cli_options: long option names are matched whole, in every subcommand.
 * getopt_long takes any unambiguous prefix, so `ritual http --head X` was
 * quietly --header-timeout X (and failed on "X" not being seconds); an
 * option added later (--header) would have turned such a line into
 * another. Now an abbreviation is an unknown option however it is typed:
 * `--head VALUE`, `--head=VALUE`, `--head` last, an ambiguous `--he`, one
 * after a stray argument: exit 2, one line on stderr naming it as typed
 * (without its value), nothing on stdout. The exact names still work in
 * both forms (`--name VALUE`, `--name=VALUE`): each reaches its own value
 * check (an empty path, `--root=`, included), and a real run of each
 * subcommand with the `=` form works. */
#include "support.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *ritual;

static void run_ritual(const char *const args[], struct cmd_result *r, char *cmd, size_t cap)
{
    const char *argv[24];
    int argc = 0;
    size_t len = (size_t)snprintf(cmd, cap, "ritual");
    argv[argc++] = ritual;
    for (int i = 0; args[i] != NULL && argc < 23; i++) {
        argv[argc++] = args[i];
        len += (size_t)snprintf(cmd + len, len < cap ? cap - len : 0, " %s", args[i]);
    }
    argv[argc] = NULL;
    run_command(argv, 10000, r);
}

/* `ritual ARGS` exits 2 with exactly the line `expected` on stderr. */
static void expect_usage_line(const char *const args[], const char *expected)
{
    char cmd[512];
    struct cmd_result r;
    run_ritual(args, &r, cmd, sizeof cmd);
    if (r.exit_code != 2)
        FAIL("`%s`: exit code %d (signal %d), expected 2; stderr: %s", cmd, r.exit_code,
             r.term_signal, r.err);
    if (r.out_len != 0)
        FAIL("`%s`: expected nothing on stdout, got: %s", cmd, r.out);
    if (r.err_len != strlen(expected) + 1 || memcmp(r.err, expected, r.err_len - 1) != 0 ||
        r.err[r.err_len - 1] != '\n')
        FAIL("`%s`: stderr\n  %s\nexpected the one line\n  %s", cmd, r.err, expected);
    note("`%s` -> 2: %s", cmd, expected);
}

/* `ritual ARGS` exits 2 with a line that contains `what`: the option was
 * taken, and its own value check refused the value. */
static void expect_value_check(const char *const args[], const char *what)
{
    char cmd[512];
    struct cmd_result r;
    run_ritual(args, &r, cmd, sizeof cmd);
    if (r.exit_code != 2 || count_lines(r.err) != 1 || strstr(r.err, what) == NULL)
        FAIL("`%s`: exit code %d, stderr \"%s\": expected 2 and a line with \"%s\"", cmd,
             r.exit_code, r.err, what);
    note("`%s` -> 2: %.*s", cmd, (int)r.err_len - 1, r.err);
}

/* The abbreviation forms of `abbrev` (a prefix of an option that takes a
 * value) for subcommand argv `cmd` (NULL-terminated, at most 3 words). */
static void abbreviations(const char *const cmd[], const char *abbrev)
{
    char expected[256], with_value[128];
    snprintf(expected, sizeof expected, "ritual %s: unknown option '%s' (see 'ritual %s --help')",
             cmd[0], abbrev, cmd[0]);
    snprintf(with_value, sizeof with_value, "%s=5", abbrev);
    const char *forms[][3] = {
        {abbrev, "5", NULL},    /* the value apart */
        {with_value, NULL},     /* --name=value */
        {abbrev, NULL},         /* last, no value: not "needs a value" */
        {"stray", abbrev, "5"}, /* after a non-option getopt_long moves */
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        const char *args[8];
        int n = 0;
        for (int k = 0; cmd[k] != NULL; k++)
            args[n++] = cmd[k];
        for (int k = 0; k < 3 && forms[i][k] != NULL; k++)
            args[n++] = forms[i][k];
        args[n] = NULL;
        expect_usage_line(args, expected);
    }
}

static void http_abbreviations(void)
{
    abbreviations((const char *const[]){"http", NULL}, "--head");
    abbreviations((const char *const[]){"http", NULL}, "--max-req");
    abbreviations((const char *const[]){"http", NULL}, "--r");
    /* ambiguous: --header-timeout or --help */
    expect_usage_line((const char *const[]){"http", "--he", NULL},
                      "ritual http: unknown option '--he' (see 'ritual http --help')");
    /* an option with no value, abbreviated */
    expect_usage_line((const char *const[]){"http", "--root", "/", "--autoind", NULL},
                      "ritual http: unknown option '--autoind' (see 'ritual http --help')");
    expect_usage_line((const char *const[]){"http", "--root", "/", "--pin=1", NULL},
                      "ritual http: option '--pin' takes no value (see 'ritual http --help')");
}

static void echo_abbreviations(void)
{
    abbreviations((const char *const[]){"echo", NULL}, "--list");
    abbreviations((const char *const[]){"echo", NULL}, "--idle");
    expect_usage_line((const char *const[]){"echo", "--p", NULL},
                      "ritual echo: unknown option '--p' (see 'ritual echo --help')");
}

static void bench_abbreviations(void)
{
    abbreviations((const char *const[]){"bench", "echo", NULL}, "--conn"); /* ambiguous too */
    abbreviations((const char *const[]){"bench", "echo", NULL}, "--dur");
    abbreviations((const char *const[]){"bench", "http", NULL}, "--ur");
    expect_usage_line(
        (const char *const[]){"bench", "echo", "--connect", "127.0.0.1:1", "--js", NULL},
        "ritual bench: unknown option '--js' (see 'ritual bench --help')");
}

/* Each exact name, in both forms, reaches its own value check. */
static void exact_names_reach_their_checks(void)
{
    static const struct {
        const char *args[6];
        const char *what;
    } cases[] = {
        {{"http", "--header-timeout", "x", NULL}, "--header-timeout: 'x'"},
        {{"http", "--header-timeout=x", NULL}, "--header-timeout: 'x'"},
        {{"http", "--max-requests=0", NULL}, "--max-requests: '0'"},
        {{"http", "--root", "/", "--listen=bad", NULL}, "--listen:"},
        {{"echo", "--idle-timeout", "x", NULL}, "--idle-timeout: 'x'"},
        {{"echo", "--idle-timeout=x", NULL}, "--idle-timeout: 'x'"},
        {{"echo", "--listen=", NULL}, "--listen:"},
        {{"bench", "echo", "--duration", "x", NULL}, "--duration: 'x'"},
        {{"bench", "echo", "--duration=x", NULL}, "--duration: 'x'"},
        {{"bench", "http", "--url=x", NULL}, "--url: 'x'"},
        /* an empty path is refused as such, not opened */
        {{"http", "--root=", NULL}, "ritual http: --root: empty, a path is needed"},
        {{"http", "--root", "/", "--mime", "", NULL}, "--mime: empty"},
        {{"echo", "--tls-cert=", NULL}, "ritual echo: --tls-cert: empty, a path is needed"},
        {{"bench", "echo", "--tls-ca=", NULL}, "ritual bench: --tls-ca: empty"},
        {{"http", "--root", "/", "--socket-owner=", NULL}, "ritual http: --socket-owner: empty"},
        {{"echo", "--user", "", NULL}, "ritual echo: --user: empty"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_value_check(cases[i].args, cases[i].what);
}

/* ritual http and ritual echo serve with options given as --name=value,
 * and ritual bench runs against echo with them. */
static void equals_form_runs(void)
{
    char root[64];
    temp_dir_make(root, sizeof root);
    file_write_at(root, "index.html", "hi\n", 3);
    struct server s;
    http_server_start(ritual, root,
                      (const char *const[]){"--workers=1", "--header-timeout=5", "--max-requests=2",
                                            "--index=index.html", NULL},
                      &s);
    struct http_response r;
    http_exchange(s.port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", &r, 5000);
    HTTP_EXPECT_STATUS(&r, 200);
    ASSERT_EQ(r.body_len, 3);
    http_response_free(&r);
    server_expect_clean_exit(&s);
    remove_tree(root);

    server_start(ritual, (const char *const[]){"--workers=1", "--idle-timeout=5", NULL}, 0, &s);
    char connect[160];
    snprintf(connect, sizeof connect, "--connect=%s", s.address);
    const char *const argv[] = {ritual,           "bench",           "echo",   connect,
                                "--duration=0.3", "--connections=2", "--json", NULL};
    struct cmd_result b;
    run_command(argv, 20000, &b);
    if (b.exit_code != 0 || strstr(b.out, "\"connections\":2") == NULL)
        FAIL("ritual bench echo %s --duration=0.3 --connections=2 --json: exit %d, stdout %s, "
             "stderr %s",
             connect, b.exit_code, b.out, b.err);
    note("http, echo and bench ran with --name=value options");
    server_expect_clean_exit(&s);
}

static void find_ritual(void)
{
    ritual = ritual_program();
}

TEST_CASES_WITH(find_ritual, NULL, CASE(http_abbreviations), CASE(echo_abbreviations),
                CASE(bench_abbreviations), CASE(exact_names_reach_their_checks),
                CASE(equals_form_runs))
