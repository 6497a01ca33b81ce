/* beneath.c - opening a file below the document root with no way out of it;
 * see beneath.h.
 *
 * The fast path is one openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS): the
 * kernel resolves, and refuses "..", absolute paths and symlinks leading out.
 * Where openat2 is missing (kernels before 5.6, seccomp profiles that answer
 * ENOSYS or EPERM for it, such as Docker's before 20.10, and valgrind) the
 * same resolution is done here, one component at a time, with openat and
 * O_NOFOLLOW: the kernel never follows a symlink nor a "..", both are done
 * by this file against a stack of directory descriptors it holds, so no
 * step can leave the root. The fallback costs a syscall per component (and
 * two per symlink): it is for where there is no choice, not a second design.
 *
 * Which path is used is process-wide state, set once at start by
 * open_beneath_init before any worker exists (a program may hold such
 * state; the library may not). */
#include "beneath.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_SYMLINKS 40 /* the kernel's limit, ELOOP past it */
/* Directories held at once (one descriptor each): a path deeper than this
 * below the root is refused (ENAMETOOLONG), so that one request cannot take
 * a worker's share of the descriptor limit; no document root goes so deep. */
#define MAX_DEPTH 128
/* Components walked in one open, symlinks' included: a link that expands
 * to "a/../" over and over costs a worker this many opens at most (ELOOP
 * past it), where the kernel's walk would cost it little. */
#define MAX_STEPS 4096

/* Set once by open_beneath_init, read by the workers it precedes: whether
 * the fallback runs, and why (open_beneath_fallback). */
static bool no_openat2;
static int fallback_why;

static int openat2_beneath(int dir_fd, const char *rel, int flags)
{
    struct open_how how;
    memset(&how, 0, sizeof how);
    /* openat2 refuses O_PATH with any flag but O_DIRECTORY, O_NOFOLLOW and
     * O_CLOEXEC (EINVAL), where openat ignores the others. */
    how.flags = (uint64_t)(flags | O_CLOEXEC | ((flags & O_PATH) ? 0 : O_NOCTTY));
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    long fd;
    do
        fd = syscall(SYS_openat2, dir_fd, rel, &how, sizeof how);
    while (fd < 0 && errno == EINTR);
    return fd < 0 ? -errno : (int)fd;
}

int open_beneath_init(int root_fd)
{
    const char *force = getenv("RITUAL_HTTP_NO_OPENAT2");
    if (force && force[0] && strcmp(force, "0") != 0) {
        no_openat2 = true;
        fallback_why = 1;
        return 1;
    }
    /* The root itself, as O_PATH: this open needs no permission at all
     * (O_PATH skips the open's access check and "." alone is looked up
     * without a search check), so any failure is the syscall's, not a
     * file's: ENOSYS from an old kernel or valgrind, EPERM, EACCES or
     * ENOSYS from a seccomp filter or an LSM. The fallback is always safe,
     * so any failure takes it; once the probe passed, a later EPERM is a
     * real one about the file asked for, and answered as such. */
    int fd = openat2_beneath(root_fd, ".", O_PATH | O_DIRECTORY);
    if (fd >= 0) {
        close(fd);
        no_openat2 = false;
        fallback_why = 0;
        return 0;
    }
    no_openat2 = true;
    fallback_why = fd;
    return fd;
}

int open_beneath_fallback(void)
{
    return fallback_why;
}

/* The resolution state: the directories walked down into, each opened
 * O_PATH by this file (depth 0 is the caller's dir_fd, never closed). */
struct walk {
    int stack[MAX_DEPTH];
    size_t depth;
    int root_fd;
};

static int walk_cur(const struct walk *w)
{
    return w->depth == 0 ? w->root_fd : w->stack[w->depth - 1];
}

static void walk_close(struct walk *w)
{
    while (w->depth > 0)
        close(w->stack[--w->depth]);
}

/* openat, again on EINTR (an open of a FIFO or on a network file system may
 * be interrupted). */
static int openat_retry(int dir_fd, const char *name, int flags)
{
    int fd;
    do
        fd = openat(dir_fd, name, flags);
    while (fd < 0 && errno == EINTR);
    return fd < 0 ? -errno : fd;
}

static bool is_symlink(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISLNK(st.st_mode);
}

/* When an open with O_NOFOLLOW failed with `err` on `name`: if `name` is a
 * symlink, its target into `target` (NUL-terminated) and its length;
 * otherwise `err`, the answer. A symlink in procfs is refused with -ELOOP
 * without being read: its target may be a magic link's ("/proc/self/fd/3",
 * "pipe:[123]") which RESOLVE_NO_MAGICLINKS refuses; ordinary procfs links
 * are refused with them, which no document root needs. */
