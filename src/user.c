/* user.c - users and groups: "USER[:GROUP]" resolved (user.h), and
 * ritual_user_check and ritual_drop_privileges. The drop's order is the one
 * that works: the groups while still root (setgroups needs CAP_SETGID),
 * then the group id, then the user id, which gives up the right to change
 * either. */
#include "user.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* "<what> '<spec>': why", as the command line shows it: no strerror
 * appended, `why` says it. Returns `code`. */
static int fail(ritual_error *err, int code, const char *what, const char *spec, const char *fmt,
                ...) __attribute__((format(printf, 5, 6)));
static int fail(ritual_error *err, int code, const char *what, const char *spec, const char *fmt,
                ...)
{
    if (!err)
        return code;
    err->code = code;
    int n = snprintf(err->message, sizeof err->message, "%s '%s': ", what, spec);
    if (n >= 0 && (size_t)n < sizeof err->message) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message + n, sizeof err->message - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Digits only, below the (id_t)-1 that means "unchanged". */
static bool parse_id(const char *text, unsigned long *out)
{
    if (*text < '0' || *text > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno || *end || v >= (unsigned long)(uid_t)-1)
        return false;
    *out = v;
    return true;
}

/* getpwnam_r/getpwuid_r into `u`. Returns 1 found, 0 not, -errno. */
static int find_user(const char *user, bool numeric, uid_t uid, struct ritual__user *u)
{
    char buf[16384];
    struct passwd pw, *found = NULL;
    int rc = numeric ? getpwuid_r(uid, &pw, buf, sizeof buf, &found)
                     : getpwnam_r(user, &pw, buf, sizeof buf, &found);
    if (!found)
        return rc == 0 || rc == ENOENT || rc == ESRCH ? 0 : -rc;
    snprintf(u->name, sizeof u->name, "%s", pw.pw_name);
    u->uid = pw.pw_uid;
    u->gid = pw.pw_gid;
    return 1;
}

static int find_group(const char *group, gid_t *gid)
{
    char buf[16384];
    struct group gr, *found = NULL;
    int rc = getgrnam_r(group, &gr, buf, sizeof buf, &found);
    if (!found)
        return rc == 0 || rc == ENOENT || rc == ESRCH ? 0 : -rc;
    *gid = gr.gr_gid;
    return 1;
}

int ritual__user_resolve(const char *spec, const char *what, struct ritual__user *u,
                         ritual_error *err)
{
    memset(u, 0, sizeof *u);
    u->gid = (gid_t)-1;
    char user[256];
    const char *colon = strchr(spec, ':');
    size_t n = colon ? (size_t)(colon - spec) : strlen(spec);
    if (n == 0 || n >= sizeof user || (colon && !colon[1]))
        return fail(err, -EINVAL, what, spec, "expected USER[:GROUP]");
    memcpy(user, spec, n);
    user[n] = '\0';
    unsigned long id = 0;
    bool numeric = parse_id(user, &id);
    int rc = find_user(user, numeric, (uid_t)id, u);
    if (rc < 0)
        return fail(err, rc, what, spec, "looking the user up: %s", ritual_strerror(rc));
    if (rc == 0 && !numeric)
        return fail(err, -EINVAL, what, spec, "no such user");
    if (rc == 0)
        u->uid = (uid_t)id; /* a number with no passwd entry: taken as it is */
    if (!colon)
        return 0;
    u->has_group = true;
    if (parse_id(colon + 1, &id)) {
        u->gid = (gid_t)id;
        return 0;
    }
    rc = find_group(colon + 1, &u->gid);
    if (rc < 0)
        return fail(err, rc, what, spec, "looking the group up: %s", ritual_strerror(rc));
    if (rc == 0)
        return fail(err, -EINVAL, what, spec, "no such group");
    return 0;
}

/* As ritual__user_resolve, and a group to become is known. */
static int resolve_target(const char *spec, struct ritual__user *u, ritual_error *err)
{
    int rc = ritual__user_resolve(spec, "user", u, err);
    if (rc == 0 && u->gid == (gid_t)-1)
        rc = fail(err, -EINVAL, "user", spec, "user %u has no entry: give its group, %u:GROUP",
                  (unsigned)u->uid, (unsigned)u->uid);
    return rc;
}

int ritual_user_check(const char *user_group, ritual_error *err)
{
    struct ritual__user u;
    return resolve_target(user_group, &u, err);
}

/* A call failed (errno): "user 'spec': setgid 33: Operation not permitted". */
static int sys_fail(ritual_error *err, const char *spec, const char *call, const char *arg)
{
    int code = -errno;
    return fail(err, code, "user", spec, "%s%s: %s", call, arg, ritual_strerror(code));
}

static bool already(const struct ritual__user *u)
{
    return getuid() == u->uid && geteuid() == u->uid && getgid() == u->gid && getegid() == u->gid;
}

/* What the kernel says now is what was asked, and root is gone for good. */
static int verify(const char *spec, const struct ritual__user *u, ritual_error *err)
{
    uid_t r, e, s;
    gid_t gr, ge, gs;
    if (getresuid(&r, &e, &s) < 0 || getresgid(&gr, &ge, &gs) < 0)
        return sys_fail(err, spec, "reading the ids back", "");
    if (r != u->uid || e != u->uid || s != u->uid || gr != u->gid || ge != u->gid || gs != u->gid)
        return fail(err, -EPERM, "user", spec,
                    "the ids did not change as asked (uid %u/%u/%u, gid %u/%u/%u)", (unsigned)r,
                    (unsigned)e, (unsigned)s, (unsigned)gr, (unsigned)ge, (unsigned)gs);
    if (u->uid != 0 && setuid(0) == 0)
        return fail(err, -EPERM, "user", spec,
                    "setuid(0) still works after the drop: refusing to go on");
    return 0;
}

int ritual_drop_privileges(const char *user_group, ritual_error *err)
{
    struct ritual__user u;
    int rc = resolve_target(user_group, &u, err);
    if (rc < 0 || already(&u))
        return rc;
    if (geteuid() != 0)
        return fail(err, -EPERM, "user", user_group, "%s (only root can change user)",
                    ritual_strerror(-EPERM));
    /* Root's own supplementary groups must not stay with the server. */
    if ((u.name[0] ? initgroups(u.name, u.gid) : setgroups(1, &u.gid)) < 0)
        return sys_fail(err, user_group, u.name[0] ? "initgroups" : "setgroups", "");
    char id[16];
    snprintf(id, sizeof id, " %u", (unsigned)u.gid);
    if (setgid(u.gid) < 0)
        return sys_fail(err, user_group, "setgid", id);
    snprintf(id, sizeof id, " %u", (unsigned)u.uid);
    if (setuid(u.uid) < 0)
        return sys_fail(err, user_group, "setuid", id);
    return verify(user_group, &u, err);
}
