/* io.h - the core's side of the dispatch point (io.c): the only way the
 * core reaches a loop's backend. Private to the library. */
#ifndef RITUAL_IO_H
#define RITUAL_IO_H

#include "backend/backend.h"
#include "ritual.h"

#include <stdint.h>

/* Picks the backend `choice` asks for (RITUAL_BACKEND_AUTO: the
 * environment's RITUAL_BACKEND, else io_uring) and sets it up; a refused
 * io_uring is replaced by epoll (loop->uring_refused). Returns 0, or a
 * negative errno with `err` filled. */
int ritual__io_init(ritual_loop *loop, ritual_backend choice, ritual_error *err);
void ritual__io_destroy(ritual_loop *loop);
/* Registers the interest if it changed. Returns 0 or a negative errno. */
int ritual__io_set(ritual_loop *loop, struct ritual_io *io, unsigned events);
/* The fd is about to be closed. */
void ritual__io_forget(ritual_loop *loop, struct ritual_io *io);
/* One wait and its dispatch. Returns 0 or a negative errno. */
int ritual__io_wait(ritual_loop *loop, int64_t timeout_ns);
/* ritual_loop_run returns: what is queued goes to the kernel now. */
void ritual__io_flush(ritual_loop *loop);
/* ritual_loop_free: every object is closed; wait until the kernel has let
 * go of them, and release them. */
void ritual__io_drain(ritual_loop *loop);
const char *ritual__io_backend_name(const ritual_loop *loop);

#endif
