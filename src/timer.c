/* timer.c - a binary min-heap of deadlines on the monotonic clock.
 *
 * Connections keep their idle deadline lazily: activity only stamps
 * `last_active`, and when the heap entry comes due the connection works out
 * its real deadline and reschedules itself. So the hot path never touches the
 * heap, and a heap operation (O(log n)) happens at most once per timeout. */
#include "conn.h"
#include "listener.h"
#include "loop.h"
#include "timer.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#define NOT_IN_HEAP UINT32_MAX

uint64_t ritual__clock_ns(void)
{
    struct timespec ts;
    /* CLOCK_MONOTONIC cannot fail with a valid clock id and pointer. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#define FAR_FUTURE_NS (UINT64_MAX / 4) /* ~146 years past boot */

uint64_t ritual__us_to_ns(uint64_t us)
{
    return us > FAR_FUTURE_NS / 1000 ? FAR_FUTURE_NS : us * 1000;
}

uint64_t ritual__ms_to_ns(uint64_t ms)
{
    return ms > FAR_FUTURE_NS / RITUAL_NS_PER_MS ? FAR_FUTURE_NS : ms * RITUAL_NS_PER_MS;
}

static void heap_place(ritual_loop *loop, uint32_t i, struct ritual_heap_entry entry)
{
    loop->heap[i] = entry;
    entry.node->index = i;
}

static void sift_up(ritual_loop *loop, uint32_t i)
{
    struct ritual_heap_entry entry = loop->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (loop->heap[parent].deadline <= entry.deadline)
            break;
        heap_place(loop, i, loop->heap[parent]);
        i = parent;
    }
    heap_place(loop, i, entry);
}

static void sift_down(ritual_loop *loop, uint32_t i)
{
    struct ritual_heap_entry entry = loop->heap[i];
    for (;;) {
        uint32_t child = 2 * i + 1;
        if (child >= loop->heap_len)
            break;
        if (child + 1 < loop->heap_len &&
            loop->heap[child + 1].deadline < loop->heap[child].deadline)
            child++;
        if (entry.deadline <= loop->heap[child].deadline)
            break;
        heap_place(loop, i, loop->heap[child]);
        i = child;
    }
    heap_place(loop, i, entry);
}

void ritual__timer_node_init(struct ritual_timer_node *node, uint32_t kind)
{
    node->index = NOT_IN_HEAP;
    node->kind = kind;
}

void ritual__timer_node_cancel(ritual_loop *loop, struct ritual_timer_node *node)
{
    uint32_t i = node->index;
    if (i == NOT_IN_HEAP)
        return;
    node->index = NOT_IN_HEAP;
    struct ritual_heap_entry last = loop->heap[--loop->heap_len];
    if (i == loop->heap_len)
        return;
    heap_place(loop, i, last);
    if (i > 0 && loop->heap[(i - 1) / 2].deadline > last.deadline)
        sift_up(loop, i);
    else
        sift_down(loop, i);
}

static int heap_grow(ritual_loop *loop)
{
    uint32_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
    struct ritual_heap_entry *heap = realloc(loop->heap, cap * sizeof *heap);
    if (!heap)
        return -ENOMEM;
    loop->heap = heap;
    loop->heap_cap = cap;
    return 0;
}

int ritual__timer_node_schedule(ritual_loop *loop, struct ritual_timer_node *node,
                                uint64_t deadline)
{
    /* Scheduled from a timer callback for a moment already due: the next
     * iteration, or the run under way would pick it up again, forever. */
    if (loop->timers_running && deadline <= loop->now)
        deadline = loop->now + 1;
    if (node->index != NOT_IN_HEAP) {
        uint64_t old = loop->heap[node->index].deadline;
        loop->heap[node->index].deadline = deadline;
        if (deadline < old)
            sift_up(loop, node->index);
        else
            sift_down(loop, node->index);
        return 0;
    }
    if (loop->heap_len == loop->heap_cap && heap_grow(loop) < 0)
        return -ENOMEM;
    heap_place(loop, loop->heap_len, (struct ritual_heap_entry){deadline, node});
    loop->heap_len++;
    sift_up(loop, node->index);
    return 0;
}

