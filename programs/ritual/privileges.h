/* privileges.h - `--user NAME[:GROUP]`: who the server runs as once it
 * holds everything only root could open (ports below 1024, socket files in
 * /run, key files), and `--socket-owner`'s names. */
#ifndef RITUAL_PRIVILEGES_H
#define RITUAL_PRIVILEGES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct priv_user {
    const char *spec; /* as given, for messages */
    char name[256];   /* the user's name ("" for a number with no entry) */
    uid_t uid;
    gid_t gid;
    bool has_group; /* GROUP given (else the user's primary group) */
};

/* Resolves "USER[:GROUP]" (names or numbers) with getpwnam_r/getgrnam_r:
 * without GROUP, the user's primary group. Returns 0, or -1 with why in
 * msg ("no such user", "no such group", "a user number with no entry
 * needs :GROUP"). */
int priv_resolve(const char *spec, struct priv_user *out, char *msg, size_t cap);

/* Becomes `u`: supplementary groups (initgroups for a named user, else
 * the group alone), setgid, setuid, each checked, then verified (the ids
 * are u's, and a dropped root cannot take root back). Nothing to do if the
 * process already runs as u (a binary upgrade of a dropped server runs the
 * same command line). Returns 0, or -1 with why in msg: then the caller
 * must not go on (it may be root still, or half-dropped). */
int priv_drop(const struct priv_user *u, char *msg, size_t cap);

#endif
