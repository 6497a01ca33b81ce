/* bench.h - `ritual bench`: a load generator built on libritual. The shared
 * part (options, threads, the measured window, the report) lives in bench.c;
 * a workload (echo, http) supplies the connection callbacks. */
#ifndef RITUAL_BENCH_H
#define RITUAL_BENCH_H

#include "histogram.h"
#include "ritual.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bench_config {
    const char *workload; /* "echo" or "http" */
    const char *target;   /* HOST:PORT */
    const char **urls;    /* http: request targets, used round-robin */
    unsigned nurls;
    unsigned connections;
    unsigned threads;
    unsigned pipeline; /* closed loop: messages in flight per connection */
    size_t size;       /* echo: bytes per message */
    double duration_s;
    double rate;         /* open loop: messages per second in total; 0: closed loop */
    uint64_t timeout_ms; /* a message unanswered this long is an error */
    bool json;
    bool close;          /* http: Connection: close on every request */
    bool tls_on;         /* --tls */
    bool tls_resume;     /* offer the last session on a new connection */
    const char *tls_ca;  /* verify against these CAs; NULL: no verification */
    const char *tls_sni; /* the server name sent (and verified) */
    ritual_tls *tls;     /* made from the above once parsed */
};

struct bench_errors {
    uint64_t connect;  /* connects that failed */
    uint64_t reset;    /* connections that closed or broke mid-run */
    uint64_t timeout;  /* messages unanswered for timeout_ms */
    uint64_t verify;   /* a byte came back that was not the byte sent */
    uint64_t overload; /* open loop: too many messages in flight to keep sending */
    uint64_t protocol; /* http: a malformed or unexpected response */
    uint64_t status;   /* http: a response whose status is not 2xx */
};

struct bench_conn;

/* One thread: its own loop and its share of the connections. */
struct bench_thread {
    const struct bench_config *cfg;
    unsigned index;
    unsigned nconns;
    unsigned first_id; /* connection numbers, for distinct byte streams */
    ritual_loop *loop;
    struct bench_conn *conns;
    unsigned settled; /* connections connected or failed */
    bool running;     /* inside the measured window */
    bool ended;
    uint64_t start_ns, end_ns;
    uint64_t cpu_ns; /* this thread's CPU time in the window */
    ritual_timer *stop_timer, *tick_timer, *check_timer;
    /* open loop: message k goes out at start_ns + k * step_ns */
    double step_ns;
    uint64_t next_k;

    struct histogram hist; /* latencies in the window */
    struct bench_errors errors;
    _Atomic uint64_t messages; /* answered in the window; read by the progress line */
    uint64_t bytes;
    uint64_t status_class[6]; /* http: responses in the window by status / 100 (0: other) */
    uint64_t reconnects;      /* http: connections the server closed as it said it would */
    uint64_t idle_closed;     /* http: closed by the server with nothing in flight */
    uint64_t retried;         /* http: requests sent again after a close with no answer begun */
    uint64_t tls_full, tls_resumed; /* TLS handshakes completed in the window */
    char first_error[256];
    pthread_t tid;
};

uint64_t bench_clock_ns(void);
/* Notes an error's text once per thread, for the report. */
void bench_note_error(struct bench_thread *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A connection connected or failed; the window opens once all have. */
void bench_conn_settled(struct bench_thread *t);
/* A connection opened: counts its TLS handshake, full or resumed. */
void bench_count_handshake(struct bench_thread *t, const ritual_conn *conn);

/* The echo workload (bench_echo.c). */
int bench_echo_prepare(const struct bench_config *cfg);
int bench_echo_start_thread(struct bench_thread *t); /* creates the connections */
void bench_echo_window_opened(struct bench_thread *t);
void bench_echo_tick(struct bench_thread *t);  /* open loop: send what is due */
void bench_echo_check(struct bench_thread *t); /* once a second: timeouts */
void bench_echo_stop_thread(struct bench_thread *t);
void bench_echo_cleanup(void);

/* The http workload (bench_http.c), the same hooks. */
int bench_http_prepare(const struct bench_config *cfg);
int bench_http_start_thread(struct bench_thread *t);
void bench_http_window_opened(struct bench_thread *t);
void bench_http_tick(struct bench_thread *t);
void bench_http_check(struct bench_thread *t);
void bench_http_stop_thread(struct bench_thread *t);
void bench_http_cleanup(void);

int bench_main(int argc, char **argv);

#endif