int64_t ritual__timers_next_timeout(ritual_loop *loop)
{
    if (loop->heap_len == 0)
        return -1;
    uint64_t deadline = loop->heap[0].deadline;
    return deadline <= loop->now ? 0 : (int64_t)(deadline - loop->now);
}

static void user_timer_fired(ritual_loop *loop, ritual_timer *timer, uint64_t deadline)
{
    if (timer->repeat_ns) {
        /* Keep the period exact; if the loop fell behind, skip the missed
         * periods rather than firing in a burst. */
        uint64_t next = deadline + timer->repeat_ns;
        if (next <= loop->now)
            next = loop->now + timer->repeat_ns;
        /* Cannot fail: the node's slot was freed just before. */
        (void)ritual__timer_node_schedule(loop, &timer->node, next);
    }
    timer->cb(timer, timer->data);
}

void ritual__timers_run(ritual_loop *loop)
{
    /* Only timers due as of this iteration's clock run; one scheduled by a
     * callback for "now" waits for the next iteration, so a zero repeat
     * cannot starve I/O. */
    uint64_t now = loop->now;
    loop->timers_running = true;
    while (loop->heap_len > 0 && loop->heap[0].deadline <= now) {
        struct ritual_heap_entry due = loop->heap[0];
        struct ritual_timer_node *node = due.node;
        ritual__timer_node_cancel(loop, node);
        switch (node->kind) {
        case RITUAL_TIMER_USER:
            user_timer_fired(loop, ritual_container_of(node, ritual_timer, node), due.deadline);
            break;
        case RITUAL_TIMER_CONN:
            ritual__conn_timer_fired(ritual_container_of(node, ritual_conn, timer));
            break;
        case RITUAL_TIMER_LOOP:
            if (node == &loop->shutdown_timer)
                ritual__loop_drain_deadline(loop);
            else
                ritual__listener_retry_fired(
                    ritual_container_of(node, ritual_listener, retry_timer));
            break;
        }
    }
    loop->timers_running = false;
}

void ritual__timers_free(ritual_loop *loop)
{
    while (!ritual_list_empty(&loop->timers))
        ritual_timer_free(ritual_container_of(loop->timers.next, ritual_timer, link));
    free(loop->heap);
    loop->heap = NULL;
    loop->heap_len = loop->heap_cap = 0;
}

/* ------------------------------------------------------------- public API */

ritual_timer *ritual_timer_new(ritual_loop *loop, ritual_timer_cb cb, void *data)
{
    ritual_timer *timer = calloc(1, sizeof *timer);
    if (!timer)
        return NULL;
    ritual__timer_node_init(&timer->node, RITUAL_TIMER_USER);
    ritual_list_add_tail(&loop->timers, &timer->link);
    timer->loop = loop;
    timer->cb = cb;
    timer->data = data;
    return timer;
}

int ritual_timer_start_us(ritual_timer *timer, uint64_t timeout_us, uint64_t repeat_us)
{
    /* Read the clock now rather than use the iteration's cached time, which
     * may be older than this call: the deadline must not come early. */
    uint64_t deadline = ritual__clock_ns() + ritual__us_to_ns(timeout_us);
    timer->repeat_ns = ritual__us_to_ns(repeat_us);
    return ritual__timer_node_schedule(timer->loop, &timer->node, deadline);
}

int ritual_timer_start(ritual_timer *timer, uint64_t timeout_ms, uint64_t repeat_ms)
{
    uint64_t cap = FAR_FUTURE_NS / 1000000;
    return ritual_timer_start_us(timer, timeout_ms > cap ? FAR_FUTURE_NS / 1000 : timeout_ms * 1000,
                                 repeat_ms > cap ? FAR_FUTURE_NS / 1000 : repeat_ms * 1000);
}

void ritual_timer_stop(ritual_timer *timer)
{
    ritual__timer_node_cancel(timer->loop, &timer->node);
}

int ritual_timer_active(const ritual_timer *timer)
{
    return timer->node.index != NOT_IN_HEAP;
}

void ritual_timer_free(ritual_timer *timer)
{
    if (!timer)
        return;
    ritual_timer_stop(timer);
    ritual_list_del(&timer->link);
    free(timer);
}
