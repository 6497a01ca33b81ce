/* A server's workers all run on one backend. An io_uring ring is memory (a
 * 64 MiB buffer reservation and the rings' own pages), so an address-space
 * limit can leave room for some rings and not one more: then the workers
 * that got one must not run io_uring while the others run epoll, with two
 * sets of bounds and costs under one name. The limit here leaves room for
 * the control loop's ring and one worker's, not for four. */
#include "libtest.h"

#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

#define WORKERS 4

/* The process's address space, in bytes (the first field of statm). */
static size_t vm_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    ASSERT(f != NULL);
    unsigned long pages = 0;
    ASSERT_EQ(fscanf(f, "%lu", &pages), 1);
    fclose(f);
    return pages * (size_t)sysconf(_SC_PAGESIZE);
}

struct logbook {
    int lines;
    char last[256];
};

static void log_line(void *data, ritual_log_level level, const char *line)
{
    (void)level;
    struct logbook *b = data;
    b->lines++;
    snprintf(b->last, sizeof b->last, "%s", line);
    note("log: %s", line);
}

static void workers_share_one_backend(void)
{
    /* How much one loop takes, on the backend this run uses. */
    size_t before = vm_bytes();
    ritual_loop *probe = lt_loop();
    size_t per_loop = vm_bytes() - before;
    const char *backend = ritual_loop_backend_name(probe);
    ritual_loop_free(probe);
    note("one loop on %s takes %zu KiB of address space", backend, per_loop / 1024);

    struct logbook book = {0};
    ritual_server_options opts = {
        .workers = WORKERS,
        .loop = {.log_level = RITUAL_LOG_INFO, .log_fn = log_line, .log_data = &book}};
    struct rlimit old;
    SYSCHECK(getrlimit(RLIMIT_AS, &old));
    if (strcmp(backend, "io_uring") == 0) {
        /* Room for the control loop's and one worker's, plus slack for
         * everything else a loop allocates; not for four. */
        struct rlimit lim = {.rlim_cur = vm_bytes() + per_loop * 5 / 2, .rlim_max = old.rlim_max};
        SYSCHECK(setrlimit(RLIMIT_AS, &lim));
    }
    ritual_error err;
    ritual_server *srv = ritual_server_new(&opts, &err);
    SYSCHECK(setrlimit(RLIMIT_AS, &old));
    if (!srv)
        FAIL("ritual_server_new: %s", err.message);

    const char *first = ritual_loop_backend_name(ritual_server_loop(srv, 0));
    for (unsigned i = 0; i < WORKERS; i++) {
        const char *name = ritual_loop_backend_name(ritual_server_loop(srv, i));
        note("worker %u: %s", i, name);
        if (strcmp(name, first) != 0)
            FAIL("worker 0 runs on %s and worker %u on %s", first, i, name);
    }
    if (strcmp(backend, "io_uring") == 0) {
        /* The limit did refuse a ring, and the server said what it did. */
        ASSERT(strcmp(first, "epoll") == 0);
        ASSERT(strstr(book.last, "all of them run on epoll") != NULL);
    }
    ritual_server_free(srv);
}

TEST_CASES(CASE(workers_share_one_backend))
