/* runner.h - named test cases, each run in a process of its own.
 *
 * A test file writes its cases as functions and lists them at its end:
 *
 *     static void half_close(void) { ... }
 *     static void idle_timeout(void) { ... }
 *     TEST_CASES(CASE(half_close), CASE(idle_timeout))
 *
 * The binary then takes case names: `test_lib_conn half_close` runs that
 * case in the process itself (handy under a debugger); with no name it runs
 * every case, each in a child process of its own, one line per case;
 * `--list` prints the names. CTest registers each case as a test of its
 * own, NAME.CASE, with its own timeout (CMake reads the CASE(...) names
 * from the source).
 *
 * After a case returns, the runner checks that it left nothing behind: the
 * descriptors open are the ones open before it, no child process is left
 * running or unreaped, and the after-case checks registered with
 * test_at_case_end (libtest.h's: every loop it made was freed) pass.
 *
 * TEST_CASES_WITH(before, after, ...) runs before() ahead of each case and
 * after() once it returns (a fixture: a document root, a server), both in
 * the case's process and before the leak checks.
 */
#ifndef RITUAL_TEST_RUNNER_H
#define RITUAL_TEST_RUNNER_H

#include <stddef.h>

struct test_case {
    const char *name;
    void (*run)(void);
};

struct test_suite {
    const struct test_case *cases;
    size_t count;
    void (*before)(void);
    void (*after)(void);
};

#define CASE(fn)                                                                                   \
    {                                                                                              \
#fn, fn                                                                                    \
    }

#define TEST_CASES_WITH(before_fn, after_fn, ...)                                                  \
    static const struct test_case test_cases_[] = {__VA_ARGS__};                                   \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        struct test_suite suite = {test_cases_, sizeof test_cases_ / sizeof *test_cases_,          \
                                   before_fn, after_fn};                                           \
        return test_main(&suite, argc, argv);                                                      \
    }

#define TEST_CASES(...) TEST_CASES_WITH(NULL, NULL, __VA_ARGS__)

int test_main(const struct test_suite *suite, int argc, char **argv);

/* Adds a check run after every case of this process (at most a few). */
void test_at_case_end(void (*check)(void));

/* The `ritual` binary under test: $RITUAL_PROGRAM (CTest sets it), else
 * the one next to the tests' directory (build/ritual for build/tests/...).
 * Fails the test if it is not an executable. */
const char *ritual_program(void);

/* An example program built beside it: example_program("proxy") is
 * build/example_proxy. Fails the test if it is not an executable. */
const char *example_program(const char *name);

#endif
