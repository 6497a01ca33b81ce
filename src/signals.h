/* signals.h - the loop's signal handles (one signalfd per loop). Private
 * to the library. */
#ifndef RITUAL_SIGNALS_H
#define RITUAL_SIGNALS_H

#include "ritual.h"

struct ritual_signal {
    ritual_loop *loop;
    int signum;
    ritual_signal_cb cb;
    void *data;
    struct ritual_signal *next;
};

void ritual__signals_ready(ritual_loop *loop);
void ritual__signals_free(ritual_loop *loop);

#endif