static long read_link(int dir_fd, const char *name, int err, char *target, size_t cap)
{
    if (err != -ELOOP && err != -ENOTDIR)
        return err;
    ssize_t n = readlinkat(dir_fd, name, target, cap);
    if (n < 0)
        return errno == EINVAL ? err : -errno; /* EINVAL: not a symlink */
    if ((size_t)n >= cap)
        return -ENAMETOOLONG;
    target[n] = '\0';
    struct statfs fs;
    if (fstatfs(dir_fd, &fs) < 0)
        return -errno;
    if (fs.f_type == PROC_SUPER_MAGIC)
        return -ELOOP;
    return n;
}

/* The fallback: RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS done by hand. The
 * path still to resolve is kept at the end of `path` (from `pos` to the
 * end), so that a symlink's target is put in front of the rest with one
 * copy; PATH_MAX in all, as the kernel allows. Nothing is allocated. */
static int walk_beneath(int dir_fd, const char *rel, int flags)
{
    size_t len = strlen(rel);
    if (len == 0)
        return -ENOENT;
    if (rel[0] == '/')
        return -EXDEV; /* RESOLVE_BENEATH: an absolute path is refused */
    if (len >= PATH_MAX)
        return -ENAMETOOLONG;
    if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE)
        return -EINVAL; /* only opens of what exists are done here */
    bool nofollow = flags & O_NOFOLLOW;
    int last_flags = flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY;

    char path[PATH_MAX], target[PATH_MAX], name[NAME_MAX + 1];
    size_t end = sizeof path, pos = end - len;
    memcpy(path + pos, rel, len);
    struct walk w; /* the stack left uninitialised: not cleared per open */
    w.depth = 0;
    w.root_fd = dir_fd;
    int links = 0, steps = 0, rc;

    for (;;) {
        while (pos < end && path[pos] == '/')
            pos++;
        if (pos == end) /* "", "." or ".." last, or a trailing slash: */
            break;      /* the directory reached is what is opened */
        size_t start = pos;
        while (pos < end && path[pos] != '/')
            pos++;
        size_t nlen = pos - start;
        bool last = pos == end; /* no slash after it: not required a directory */
        if (++steps > MAX_STEPS) {
            rc = -ELOOP;
            goto out;
        }
        if (nlen == 1 && path[start] == '.')
            continue;
        if (nlen == 2 && path[start] == '.' && path[start + 1] == '.') {
            if (w.depth == 0) {
                rc = -EXDEV; /* above the root */
                goto out;
            }
            close(w.stack[--w.depth]);
            continue;
        }
        if (nlen > NAME_MAX) {
            rc = -ENAMETOOLONG;
            goto out;
        }
        memcpy(name, path + start, nlen);
        name[nlen] = '\0';

        int cur = walk_cur(&w);
        int fd = last ? openat_retry(cur, name, last_flags)
                      : openat_retry(cur, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0 && last && (flags & (O_PATH | O_NOFOLLOW)) == O_PATH && is_symlink(fd)) {
            /* O_PATH | O_NOFOLLOW opens a symlink itself: followed here. */
            close(fd);
            fd = -ELOOP;
        }
        if (fd >= 0) {
            if (last) {
                walk_close(&w);
                return fd;
            }
            if (w.depth == MAX_DEPTH) {
                close(fd);
                rc = -ENAMETOOLONG;
                goto out;
            }
            w.stack[w.depth++] = fd;
            continue;
        }
        if (last && nofollow) { /* the caller's O_NOFOLLOW: not followed */
            rc = fd;
            goto out;
        }
        long n = read_link(cur, name, fd, target, sizeof target);
        if (n < 0) {
            rc = (int)n;
            goto out;
        }
        /* A symlink: its target goes in front of what followed its name
         * (the slash included: "link/x" becomes "target/x"), and is
         * resolved from the directory holding the link, as the kernel
         * would. */
        if (++links > MAX_SYMLINKS) {
            rc = -ELOOP;
            goto out;
        }
        if (n == 0) {
            rc = -ENOENT; /* an empty target names nothing */
            goto out;
        }
        if (target[0] == '/') {
            rc = -EXDEV; /* RESOLVE_BENEATH: absolute targets are refused */
            goto out;
        }
        if ((size_t)n > pos) { /* target and rest over PATH_MAX */
            rc = -ENAMETOOLONG;
            goto out;
        }
        pos -= (size_t)n;
        memcpy(path + pos, target, (size_t)n);
    }
    /* The path ended on a directory ("a/", "a/.", "."): that directory,
     * with the caller's flags. */
    rc = openat_retry(walk_cur(&w), ".", flags | O_CLOEXEC | O_NOCTTY);
out:
    walk_close(&w);
    return rc;
}

int open_beneath(int dir_fd, const char *rel, int flags)
{
    if (!no_openat2) {
        int fd = openat2_beneath(dir_fd, rel, flags);
        /* ENOSYS is never a file's answer: the fallback, even without the
         * start-up probe (a caller that skipped open_beneath_init). EPERM
         * is a file's answer once the probe found openat2 working. */
        if (fd != -ENOSYS)
            return fd;
    }
    return walk_beneath(dir_fd, rel, flags);
}
