/* listener.h - a listening socket and what the loop and the dispatch point
 * call on it. Private to the library. */
#ifndef RITUAL_LISTENER_H
#define RITUAL_LISTENER_H

#include "backend/backend.h"
#include "conn.h"
#include "ritual.h"
#include "ritual_list.h"
#include "timer.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

struct ritual_listener {
    struct ritual_io io;
    ritual_loop *loop;
    struct ritual_conn_profile profile;
    void *data;
    void *protocol_data;
    unsigned max_conns;
    size_t conns;
    unsigned refs; /* 1 while listening, +1 per open connection */
    bool closed;
    bool reaped;  /* freed once the completion backend lets go of it */
    bool drained; /* closed by a graceful shutdown, not by the user */
    bool emfile_paused;
    bool shed_asked; /* the fds_short hook freed some since the last accept */
    uint64_t emfile_backoff_ns;
    struct ritual_timer_node retry_timer;
    struct sockaddr_storage addr;
    struct ritual_proxy_trust *proxy; /* PROXY protocol sources (proxy.h); NULL: none */
    /* A unix:/path listener's socket file, as bound (see unix_socket.c):
     * removed on close if it still is this file, and unless `passed_on`. */
    bool owns_file;
    /* The socket was handed over to another process (a binary upgrade,
     * which sets this): that process serves the file now, so it stays. */
    bool passed_on;
    dev_t file_dev;
    ino_t file_ino;
    char *address; /* as given to ritual_listen: an upgrade passes the socket
                      on under this name (inherit.c) */
    bool held;     /* on loop->held_listeners: see ritual_listener_close */
    /* When it was named (CLOCK_MONOTONIC): listeners given one address
     * string (two "127.0.0.1:0") pass on in the order they were made, for
     * the new process's calls in that same order (upgrade.c). */
    uint64_t named_ns;
    struct ritual_list link; /* loop->listeners, then loop->dead_listeners */
};

/* Opens the listening socket for `address` (the ritual, checked at every
 * step). Returns the fd or a negative errno with `err` filled. */
int ritual__listen_socket(ritual_loop *loop, const char *address,
                          const ritual_listen_options *options,
                          const ritual_conn_callbacks *callbacks, ritual_error *err);
/* Makes a listener of `fd` on `loop`, taking the fd (closed on failure). */
ritual_listener *ritual__listener_attach(ritual_loop *loop, int fd, bool exclusive,
                                         const ritual_listen_options *options,
                                         const ritual_conn_callbacks *callbacks, ritual_error *err);
/* The same for a socket this process just created and bound: a unix:/path
 * socket file becomes the listener's (removed when it closes), or is
 * removed at once if no listener could be made. */
ritual_listener *ritual__listener_attach_new(ritual_loop *loop, int fd, bool exclusive,
                                             const ritual_listen_options *options,
                                             const ritual_conn_callbacks *callbacks,
                                             ritual_error *err);
/* Remembers `address` (a copy) as the listener's name for an upgrade.
 * Returns 0 or -ENOMEM with `err` filled. */
int ritual__listener_set_name(ritual_listener *listener, const char *address, ritual_error *err);
/* Accepts what the kernel already queued, then closes (a graceful shutdown). */
void ritual__listener_drain_and_close(ritual_listener *listener);
void ritual__listener_ready(ritual_listener *listener, unsigned events);
/* A completion backend accepted `fd` (or failed with minus errno). */
void ritual__listener_accepted(ritual_listener *listener, int fd);
void ritual__listener_conn_closed(ritual_listener *listener);
void ritual__listener_retry_fired(ritual_listener *listener);
void ritual__listener_unref(ritual_listener *listener);
void ritual__listeners_reap(ritual_loop *loop);
/* A completion backend let go of a closed listener. */
void ritual__listener_released(ritual_listener *listener);

/* unix_socket.c. The listening socket for a unix: address (socket, a
 * stale file replaced, bind, mode and owner, listen). Returns the fd or a
 * negative errno with `err` filled. */
int ritual__unix_listen_socket(const struct sockaddr_storage *addr, socklen_t len, int backlog,
                               const ritual_listen_options *options, ritual_error *err);
/* "USER[:GROUP]", names or numbers, into ids (gid -1 without GROUP).
 * Returns 0, or -EINVAL ("no such user") or the lookup's errno. */
int ritual__unix_owner_parse(const char *owner, uid_t *uid, gid_t *gid, ritual_error *err);
/* The listener just bound its unix:/path socket: the file is its to remove. */
void ritual__unix_file_claim(ritual_listener *l);
/* The listener closes: removes its socket file if it still is the one it
 * bound, unless passed_on. */
void ritual__unix_file_release(ritual_listener *l);
/* Removes the socket file of `addr` (a listener that was never made). */
void ritual__unix_file_unlink(const struct sockaddr_storage *addr);

#endif
