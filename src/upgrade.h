/* upgrade.h - a server's binary upgrade state (upgrade.c). Private to the
 * library. */
#ifndef RITUAL_UPGRADE_H
#define RITUAL_UPGRADE_H

#include "ritual.h"

struct ritual_upgrade;

/* Notes the executable this process started from. NULL if out of memory. */
struct ritual_upgrade *ritual__upgrade_new(ritual_server *server);
void ritual__upgrade_free(struct ritual_upgrade *upgrade);

#endif
