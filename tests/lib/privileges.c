/* ritual_user_check and ritual_drop_privileges (src/user.c):
 *
 * - drop_to_nobody: as root, in a forked child, becoming "nobody" leaves
 *   real, effective and saved uid and gid nobody's, root's group among the
 *   supplementary ones no more, setuid(0) failing; a second call is a
 *   no-op, and becoming root again is -EPERM, saying only root can.
 * - unknown: an unknown user or group, a malformed spec, a user number
 *   with no entry and no GROUP are -EINVAL with a message saying which,
 *   from both functions, and nothing changes.
 * - same_user: becoming the user the process already is returns 0 and
 *   changes nothing, root or not (a binary upgrade re-runs --user). */
#include "libtest.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_GROUPS 256

static void expect_message(const ritual_error *err, int code, const char *want)
{
    note("%s", err->message);
    ASSERT_EQ(err->code, code);
    if (strcmp(err->message, want) != 0)
        FAIL("message \"%s\", expected \"%s\"", err->message, want);
}

/* The ids and groups now, to compare before and after. */
struct ids {
    uid_t uid[3];
    gid_t gid[3];
    int ngroups;
    gid_t groups[MAX_GROUPS];
};

static void ids_get(struct ids *ids)
{
    memset(ids, 0, sizeof *ids);
    SYSCHECK(getresuid(&ids->uid[0], &ids->uid[1], &ids->uid[2]));
    SYSCHECK(getresgid(&ids->gid[0], &ids->gid[1], &ids->gid[2]));
    ids->ngroups = (int)SYSCHECK(getgroups(MAX_GROUPS, ids->groups));
}

static void expect_unchanged(const struct ids *before)
{
    struct ids now;
    ids_get(&now);
    ASSERT(memcmp(&now, before, sizeof now) == 0);
}

/* Runs `fn` in a child process, which may drop what the test runner must
 * keep; fails unless it exits 0. */
static void in_child(void (*fn)(const struct passwd *), const struct passwd *pw)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = SYSCHECK(fork());
    if (pid == 0) {
        fn(pw);
        fflush(stdout);
        _exit(0);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            FAIL("waitpid: %s", strerror(errno));
    ASSERT(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
}

static void become_nobody(const struct passwd *nobody)
{
    ritual_error err;
    if (ritual_drop_privileges("nobody", &err) < 0)
        FAIL("ritual_drop_privileges nobody: %s", err.message);
    struct ids now;
    ids_get(&now);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(now.uid[i], nobody->pw_uid);
        ASSERT_EQ(now.gid[i], nobody->pw_gid);
    }
    for (int i = 0; i < now.ngroups; i++) /* initgroups: nobody's, not root's */
        ASSERT(now.groups[i] != 0 || nobody->pw_gid == 0);
    errno = 0;
    ASSERT_EQ(setuid(0), -1);
    ASSERT_EQ(errno, EPERM);
    ASSERT_EQ(ritual_drop_privileges("nobody", &err), 0); /* already: nothing to do */
    ASSERT_EQ(ritual_drop_privileges("root", &err), -EPERM);
    expect_message(&err, -EPERM,
                   "user 'root': Operation not permitted (only root can change user)");
    expect_unchanged(&now);
}

static void drop_to_nobody(void)
{
    if (geteuid() != 0) {
        note("SKIPPED: not root, so no user can be become");
        return;
    }
    static struct passwd nobody; /* the fields point into getpwnam's buffer */
    struct passwd *pw = getpwnam("nobody");
    if (!pw) {
        note("SKIPPED: no user 'nobody' here");
        return;
    }
    nobody = *pw;
    in_child(become_nobody, &nobody);
}

/* A uid with no passwd entry, 0 if every one tried has one. */
static uid_t uid_without_entry(void)
{
    for (uid_t uid = 54321; uid < 54421; uid++)
        if (!getpwuid(uid))
            return uid;
    return 0;
}

static void unknown(void)
{
    struct ids before;
    ids_get(&before);
    ritual_error err;
    ASSERT_EQ(ritual_user_check("ritual-nosuchuser", &err), -EINVAL);
    expect_message(&err, -EINVAL, "user 'ritual-nosuchuser': no such user");
    ASSERT_EQ(ritual_drop_privileges("ritual-nosuchuser", &err), -EINVAL);
    expect_message(&err, -EINVAL, "user 'ritual-nosuchuser': no such user");
    ASSERT_EQ(ritual_drop_privileges("root:ritual-nosuchgroup", &err), -EINVAL);
    expect_message(&err, -EINVAL, "user 'root:ritual-nosuchgroup': no such group");
    ASSERT_EQ(ritual_user_check("root:", &err), -EINVAL);
    expect_message(&err, -EINVAL, "user 'root:': expected USER[:GROUP]");
    ASSERT_EQ(ritual_user_check("", &err), -EINVAL);
    ASSERT_EQ(ritual_user_check(":0", &err), -EINVAL);
    uid_t lone = uid_without_entry();
    if (lone) {
        char spec[64], want[160];
        snprintf(spec, sizeof spec, "%u", (unsigned)lone);
        snprintf(want, sizeof want, "user '%u': user %u has no entry: give its group, %u:GROUP",
                 (unsigned)lone, (unsigned)lone, (unsigned)lone);
        ASSERT_EQ(ritual_drop_privileges(spec, &err), -EINVAL);
        expect_message(&err, -EINVAL, want);
        snprintf(spec, sizeof spec, "%u:%u", (unsigned)lone, (unsigned)lone);
        ASSERT_EQ(ritual_user_check(spec, &err), 0);
    }
    ASSERT_EQ(ritual_user_check("root", &err), 0);
    ASSERT_EQ(ritual_user_check("0:0", &err), 0);
    ASSERT_EQ(ritual_user_check("root", NULL), 0);
    ASSERT_EQ(ritual_user_check("ritual-nosuchuser", NULL), -EINVAL);
    expect_unchanged(&before);
}

static void stay(const struct passwd *pw)
{
    struct ids before;
    ids_get(&before);
    ritual_error err;
    char spec[64];
    snprintf(spec, sizeof spec, "%u:%u", (unsigned)getuid(), (unsigned)getgid());
    if (ritual_drop_privileges(spec, &err) != 0)
        FAIL("ritual_drop_privileges %s: %s", spec, err.message);
    expect_unchanged(&before);
    if (pw && pw->pw_gid == getgid()) { /* by name: the primary group */
        if (ritual_drop_privileges(pw->pw_name, &err) != 0)
            FAIL("ritual_drop_privileges %s: %s", pw->pw_name, err.message);
        expect_unchanged(&before);
    }
}

static void same_user(void)
{
    in_child(stay, getpwuid(getuid()));
}

TEST_CASES(CASE(drop_to_nobody), CASE(unknown), CASE(same_user))
