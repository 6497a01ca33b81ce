/* timer.h - the loop's timer heap, shared by user timers, connection
 * timeouts and the shutdown deadline; and the clock. Private to the library. */
#ifndef RITUAL_TIMER_INTERNAL_H
#define RITUAL_TIMER_INTERNAL_H

#include "ritual.h"
#include "ritual_list.h"

#include <stdint.h>

#define RITUAL_NS_PER_MS 1000000ull

/* The monotonic clock, in nanoseconds. */
uint64_t ritual__clock_ns(void);
/* Milliseconds (or microseconds) to nanoseconds, saturating far beyond any
 * real deadline instead of wrapping into the past. */
uint64_t ritual__ms_to_ns(uint64_t ms);
uint64_t ritual__us_to_ns(uint64_t us);

/* What an object embeds to be in the loop's timer heap: its slot there
 * (UINT32_MAX when not scheduled). The owner is found by `kind` and
 * container_of. The deadline lives in the heap entry, next to the other
 * deadlines the heap compares, so the owner carries only 8 bytes. */
enum ritual_timer_kind { RITUAL_TIMER_USER = 1, RITUAL_TIMER_CONN, RITUAL_TIMER_LOOP };

struct ritual_timer_node {
    uint32_t index;
    uint32_t kind;
};

struct ritual_heap_entry {
    uint64_t deadline; /* ns, monotonic */
    struct ritual_timer_node *node;
};

struct ritual_timer {
    struct ritual_timer_node node;
    struct ritual_list link;
    ritual_loop *loop;
    ritual_timer_cb cb;
    void *data;
    uint64_t repeat_ns;
};

void ritual__timer_node_init(struct ritual_timer_node *node, uint32_t kind);
/* Returns 0, or -ENOMEM if the heap could not grow (the node is then not
 * scheduled). Rescheduling a node already in the heap cannot fail. */
int ritual__timer_node_schedule(ritual_loop *loop, struct ritual_timer_node *node,
                                uint64_t deadline);
void ritual__timer_node_cancel(ritual_loop *loop, struct ritual_timer_node *node);
/* Nanoseconds from the iteration's clock to the earliest deadline (0 if it
 * has passed), or -1 if there is no timer. */
int64_t ritual__timers_next_timeout(ritual_loop *loop);
void ritual__timers_run(ritual_loop *loop);
void ritual__timers_free(ritual_loop *loop);

#endif
