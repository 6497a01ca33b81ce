/* beneath: the fallback of programs/ritual/beneath.c resolves every path as
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) does. Random trees of
 * directories, files and symlinks (relative and absolute targets, "." and
 * ".." in them, chains and loops) under a root with secrets beside it, and
 * random paths through them: each opened both ways, and the two must give
 * the same file (device and inode) or the same errno. No server: beneath.c
 * is compiled from the program's source, and the runner's end-of-case check
 * catches a descriptor the fallback leaked. Skipped where openat2 itself is
 * missing (there is nothing to compare with). */
#include "beneath.h"
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TREES 20
#define LINKS 12
#define PATHS 2000

static const char *const dirs[] = {"", "d/", "d/e/", "d/e/f/", "g/"};
static const char *const pool[] = {"..", ".",  "d",  "e",  "f",  "g",  "x",  "y",  "z", "s0",  "s1",
                                   "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "",  "nope"};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static uint64_t rng;

static unsigned pick(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

/* 1 to `max` components from the pool, joined by slashes, into `out`. */
static void random_path(char *out, size_t cap, unsigned max)
{
    unsigned n = 1 + pick(max);
    size_t len = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < n; i++)
        len +=
            (size_t)snprintf(out + len, cap - len, "%s%s", i ? "/" : "", pool[pick(COUNT(pool))]);
    if (pick(8) == 0)
        snprintf(out + len, cap - len, "/"); /* a trailing slash */
}

/* Opens `rel` under `root_fd` with `flags`, the way `fallback` says;
 * returns the fd or -errno. */
static int open_as(int root_fd, const char *rel, int flags, int fallback)
{
    if (fallback)
        ASSERT_EQ(setenv("RITUAL_HTTP_NO_OPENAT2", "1", 1), 0);
    else
        ASSERT_EQ(unsetenv("RITUAL_HTTP_NO_OPENAT2"), 0);
    ASSERT_EQ(open_beneath_init(root_fd), fallback);
    return open_beneath(root_fd, rel, flags);
}

/* Compares both ways on PATHS random paths through one random tree under
 * `root` (which it fills); adds to the counts. */
static void compare_tree(unsigned tree, const char *base, const char *root, unsigned counts[3])
{
    char path[512], target[256], rel[256];
    int root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    SYSCHECK(root_fd);
    rng = 0x9e3779b97f4a7c15ull * (tree + 1);
    dir_make_at(root, "d");
    dir_make_at(root, "d/e");
    dir_make_at(root, "d/e/f");
    dir_make_at(root, "g");
    file_write_at(root, "x", "x", 1);
    file_write_at(root, "d/y", "y", 1);
    file_write_at(root, "d/e/z", "z", 1);
    for (unsigned i = 0; i < LINKS; i++) {
        random_path(target, sizeof target, 4);
        if (target[0] == '\0' || pick(10) == 0) /* absolute: the root's parent, or /etc */
            snprintf(target, sizeof target, "%s", pick(2) ? base : "/etc");
        snprintf(path, sizeof path, "%s/%ss%u", root, dirs[pick(COUNT(dirs))], i % 10);
        if (symlink(target, path) < 0 && errno != EEXIST)
            FAIL("symlink %s -> %s: %s", path, target, strerror(errno));
    }
    for (unsigned i = 0; i < PATHS; i++) {
        random_path(rel, sizeof rel, 6);
        /* As the file cache opens, and now and then a directory asked for. */
        int flags = O_RDONLY | O_NONBLOCK | (pick(4) == 0 ? O_DIRECTORY : 0);
        int a = open_as(root_fd, rel, flags, 0);
        int b = open_as(root_fd, rel, flags, 1);
        if (a >= 0 && b >= 0) {
            struct stat sa, sb;
            SYSCHECK(fstat(a, &sa));
            SYSCHECK(fstat(b, &sb));
            if (sa.st_dev != sb.st_dev || sa.st_ino != sb.st_ino)
                FAIL("tree %u, \"%s\": openat2 and the fallback opened different files", tree, rel);
            counts[0]++;
        } else if (a != b) {
            FAIL("tree %u, \"%s\": openat2 %s, the fallback %s", tree, rel,
                 a >= 0 ? "opened it" : strerror(-a), b >= 0 ? "opened it" : strerror(-b));
        } else if (a == -EXDEV || a == -ELOOP) {
            counts[1]++;
        } else {
            counts[2]++;
        }
        if (a >= 0)
            close(a);
        if (b >= 0)
            close(b);
    }
    close(root_fd);
}

static void random_trees(void)
{
    char base[64], root[96];
    temp_dir_make(base, sizeof base);
    file_write_at(base, "secret", "SECRET\n", 7);
    dir_make_at(base, "probe");
    snprintf(root, sizeof root, "%s/probe", base);
    int probe_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    SYSCHECK(probe_fd);
    ASSERT_EQ(unsetenv("RITUAL_HTTP_NO_OPENAT2"), 0);
    int missing = open_beneath_init(probe_fd);
    close(probe_fd);
    if (missing) {
        note("openat2 is missing here: nothing to compare the fallback with");
        remove_tree(base);
        return;
    }
    unsigned counts[3] = {0, 0, 0}; /* opened, refused (EXDEV, ELOOP), other errors */
    for (unsigned tree = 0; tree < TREES; tree++) {
        char name[32];
        snprintf(name, sizeof name, "root%u", tree);
        dir_make_at(base, name);
        snprintf(root, sizeof root, "%s/%s", base, name);
        compare_tree(tree, base, root, counts);
    }
    remove_tree(base);
    note("%d paths in %d trees: the same answer both ways (%u opened, %u refused as a way out "
         "or a loop, %u other errors)",
         TREES * PATHS, TREES, counts[0], counts[1], counts[2]);
}

/* O_PATH, as the open-file cache's stamps may use it: the root itself, and
 * a symlink as the last component followed to its target, both ways
 * (openat2 refuses O_PATH with O_NOCTTY; O_PATH | O_NOFOLLOW opens a link
 * itself, which the fallback must not return). A walk too deep, or too
 * long, is refused by the fallback. */
static void path_opens(void)
{
    char base[64], root[96];
    temp_dir_make(base, sizeof base);
    dir_make_at(base, "root");
    snprintf(root, sizeof root, "%s/root", base);
    dir_make_at(root, "d");
    file_write_at(root, "d/file", "x", 1);
    int root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    SYSCHECK(root_fd);
    SYSCHECK(symlinkat("d/file", root_fd, "l"));
    ASSERT_EQ(unsetenv("RITUAL_HTTP_NO_OPENAT2"), 0);
    int missing = open_beneath_init(root_fd) != 0; /* then only the fallback is tried */
    for (int fallback = missing; fallback < 2; fallback++) {
        int fd = open_as(root_fd, ".", O_PATH | O_DIRECTORY, fallback);
        ASSERT(fd >= 0);
        close(fd);
        fd = open_as(root_fd, "l", O_PATH, fallback);
        ASSERT(fd >= 0);
        struct stat st;
        SYSCHECK(fstat(fd, &st));
        ASSERT(S_ISREG(st.st_mode)); /* the target, not the link */
        close(fd);
    }
    /* 128 directories below the root are walked; 129 are not. */
    char deep[400] = "";
    for (int i = 0; i < 129; i++) {
        strcat(deep, "n");
        SYSCHECK(mkdirat(root_fd, deep, 0755));
        strcat(deep, "/");
    }
    char path[400];
    snprintf(path, sizeof path, "%.*s", 128 * 2, deep);
    int fd = open_as(root_fd, path, O_RDONLY | O_DIRECTORY, 1);
    ASSERT(fd >= 0);
    close(fd);
    ASSERT_EQ(open_as(root_fd, deep, O_RDONLY | O_DIRECTORY, 1), -ENAMETOOLONG);
    /* Three links of 1,500 "./" each: 4,500 components, past 4,096. */
    static const char *const names[] = {"s0", "s1", "s2"};
    static const char *const ends[] = {"s1", "s2", "d/file"};
    static char target[3100];
    for (int k = 0; k < 3; k++) {
        target[0] = '\0';
        for (int i = 0; i < 1500; i++)
            strcat(target, "./");
        strcat(target, ends[k]);
        SYSCHECK(symlinkat(target, root_fd, names[k]));
    }
    fd = open_as(root_fd, "s2", O_RDONLY, 1);
    ASSERT(fd >= 0);
    close(fd);
    ASSERT_EQ(open_as(root_fd, "s0", O_RDONLY, 1), -ELOOP);
    close(root_fd);
    remove_tree(base);
    note("O_PATH opens follow a last symlink both ways; the fallback refuses 129 directories "
         "deep and a walk of 4,500 components");
}

TEST_CASES(CASE(random_trees), CASE(path_opens))
