/* inherit.h - listening sockets a process was given rather than made:
 * fd:N, systemd's socket activation (systemd:NAME), and those an upgrade
 * passes on under their address strings. Private to the library. */
#ifndef RITUAL_INHERIT_H
#define RITUAL_INHERIT_H

#include "ritual.h"

#include <stdbool.h>
#include <stddef.h>

/* The most sockets one address string stands for. */
#define RITUAL_INHERIT_MAX 64

/* The sockets `address` stands for, if it is not one to bind: fd:N,
 * systemd:NAME, or an address string this process inherited sockets for
 * (ritual_server_upgrade's names). Each is checked to be a listening stream
 * socket and made close-on-exec and non-blocking. Returns how many fds it
 * put in fds[], 0 if `address` is one to bind, or a negative errno with
 * `err` filled ("fd:7: not a listening socket"). */
int ritual__inherit_take(const char *address, int *fds, int max, bool *upgraded, ritual_error *err);

/* `address` percent-encoded as a LISTEN_FDNAMES name (':' and '%' and any
 * byte outside printable ASCII as %XX). Returns 0, or -ENOSPC. */
int ritual__inherit_encode(const char *address, char *out, size_t cap);

/* "fd:N" or "systemd:NAME", well formed. Returns 1 if `address` has one of
 * these forms, 0 if neither, -1 if it has one and is malformed (`why` says
 * what is wrong). */
int ritual__inherit_form(const char *address, const char **why);

/* In a process an upgrade started, once it serves: closes the sockets it
 * inherited and nobody asked for (an address dropped from the new
 * configuration), which would otherwise queue clients nobody accepts.
 * Claimed ones are close-on-exec; these are not. Logs each on `log`. */
void ritual__inherit_close_unclaimed(ritual_loop *log);

/* Makes a listener of each socket ritual__inherit_take finds for
 * `address` with attach(ctx, fd, err), which takes the fd (closed on
 * failure) and returns the listener or NULL with `err` filled; an
 * upgrade's unix socket file becomes the listener's. Returns 1 when
 * `address` named such sockets, with *out the first listener or NULL on
 * failure; 0 if it is an address to bind. */
typedef ritual_listener *(*ritual__inherit_attach_fn)(void *ctx, int fd, ritual_error *err);
int ritual__inherit_listen(const char *address, ritual__inherit_attach_fn attach, void *ctx,
                           ritual_listener **out, ritual_error *err);

/* Listens on the sockets ritual__inherit_take finds for `address`, every
 * one on `loop` (a listener each, remembering `address`). Returns 1 when
 * `address` was such a one, with *out the first listener or NULL and `err`
 * filled; 0 if it is an address to bind. */
int ritual__listen_inherited(ritual_loop *loop, const char *address,
                             const ritual_listen_options *options,
                             const ritual_conn_callbacks *callbacks, ritual_listener **out,
                             ritual_error *err);

#endif
