/* uring_setup.c - the io_uring backend's ring and its provided-buffer
 * ring: created, grown, torn down. See uring.h. */
#include "uring.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

void ritual__uring_destroy(ritual_loop *loop)
{
    struct uring_state *st = state(loop);
    if (!st)
        return;
    io_uring_queue_exit(&st->ring);
    if (st->br)
        munmap(st->br, BUF_MAX * sizeof(struct io_uring_buf));
    if (st->bufs)
        munmap(st->bufs, (size_t)BUF_MAX * BUF_SIZE);
    free(st->dirty);
    free(st->buf_used);
    free(st);
    ritual__backend_set_state(loop, NULL);
}

void ritual__uring_give_back(struct uring_state *st, unsigned bid)
{
    io_uring_buf_ring_add(st->br, st->bufs + (size_t)bid * BUF_SIZE, BUF_SIZE, (unsigned short)bid,
                          io_uring_buf_ring_mask(BUF_MAX), (int)st->returned++);
}

void ritual__uring_add_buffers(struct uring_state *st, uint32_t count)
{
    while (count-- > 0 && st->buf_count < BUF_MAX)
        ritual__uring_give_back(st, st->buf_count++);
}

static int setup_ring(struct uring_state *st)
{
    /* DEFER_TASKRUN (6.1) runs completions only inside io_uring_enter, in
     * batches; SINGLE_ISSUER (6.0) is its precondition and also what marks a
     * kernel with multishot recv. R_DISABLED: the loop's thread, not the
     * one creating it, becomes the single issuer. */
    unsigned base = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_R_DISABLED | IORING_SETUP_CQSIZE |
                    IORING_SETUP_SUBMIT_ALL;
    struct io_uring_params p = {.flags = base | IORING_SETUP_DEFER_TASKRUN,
                                .cq_entries = CQ_ENTRIES};
    int rc = io_uring_queue_init_params(SQ_ENTRIES, &st->ring, &p);
    if (rc == -EINVAL) {
        p = (struct io_uring_params){.flags = base | IORING_SETUP_COOP_TASKRUN,
                                     .cq_entries = CQ_ENTRIES};
        rc = io_uring_queue_init_params(SQ_ENTRIES, &st->ring, &p);
    }
    if (rc < 0)
        return rc == -EINVAL ? -ENOSYS : rc; /* EINVAL: older than 6.0 */
    unsigned need = IORING_FEAT_NODROP | IORING_FEAT_SUBMIT_STABLE | IORING_FEAT_EXT_ARG |
                    IORING_FEAT_FAST_POLL;
    if ((p.features & need) != need) {
        io_uring_queue_exit(&st->ring);
        return -ENOSYS;
    }
    return 0;
}

int ritual__uring_init(ritual_loop *loop)
{
#ifdef RITUAL_TEST_HOOKS
    /* For tests (a build option): behave as a kernel that refuses io_uring. */
    const char *fail = getenv("RITUAL_URING_FAIL");
    if (fail && *fail && strcmp(fail, "0") != 0)
        return -ENOSYS;
#endif
    struct uring_state *st = calloc(1, sizeof *st);
    if (!st)
        return -ENOMEM;
    int rc = setup_ring(st);
    if (rc < 0) {
        free(st);
        return rc;
    }
    ritual__backend_set_state(loop, st);
    st->br = mmap(NULL, BUF_MAX * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    st->bufs = mmap(NULL, (size_t)BUF_MAX * BUF_SIZE, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (st->br == MAP_FAILED || st->bufs == MAP_FAILED) {
        rc = -errno;
        if (st->br == MAP_FAILED)
            st->br = NULL;
        if (st->bufs == MAP_FAILED)
            st->bufs = NULL;
        ritual__uring_destroy(loop);
        return rc;
    }
    struct io_uring_buf_reg reg = {
        .ring_addr = (uintptr_t)st->br, .ring_entries = BUF_MAX, .bgid = BGID};
    /* The 16 bits after bgid are `pad` in liburing 2.3 and `flags` later. */
    uint16_t flags = IOU_PBUF_RING_INC;
    memcpy((char *)&reg + offsetof(struct io_uring_buf_reg, bgid) + sizeof reg.bgid, &flags,
           sizeof flags);
    rc = io_uring_register_buf_ring(&st->ring, &reg, 0);
    st->incremental = rc == 0;
    if (rc == -EINVAL) {
        flags = 0;
        memcpy((char *)&reg + offsetof(struct io_uring_buf_reg, bgid) + sizeof reg.bgid, &flags,
               sizeof flags);
        rc = io_uring_register_buf_ring(&st->ring, &reg, 0);
    }
    if (rc == 0 && st->incremental && !(st->buf_used = calloc(BUF_MAX, sizeof *st->buf_used)))
        rc = -ENOMEM;
    if (rc < 0) {
        ritual__uring_destroy(loop);
        return rc;
    }
    io_uring_buf_ring_init(st->br);
    ritual__uring_add_buffers(st, BUF_INITIAL);
    io_uring_buf_ring_advance(st->br, (int)st->returned);
    st->returned = 0;
    return 0;
}
