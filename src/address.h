/* address.h - parsing and formatting socket addresses. Private to the
 * library. */
#ifndef RITUAL_ADDRESS_H
#define RITUAL_ADDRESS_H

#include "ritual.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* Parses "HOST:PORT" into `out`. Returns 0 or -EINVAL with a message in err. */
int ritual__address_parse(const char *text, struct sockaddr_storage *out, socklen_t *len,
                          bool *any_host, ritual_error *err);
/* What ritual_listen and ritual_connect check first: callbacks with on_data,
 * a loop not being freed, and a well-formed address. Returns 0 or a negative
 * errno with `err` filled ("listen 1.2.3.4:80: ..."). */
int ritual__endpoint_prepare(ritual_loop *loop, const char *verb, const char *address,
                             const ritual_conn_callbacks *callbacks, struct sockaddr_storage *addr,
                             socklen_t *len, bool *any_host, ritual_error *err);
/* "1.2.3.4:80" or "[::1]:80". Returns 0 or -ENOSPC/-EAFNOSUPPORT. */
int ritual__address_format(const struct sockaddr *sa, char *buf, size_t len);

#endif
