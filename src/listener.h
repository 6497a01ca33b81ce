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
    uint64_t emfile_backoff_ns;
    struct ritual_timer_node retry_timer;
    struct sockaddr_storage addr;
    char *address;           /* as given to ritual_listen: an upgrade passes the socket
                                on under this name (inherit.c) */
    bool passed_on;          /* the socket was handed to an upgrade's new process */
    bool held;               /* on loop->held_listeners: see ritual_listener_close */
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

#endif
