/* privileges.c - see privileges.h. The order is the one that works: the
 * groups while still root (setgroups needs CAP_SETGID), then the group id,
 * then the user id, which gives up the right to change either. */
#include "privileges.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
static int find_user(const char *user, bool numeric, uid_t uid, struct priv_user *u)
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

int priv_resolve(const char *spec, struct priv_user *out, char *msg, size_t cap)
{
    memset(out, 0, sizeof *out);
    out->spec = spec;
    char user[256];
    const char *colon = strchr(spec, ':');
    size_t n = colon ? (size_t)(colon - spec) : strlen(spec);
    if (n == 0 || n >= sizeof user || (colon && !colon[1])) {
        snprintf(msg, cap, "expected USER[:GROUP]");
        return -1;
    }
    memcpy(user, spec, n);
    user[n] = '\0';
    unsigned long id = 0;
    bool numeric = parse_id(user, &id);
    int rc = find_user(user, numeric, (uid_t)id, out);
    if (rc < 0) {
        snprintf(msg, cap, "looking the user up: %s", strerror(-rc));
        return -1;
    }
    if (rc == 0 && !numeric) {
        snprintf(msg, cap, "no such user");
        return -1;
    }
    if (rc == 0) { /* a number with no passwd entry: taken as it is */
        out->uid = (uid_t)id;
        if (!colon) {
            snprintf(msg, cap, "user %lu has no entry: give its group, %lu:GROUP", id, id);
            return -1;
        }
    }
    if (!colon)
        return 0;
    out->has_group = true;
    if (parse_id(colon + 1, &id)) {
        out->gid = (gid_t)id;
        return 0;
    }
    rc = find_group(colon + 1, &out->gid);
    if (rc < 0)
        snprintf(msg, cap, "looking the group up: %s", strerror(-rc));
    else if (rc == 0)
        snprintf(msg, cap, "no such group");
    if (rc <= 0)
        return -1;
    return 0;
}

static bool already(const struct priv_user *u)
{
    return getuid() == u->uid && geteuid() == u->uid && getgid() == u->gid && getegid() == u->gid;
}

/* What the kernel says now is what was asked, and root is gone for good. */
static int verify(const struct priv_user *u, char *msg, size_t cap)
{
    uid_t r, e, s;
    gid_t gr, ge, gs;
    if (getresuid(&r, &e, &s) < 0 || getresgid(&gr, &ge, &gs) < 0) {
        snprintf(msg, cap, "reading the ids back: %s", strerror(errno));
        return -1;
    }
    if (r != u->uid || e != u->uid || s != u->uid || gr != u->gid || ge != u->gid || gs != u->gid) {
        snprintf(msg, cap, "the ids did not change as asked (uid %u/%u/%u, gid %u/%u/%u)",
                 (unsigned)r, (unsigned)e, (unsigned)s, (unsigned)gr, (unsigned)ge, (unsigned)gs);
        return -1;
    }
    if (u->uid != 0 && setuid(0) == 0) {
        snprintf(msg, cap, "setuid(0) still works after the drop: refusing to go on");
        return -1;
    }
    return 0;
}

int priv_drop(const struct priv_user *u, char *msg, size_t cap)
{
    if (already(u))
        return 0;
    if (geteuid() != 0) {
        snprintf(msg, cap, "%s (only root can change user)", strerror(EPERM));
        return -1;
    }
    /* Root's own supplementary groups must not stay with the server. */
    int rc = u->name[0] ? initgroups(u->name, u->gid) : setgroups(1, &u->gid);
    if (rc < 0) {
        snprintf(msg, cap, "%s: %s", u->name[0] ? "initgroups" : "setgroups", strerror(errno));
        return -1;
    }
    if (setgid(u->gid) < 0) {
        snprintf(msg, cap, "setgid %u: %s", (unsigned)u->gid, strerror(errno));
        return -1;
    }
    if (setuid(u->uid) < 0) {
        snprintf(msg, cap, "setuid %u: %s", (unsigned)u->uid, strerror(errno));
        return -1;
    }
    return verify(u, msg, cap);
}
