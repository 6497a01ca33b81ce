/* proc.h - processes, limits and the clock, for the tests. */
#ifndef RITUAL_TEST_PROC_H
#define RITUAL_TEST_PROC_H

#include "check.h"

#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

uint64_t now_ms(void);

/* Open descriptors of this process (the runner compares them across a case). */
int count_fds(void);
void sleep_ms(int ms);

/* utime + stime of a process, in clock ticks (sysconf(_SC_CLK_TCK) a second). */
long proc_cpu_ticks(pid_t pid);

/* The process state letter from /proc/PID/stat ('R', 'S', 'T', ...). */
char proc_state(pid_t pid);

/* A "Name:  N kB" field of /proc/PID/status (e.g. "VmRSS", "VmHWM"), in kB. */
long proc_status_kb(pid_t pid, const char *field);
long proc_rss_kb(pid_t pid);

/* Waits `window_ms` and returns the CPU the process used meanwhile, as a
 * percentage of one core; `ticks` (may be NULL) gets the raw tick count. */
double proc_cpu_percent(pid_t pid, int window_ms, long *ticks);

/* Raises RLIMIT_NOFILE of the test process to at least n (soft and hard). */
void raise_nofile(rlim_t n);

/* Raises RLIMIT_NOFILE towards `want`, settling for the hard limit if the
 * test may not raise that (no CAP_SYS_RESOURCE), as long as it is at least
 * `need`. Returns the soft limit now in force. */
rlim_t raise_nofile_up_to(rlim_t want, rlim_t need);

/* For a transfer that stalled: notes each TCP connection with an end on
 * one of `ports` (its bytes queued each way, its pending timer), and, for
 * a process, its sockets and the interest each of its epoll instances
 * holds for them, so that a failure says which hop held the bytes. */
void proc_note_tcp(const int *ports, int n);
void proc_note_epoll(pid_t pid, const char *name);

#endif
