/* upgrade.c - 101 Switching Protocols: the answer, then the connection
 * handed over to the caller's callbacks, with whatever the client sent
 * after the request. The HTTP layer keeps nothing of it. */
#include "http_internal.h"

#include <errno.h>

int ritual_http_upgrade(ritual_http_exchange *ex, const ritual_http_header *headers,
                        size_t num_headers, const ritual_conn_callbacks *callbacks, void *data)
{
    struct http_conn *hc = ex->hc;
    if (ex->responded || ex->stream)
        return -EALREADY;
    /* RFC 9110 7.8: an HTTP/1.0 request's Upgrade is to be ignored. */
    if (!callbacks || !callbacks->on_data || ex->req.minor_version == 0 || hc->state == HTTP_BODY)
        return -EINVAL;
    int rc = ritual__http_check_head(101, headers, num_headers);
    if (rc == 0)
        rc = ritual__http_check_exchange(ex);
    if (rc < 0)
        return rc;
    ritual_conn *conn = hc->conn;
    /* No Connection: close, whatever max_requests says: the caller's
     * headers say Connection: upgrade. */
    rc = ritual__http_stage_head(hc, 101, headers, num_headers, HTTP_LEN_NONE, false, false);
    if (rc == 0)
        rc = ritual_conn_set_callbacks(conn, callbacks);
    if (rc < 0) {
        ritual_conn_abort(conn);
        ritual__http_exchange_done(hc, 101, 0);
        return rc;
    }
    /* The 101 goes before anything the new protocol writes. */
    ritual__http_stage_flush(hc->site);
    ritual__http_stage_drop(hc->site);
    ritual__http_log_exchange(hc, 101, 0);
    ex->responded = true;
    ex->held = false;
    ritual__http_body_wait_stop(hc);
    if (!ritual_list_empty(&hc->wait))
        ritual_list_del(&hc->wait);
    ritual_conn_set_data(conn, data);
    ritual_conn_set_idle_timeout(conn, 0);
    if (hc->in_delivery) {
        /* on_data hands the rest of its bytes over, then lets go of hc. */
        hc->state = HTTP_UPGRADED;
        hc->upgraded_on_data = callbacks->on_data;
        return 0;
    }
    /* Answered later: reading was paused for the answer; what it holds
     * goes to the new on_data from the loop. */
    ritual__http_conn_recycle(hc);
    ritual_conn_resume(conn);
    return 0;
}
