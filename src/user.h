/* user.h - "USER[:GROUP]" into ids, for a unix: socket file's owner
 * (unix_socket.c) and for ritual_drop_privileges. Private to the library. */
#ifndef RITUAL_USER_H
#define RITUAL_USER_H

#include "ritual.h"

#include <stdbool.h>
#include <sys/types.h>

struct ritual__user {
    char name[256]; /* the user's name ("" for a number with no passwd entry) */
    uid_t uid;
    gid_t gid;      /* GROUP, else the user's primary group, else (gid_t)-1 */
    bool has_group; /* GROUP given */
};

/* Resolves `spec`, names or numbers, with getpwnam_r/getpwuid_r and
 * getgrnam_r; a number with no passwd entry is taken as it is (gid -1
 * without GROUP). Returns 0, or -EINVAL (malformed, no such user or group)
 * or the lookup's errno, with `err` saying "<what> '<spec>': why". */
int ritual__user_resolve(const char *spec, const char *what, struct ritual__user *u,
                         ritual_error *err);

#endif
