/* watch.h - fd watchers (ritual_watch): a user's descriptor in the loop.
 * Private to the library. */
#ifndef RITUAL_WATCH_H
#define RITUAL_WATCH_H

#include "backend/backend.h"
#include "ritual.h"
#include "ritual_list.h"

#include <stdbool.h>

struct ritual_watch {
    struct ritual_io io;
    ritual_loop *loop;
    ritual_watch_cb cb;
    void *data;
    unsigned interest;       /* RITUAL_WATCH_READABLE | RITUAL_WATCH_WRITABLE */
    bool freed;              /* by ritual_watch_free: no more callbacks */
    bool reaped;             /* freed, and waiting for the backend to let go */
    struct ritual_list link; /* loop->watches, dead_watches, then zombie_watches */
};

void ritual__watch_ready(ritual_watch *watch, unsigned events);
/* A completion backend let go of a freed watch. */
void ritual__watch_released(ritual_watch *watch);
/* End of iteration: the memory of watches freed during it goes, unless the
 * backend still holds an operation of theirs. */
void ritual__watches_reap(ritual_loop *loop);
/* ritual_loop_free: frees every watch still open. */
void ritual__watches_free(ritual_loop *loop);
/* ritual_loop_free, once the backend holds nothing: the rest goes. */
void ritual__watches_release_all(ritual_loop *loop);

#endif
