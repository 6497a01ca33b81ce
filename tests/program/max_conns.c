/* --max-conns 2: the third client is not accepted while two are open (it
 * waits in the kernel's backlog, connected but unserved), and is served as
 * soon as one of the first two leaves. */
#include "support.h"

#include <poll.h>
#include <unistd.h>

static void third_client_waits_until_one_leaves(void)
{
    struct server s;
    const char *const args[] = {"--max-conns", "2", "--workers", "1", NULL};
    server_start(ritual_program(), args, 0, &s);

    int a = tcp_connect(s.port);
    int b = tcp_connect(s.port);
    echo_roundtrip(a, "a", 1, 5000);
    echo_roundtrip(b, "b", 1, 5000);

    /* The handshake completes in the kernel, but nobody reads for c. */
    int c = tcp_connect(s.port);
    send_all(c, "c", 1);
    struct pollfd p = {.fd = c, .events = POLLIN};
    ASSERT_EQ(SYSCHECK(poll(&p, 1, 500)), 0);

    /* A leaves: c is accepted and served. */
    close(a);
    char ch;
    recv_exact(c, &ch, 1, 5000);
    ASSERT_EQ(ch, 'c');
    echo_roundtrip(b, "b", 1, 5000);

    close(b);
    close(c);
    server_expect_clean_exit(&s);
}

TEST_CASES(CASE(third_client_waits_until_one_leaves))
