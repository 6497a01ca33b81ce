/* address.h - parsing and formatting socket addresses. Private to the
 * library. */
#ifndef RITUAL_ADDRESS_H
#define RITUAL_ADDRESS_H

#include "ritual.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* The forms of address ritual_listen takes, told apart by their prefix
 * (see ritual__address_form_of); each form has its own parser. */
enum ritual__address_form {
    RITUAL_ADDRESS_INET, /* HOST:PORT */
    RITUAL_ADDRESS_UNIX, /* unix:/path, unix:@name */
};
enum ritual__address_form ritual__address_form_of(const char *text);

/* Parses "HOST:PORT" or a unix: address into `out`. Returns 0 or -EINVAL with a message in err. */
int ritual__address_parse(const char *text, struct sockaddr_storage *out, socklen_t *len,
                          bool *any_host, ritual_error *err);
/* What ritual_listen and ritual_connect check first: callbacks with on_data,
 * a loop not being freed, and a well-formed address. Returns 0 or a negative
 * errno with `err` filled ("listen 1.2.3.4:80: ..."). */
int ritual__endpoint_prepare(ritual_loop *loop, const char *verb, const char *address,
                             const ritual_conn_callbacks *callbacks, struct sockaddr_storage *addr,
                             socklen_t *len, bool *any_host, ritual_error *err);
/* "1.2.3.4:80", "[::1]:80", "unix:/path", "unix:@name" or "unix:" (an
 * unnamed socket); a unix address must sit in zeroed storage. Returns 0 or
 * -ENOSPC/-EAFNOSUPPORT. */
int ritual__address_format(const struct sockaddr *sa, char *buf, size_t len);

#endif
