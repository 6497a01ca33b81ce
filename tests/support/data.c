/* data.c - payloads that can be checked at any offset, and files. See support.h. */
#include "support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------- payloads */

void prng_seed(struct prng *r, uint64_t seed)
{
    r->state = seed ? seed : 0x9E3779B97F4A7C15ull;
}

uint64_t prng_next(struct prng *r)
{
    uint64_t x = r->state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

uint64_t prng_range(struct prng *r, uint64_t lo, uint64_t hi)
{
    return lo + prng_next(r) % (hi - lo + 1);
}

void prng_fill(struct prng *r, void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n > 0) {
        uint64_t v = prng_next(r);
        size_t k = n < sizeof v ? n : sizeof v;
        memcpy(p, &v, k);
        p += k;
        n -= k;
    }
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

void pattern_fill(uint64_t seed, uint64_t offset, void *buf, size_t n)
{
    unsigned char *p = buf;
    uint64_t key = splitmix64(seed);
    while (n > 0) {
        uint64_t word = splitmix64(key ^ (offset / 8));
        unsigned char bytes[8];
        memcpy(bytes, &word, sizeof bytes);
        size_t skip = (size_t)(offset % 8);
        size_t k = 8 - skip < n ? 8 - skip : n;
        memcpy(p, bytes + skip, k);
        p += k;
        n -= k;
        offset += k;
    }
}

size_t pattern_mismatch(uint64_t seed, uint64_t offset, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    unsigned char expect[16384];
    size_t done = 0;
    while (done < n) {
        size_t k = n - done < sizeof expect ? n - done : sizeof expect;
        pattern_fill(seed, offset + done, expect, k);
        if (memcmp(expect, p + done, k) != 0) {
            for (size_t i = 0; i < k; i++)
                if (expect[i] != p[done + i])
                    return done + i;
        }
        done += k;
    }
    return n;
}

/* ---------------------------------------------------------------- files */

/* Reads a whole file into a NUL-terminated malloc'd buffer. */
char *file_read(const char *path, size_t *len_out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *len_out = 0;
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    ASSERT(buf != NULL);
    for (;;) {
        if (len + 1 == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            ASSERT(buf != NULL);
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        SYSCHECK(n);
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    *len_out = len;
    return buf;
}

/* Directories made by temp_dir_make, removed at exit if the test fails
 * before it removes them itself. */
#define MAX_TEMP_DIRS 8
static char temp_dirs[MAX_TEMP_DIRS][32];

static int remove_quietly(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    remove(path);
    return 0;
}

static void remove_temp_dirs(void)
{
    for (int i = 0; i < MAX_TEMP_DIRS; i++)
        if (temp_dirs[i][0] != '\0')
            nftw(temp_dirs[i], remove_quietly, 16, FTW_DEPTH | FTW_PHYS);
}

void temp_dir_make(char *path, size_t cap)
{
    static const char pattern[] = "/tmp/ritual-test-XXXXXX";
    static int registered;
    ASSERT_GE(cap, sizeof pattern);
    memcpy(path, pattern, sizeof pattern);
    if (mkdtemp(path) == NULL)
        FAIL("mkdtemp(%s): %s", pattern, strerror(errno));
    if (!registered) {
        atexit(remove_temp_dirs);
        registered = 1;
    }
    for (int i = 0; i < MAX_TEMP_DIRS; i++) {
        if (temp_dirs[i][0] == '\0') {
            memcpy(temp_dirs[i], path, sizeof pattern);
            break;
        }
    }
}

static void join_path(char *out, size_t cap, const char *dir, const char *rel)
{
    int n = snprintf(out, cap, "%s/%s", dir, rel);
    if (n < 0 || (size_t)n >= cap)
        FAIL("path too long: %s/%s", dir, rel);
}

void file_write_at(const char *dir, const char *rel, const void *data, size_t len)
{
    char path[4096];
    join_path(path, sizeof path, dir, rel);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        FAIL("open %s: %s", path, strerror(errno));
    const char *p = data;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, p + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            FAIL("write %s: %s", path, strerror(errno));
        done += (size_t)n;
    }
    SYSCHECK(close(fd));
}

void file_write_pattern_at(const char *dir, const char *rel, uint64_t seed, size_t len)
{
    char *data = malloc(len ? len : 1);
    ASSERT(data != NULL);
    pattern_fill(seed, 0, data, len);
    file_write_at(dir, rel, data, len);
    free(data);
}

void dir_make_at(const char *dir, const char *rel)
{
    char path[4096];
    join_path(path, sizeof path, dir, rel);
    if (mkdir(path, 0755) < 0)
        FAIL("mkdir %s: %s", path, strerror(errno));
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    if (remove(path) < 0)
        FAIL("remove %s: %s", path, strerror(errno));
    return 0;
}

void remove_tree(const char *path)
{
    if (nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS) < 0)
        FAIL("nftw %s: %s", path, strerror(errno));
    for (int i = 0; i < MAX_TEMP_DIRS; i++)
        if (strcmp(temp_dirs[i], path) == 0)
            temp_dirs[i][0] = '\0';
}
