/* server.h - what upgrade.c needs of a ritual_server. Private to the
 * library. */
#ifndef RITUAL_SERVER_H
#define RITUAL_SERVER_H

#include "ritual.h"

#include <stdbool.h>
#include <stdint.h>

struct ritual_upgrade *ritual__server_upgrade(ritual_server *server);
/* Worker threads are running (ritual_server_run is under way). Control
 * thread. */
bool ritual__server_threads_running(const ritual_server *server);
/* A shutdown or stop began. */
bool ritual__server_stopping(const ritual_server *server);
/* The new process is ready: drain, without telling the service manager
 * that the service stops. */
void ritual__server_hand_over(ritual_server *server, uint64_t drain_ms);

#endif
