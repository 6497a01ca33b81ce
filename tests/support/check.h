/* check.h - assertions, failures and notes, for the tests. */
#ifndef RITUAL_TEST_CHECK_H
#define RITUAL_TEST_CHECK_H

#include <stddef.h>
#include <stdint.h>

#define ASSERT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond))                                                                               \
            test_fail(__FILE__, __LINE__, "assertion failed: %s", #cond);                          \
    } while (0)

#define ASSERT_CMP_(a, op, b)                                                                      \
    do {                                                                                           \
        long long assert_a_ = (long long)(a);                                                      \
        long long assert_b_ = (long long)(b);                                                      \
        if (!(assert_a_ op assert_b_))                                                             \
            test_fail(__FILE__, __LINE__, "assertion failed: %s %s %s (%lld %s %lld)", #a, #op,    \
                      #b, assert_a_, #op, assert_b_);                                              \
    } while (0)

#define ASSERT_EQ(a, b) ASSERT_CMP_(a, ==, b)
#define ASSERT_NE(a, b) ASSERT_CMP_(a, !=, b)
#define ASSERT_LT(a, b) ASSERT_CMP_(a, <, b)
#define ASSERT_LE(a, b) ASSERT_CMP_(a, <=, b)
#define ASSERT_GT(a, b) ASSERT_CMP_(a, >, b)
#define ASSERT_GE(a, b) ASSERT_CMP_(a, >=, b)

/* For measurements (CPU percentages): compares and prints as doubles. */
#define ASSERT_DBL_LT(a, b)                                                                        \
    do {                                                                                           \
        double assert_a_ = (double)(a);                                                            \
        double assert_b_ = (double)(b);                                                            \
        if (!(assert_a_ < assert_b_))                                                              \
            test_fail(__FILE__, __LINE__, "assertion failed: %s < %s (%.3f < %.3f)", #a, #b,       \
                      assert_a_, assert_b_);                                                       \
    } while (0)

/* Fails the test with a message, like an assertion. */
#define FAIL(...) test_fail(__FILE__, __LINE__, __VA_ARGS__)

/* Checks a system call that returns -1 and sets errno on failure; returns
 * its result otherwise: `int fd = SYSCHECK(socket(...));` */
#define SYSCHECK(call) sys_check_((long)(call), #call, __FILE__, __LINE__)

void test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
long sys_check_(long ret, const char *what, const char *file, int line);

/* Prints "# message" on stdout, for the test report. */
void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
