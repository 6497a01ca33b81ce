/* proc.c - processes, limits and the clock. See support.h. */
#include "support.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------ processes and the clock */

uint64_t now_ms(void)
{
    struct timespec ts;
    SYSCHECK(clock_gettime(CLOCK_MONOTONIC, &ts));
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* Reads /proc/PID/stat and returns a pointer just after the last ')': the
 * command name may hold spaces and parentheses. */
static const char *proc_stat_fields(pid_t pid, char *buf, size_t cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = SYSCHECK(open(path, O_RDONLY | O_CLOEXEC));
    ssize_t n = SYSCHECK(read(fd, buf, cap - 1));
    close(fd);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')');
    if (paren == NULL)
        FAIL("%s: unexpected format", path);
    return paren + 1;
}

long proc_cpu_ticks(pid_t pid)
{
    char buf[1024];
    const char *p = proc_stat_fields(pid, buf, sizeof buf);
    /* After ')': state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt
     * majflt cmajflt utime(14) stime(15). */
    char state;
    unsigned long utime, stime;
    if (sscanf(p, " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &state, &utime, &stime) !=
        3)
        FAIL("/proc/%d/stat: cannot parse utime and stime", (int)pid);
    return (long)(utime + stime);
}

char proc_state(pid_t pid)
{
    char buf[1024];
    const char *p = proc_stat_fields(pid, buf, sizeof buf);
    char state;
    if (sscanf(p, " %c", &state) != 1)
        FAIL("/proc/%d/stat: cannot parse the state", (int)pid);
    return state;
}

long proc_status_kb(pid_t pid, const char *field)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    size_t len;
    char *text = file_read(path, &len);
    if (text == NULL)
        FAIL("%s: %s", path, strerror(errno));
    size_t flen = strlen(field);
    long kb = -1;
    for (char *line = text; line != NULL && *line != '\0';) {
        if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
            kb = strtol(line + flen + 1, NULL, 10);
            break;
        }
        line = strchr(line, '\n');
        if (line != NULL)
            line++;
    }
    free(text);
    if (kb < 0)
        FAIL("%s: no %s field", path, field);
    return kb;
}

long proc_rss_kb(pid_t pid)
{
    return proc_status_kb(pid, "VmRSS");
}

double proc_cpu_percent(pid_t pid, int window_ms, long *ticks)
{
    long before = proc_cpu_ticks(pid);
    uint64_t start = now_ms();
    sleep_ms(window_ms);
    long used = proc_cpu_ticks(pid) - before;
    uint64_t elapsed = now_ms() - start;
    if (ticks != NULL)
        *ticks = used;
    return 100.0 * (double)used / (double)sysconf(_SC_CLK_TCK) / ((double)elapsed / 1000.0);
}

rlim_t raise_nofile_up_to(rlim_t want, rlim_t need)
{
    struct rlimit rl;
    SYSCHECK(getrlimit(RLIMIT_NOFILE, &rl));
    if (rl.rlim_cur >= want)
        return rl.rlim_cur;
    struct rlimit raised = {.rlim_cur = want, .rlim_max = rl.rlim_max > want ? rl.rlim_max : want};
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
        return want;
    /* Without CAP_SYS_RESOURCE the hard limit is as far as we go. */
    if (errno != EPERM || rl.rlim_max < need)
        FAIL("setrlimit(RLIMIT_NOFILE, %llu): %s (hard limit %llu, need %llu)",
             (unsigned long long)want, strerror(errno), (unsigned long long)rl.rlim_max,
             (unsigned long long)need);
    rl.rlim_cur = rl.rlim_max;
    SYSCHECK(setrlimit(RLIMIT_NOFILE, &rl));
    return rl.rlim_cur;
}

void raise_nofile(rlim_t n)
{
    raise_nofile_up_to(n, n);
}

int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        FAIL("opendir /proc/self/fd: %s", strerror(errno));
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own */
}

/* ------------------------------------------------- a stalled transfer */

/* /proc/net/tcp's "0100007F:1F90": the port is the hex after the colon. */
static int tcp_line_port(const char *field)
{
    const char *colon = strchr(field, ':');
    return colon ? (int)strtol(colon + 1, NULL, 16) : -1;
}

void proc_note_tcp(const int *ports, int n)
{
    size_t len;
    char *text = file_read("/proc/net/tcp", &len);
    if (text == NULL) {
        note("/proc/net/tcp: %s", strerror(errno));
        return;
    }
    note("TCP (tx, rx: bytes queued; timer KIND:TICKS-LEFT in hex, kind 1 retransmit, 4 "
         "zero-window probe):");
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char local[64], remote[64], queues[32], timer[32];
        unsigned st;
        unsigned long retransmits, inode;
        if (sscanf(line, " %*[^:]: %63s %63s %x %31s %31s %lx %*u %*u %lu", local, remote, &st,
                   queues, timer, &retransmits, &inode) != 7)
            continue;
        int lp = tcp_line_port(local), rp = tcp_line_port(remote), match = 0;
        for (int i = 0; i < n; i++)
            match |= ports[i] == lp || ports[i] == rp;
        if (!match || st == 0x0A) /* not ours, or a listening socket */
            continue;
        char *colon = strchr(queues, ':');
        if (!colon)
            continue;
        *colon = '\0';
        note("  %5d -> %5d state %02X tx %8lu rx %8lu timer %s retransmits/probes %lu inode %lu",
             lp, rp, st, strtoul(queues, NULL, 16), strtoul(colon + 1, NULL, 16), timer,
             retransmits, inode);
    }
    free(text);
}

void proc_note_epoll(pid_t pid, const char *name)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    if (d == NULL) {
        note("%s: %s", dir, strerror(errno));
        return;
    }
    note("%s (pid %d), its descriptors and what each epoll instance watches "
         "(events, hex: 1 in, 4 out, 8 err, 10 hup):",
         name, (int)pid);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[384], target[128];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n < 0)
            continue;
        target[n] = '\0';
        if (strncmp(target, "socket:", 7) == 0 || strstr(target, "eventpoll"))
            note("  fd %s: %s", e->d_name, target);
        if (!strstr(target, "eventpoll"))
            continue;
        snprintf(path, sizeof path, "/proc/%d/fdinfo/%s", (int)pid, e->d_name);
        size_t len;
        char *text = file_read(path, &len);
        if (text == NULL)
            continue;
        char *save = NULL;
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
            if (strncmp(line, "tfd:", 4) == 0)
                note("    %s", line);
        free(text);
    }
    closedir(d);
}
