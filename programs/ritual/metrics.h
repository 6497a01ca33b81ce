/* metrics.h - `--metrics-listen ADDRESS`: the server's counters in the
 * Prometheus text format, on an HTTP listener of its own. */
#ifndef RITUAL_METRICS_H
#define RITUAL_METRICS_H

#include "ritual.h"

#include <stdbool.h>

/* Listens on `address` on the server's control loop, which runs on the
 * thread of ritual_server_run: a scrape reads the workers' counters with
 * the any-thread getters, and never waits for a worker. `http`: HTTP
 * response counters too (`ritual http`); else the connection ones only
 * (`ritual echo`). The scrapes themselves count in no worker's figures.
 * Returns the listener, or NULL with `err` set. Freed with the server. */
ritual_listener *metrics_listen(ritual_server *server, const char *address, bool http,
                                ritual_error *err);

#endif
