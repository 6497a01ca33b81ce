/* runner.c - see runner.h. */
#include "runner.h"

#include "check.h"
#include "proc.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_CASE_END_CHECKS 4
static void (*case_end_checks[MAX_CASE_END_CHECKS])(void);

void test_at_case_end(void (*check)(void))
{
    for (int i = 0; i < MAX_CASE_END_CHECKS; i++) {
        if (case_end_checks[i] == check)
            return;
        if (case_end_checks[i] == NULL) {
            case_end_checks[i] = check;
            return;
        }
    }
    FAIL("more than %d after-case checks", MAX_CASE_END_CHECKS);
}

const char *ritual_program(void)
{
    static char path[PATH_MAX];
    if (path[0] != '\0')
        return path;
    const char *env = getenv("RITUAL_PROGRAM");
    if (env != NULL && env[0] != '\0') {
        if (strlen(env) >= sizeof path)
            FAIL("RITUAL_PROGRAM is too long");
        strcpy(path, env);
    } else {
        static const char up[] = "/../ritual";
        ssize_t n = SYSCHECK(readlink("/proc/self/exe", path, sizeof path - sizeof up));
        path[n] = '\0';
        char *slash = strrchr(path, '/');
        ASSERT(slash != NULL);
        memcpy(slash, up, sizeof up);
    }
    if (access(path, X_OK) != 0)
        FAIL("%s: not an executable (%s); set RITUAL_PROGRAM", path, strerror(errno));
    return path;
}

const char *example_program(const char *name)
{
    static char path[PATH_MAX];
    const char *ritual = ritual_program();
    const char *slash = strrchr(ritual, '/');
    int dir = slash ? (int)(slash - ritual) : 1;
    int n = snprintf(path, sizeof path, "%.*s/example_%s", dir, slash ? ritual : ".", name);
    if (n < 0 || (size_t)n >= sizeof path)
        FAIL("example path too long");
    if (access(path, X_OK) != 0)
        FAIL("%s: not an executable (%s)", path, strerror(errno));
    return path;
}

/* Runs one case here, with the suite's fixture, then checks what it left. */
static void run_case(const struct test_suite *suite, const struct test_case *c)
{
    int fds = count_fds();
    if (suite->before)
        suite->before();
    c->run();
    if (suite->after)
        suite->after();
    for (int i = 0; i < MAX_CASE_END_CHECKS && case_end_checks[i]; i++)
        case_end_checks[i]();
    int left = count_fds();
    if (left != fds)
        FAIL("%s: %d descriptors open after the case, %d before", c->name, left, fds);
    int status;
    pid_t child = waitpid(-1, &status, WNOHANG);
    if (child == 0)
        FAIL("%s: a child process is still running after the case", c->name);
    if (child > 0)
        FAIL("%s: child %d exited and was never waited for", c->name, (int)child);
    if (errno != ECHILD)
        FAIL("%s: waitpid: %s", c->name, strerror(errno));
}

/* Every case in a child process of its own, in order; the failures counted. */
static int run_all(const struct test_suite *suite, const char *argv0)
{
    int failed = 0;
    for (size_t i = 0; i < suite->count; i++) {
        const struct test_case *c = &suite->cases[i];
        uint64_t start = now_ms();
        fflush(stdout);
        fflush(stderr);
        pid_t pid = SYSCHECK(fork());
        if (pid == 0) {
            run_case(suite, c);
            fflush(stdout);
            exit(0);
        }
        int status;
        while (waitpid(pid, &status, 0) < 0)
            if (errno != EINTR)
                FAIL("waitpid: %s", strerror(errno));
        int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (WIFEXITED(status))
            printf("%s %s.%s (%llu ms)\n", ok ? "ok  " : "FAIL", argv0, c->name,
                   (unsigned long long)(now_ms() - start));
        else
            printf("FAIL %s.%s (signal %d)\n", argv0, c->name, WTERMSIG(status));
        failed += !ok;
    }
    printf("%d of %zu cases failed\n", failed, suite->count);
    return failed ? 1 : 0;
}

int test_main(const struct test_suite *suite, int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN); /* a server that goes away is a result, not a crash */
    const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    if (strncmp(name, "test_", 5) == 0)
        name += 5;
    if (argc == 1)
        return run_all(suite, name);
    if (strcmp(argv[1], "--list") == 0 || strcmp(argv[1], "--help") == 0) {
        if (strcmp(argv[1], "--help") == 0)
            printf("usage: %s [--list | CASE...]\ncases:\n", argv[0]);
        for (size_t i = 0; i < suite->count; i++)
            printf("%s\n", suite->cases[i].name);
        return 0;
    }
    for (int a = 1; a < argc; a++) {
        size_t i = 0;
        while (i < suite->count && strcmp(suite->cases[i].name, argv[a]) != 0)
            i++;
        if (i == suite->count) {
            fprintf(stderr, "%s: no case named %s (--list shows them)\n", argv[0], argv[a]);
            return 2;
        }
    }
    for (int a = 1; a < argc; a++)
        for (size_t i = 0; i < suite->count; i++)
            if (strcmp(suite->cases[i].name, argv[a]) == 0)
                run_case(suite, &suite->cases[i]);
    return 0;
}
