/* beneath.h - opening files below the document root, with no way out of it:
 * openat2 with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS where the kernel has
 * it, else the same resolution done component by component (beneath.c). */
#ifndef RITUAL_BENEATH_H
#define RITUAL_BENEATH_H

#include <stdbool.h>

/* Chooses, once at start and before any thread uses open_beneath, how it
 * opens: probes openat2 on `root_fd` itself and remembers, for the whole
 * process, whether it works. ENOSYS or EPERM from that probe (an old
 * kernel, valgrind, a seccomp profile) select the fallback; so does the
 * test and diagnostic knob RITUAL_HTTP_NO_OPENAT2=1 in the environment.
 * Returns 1 if the fallback was chosen, else 0. */
int open_beneath_init(int root_fd);

/* Whether open_beneath_init chose the fallback. */
bool open_beneath_fallback(void);

/* Opens `rel` beneath `dir_fd`: no "..", absolute path, absolute symlink,
 * symlink climbing out or magic link may lead out of it, and symlinks that
 * stay inside are followed (at most 40). `flags` as open's, without
 * O_CREAT; O_CLOEXEC and O_NOCTTY are added. Returns the fd or -errno:
 * -EXDEV for a way out, -ELOOP for too many symlinks. */
int open_beneath(int dir_fd, const char *rel, int flags);

#endif
