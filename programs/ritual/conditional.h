/* conditional.h - the preconditions of RFC 9110 section 13 evaluated
 * against a file: If-Match, If-Unmodified-Since, If-None-Match,
 * If-Modified-Since and If-Range. A header sent on several lines is one
 * list (RFC 9110 5.3). */
#ifndef RITUAL_CONDITIONAL_H
#define RITUAL_CONDITIONAL_H

#include "file_cache.h"
#include "ritual_http.h"

#include <stdbool.h>

/* If-Match and If-Unmodified-Since (13.2.2, steps 1 and 2): answer 412. */
bool conditional_failed(const ritual_http_request *req, const struct file_entry *e);

/* If-None-Match, else If-Modified-Since (steps 3 and 4): answer 304. */
bool conditional_not_modified(const ritual_http_request *req, const struct file_entry *e);

/* If-Range (step 5): whether a Range still applies to this version. */
bool conditional_range_allowed(const ritual_http_request *req, const struct file_entry *e);

#endif
