/* notify.h - a server's word to its service manager (systemd's notify
 * protocol) and to the process that started it by an upgrade. Private to
 * the library. */
#ifndef RITUAL_NOTIFY_H
#define RITUAL_NOTIFY_H

#include "ritual.h"

#include <stdbool.h>

struct ritual_notifier;

/* For `server` (ritual_server_new): `notify` is options.notify. NULL if
 * out of memory. */
struct ritual_notifier *ritual__notifier_new(ritual_server *server, bool notify);
void ritual__notifier_free(struct ritual_notifier *n);
/* ritual_server_run started its workers: once every worker's loop answers,
 * READY=1 (if notify), the upgrade's readiness pipe, and the watchdog. On
 * the control thread. Returns 0 or a negative errno. */
int ritual__notifier_start(struct ritual_notifier *n);
/* A shutdown or stop begins (any thread): STOPPING=1, the first time,
 * unless the server was handed over to an upgrade's new process. */
void ritual__notifier_stopping(struct ritual_notifier *n);
/* An upgrade's new process took over: no STOPPING=1 (the service goes on). */
void ritual__notifier_handed_over(struct ritual_notifier *n);

#endif
