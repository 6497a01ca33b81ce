/* beneath.h - opening files below the document root, with no way out of it:
 * openat2 with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS where the kernel has
 * it, else the same resolution done component by component (beneath.c). */
#ifndef RITUAL_BENEATH_H
#define RITUAL_BENEATH_H

#include <stdbool.h>

/* Chooses, once at start and before any thread uses open_beneath, how it
 * opens: probes openat2 on `root_fd` itself and remembers, for the whole
 * process, whether it works. Any failure of that probe (ENOSYS from an old
 * kernel or valgrind; ENOSYS, EPERM or EACCES from a seccomp profile)
 * selects the fallback; so does the test and diagnostic knob
 * RITUAL_HTTP_NO_OPENAT2=1 in the environment. Returns 0 (openat2), 1 (the
 * knob) or the probe's -errno (the fallback). */
int open_beneath_init(int root_fd);

/* What open_beneath_init returned: 0 if openat2 is used, else why not. */
int open_beneath_fallback(void);

/* Opens `rel` beneath `dir_fd`: no "..", absolute path, absolute symlink,
 * symlink climbing out or magic link may lead out of it, and symlinks that
 * stay inside are followed (at most 40). `flags` as open's, without
 * O_CREAT; O_CLOEXEC and O_NOCTTY are added. Returns the fd or -errno:
 * -EXDEV for a way out, -ELOOP for too many symlinks. The fallback also
 * refuses a path more than 128 directories deep, or one whose symlinks
 * expand past PATH_MAX (-ENAMETOOLONG), a walk of over 4,096 components
 * (-ELOOP), and every symlink inside a procfs (-ELOOP). */
int open_beneath(int dir_fd, const char *rel, int flags);

#endif
