/* http_path.h - turning a request-target into a path under the document
 * root: percent-decoding and dot-segment removal, with nothing touching the
 * file system. Pure, so the tests can throw every traversal trick at it. */
#ifndef RITUAL_HTTP_PATH_H
#define RITUAL_HTTP_PATH_H

#include <stdbool.h>
#include <stddef.h>

/* Decodes the path of `target` (origin-form "/a/b?q" or absolute-form
 * "http://host/a/b") into `out`: percent-decoded, "." and ".." segments
 * resolved, repeated slashes merged. The result starts with '/', ends with
 * '/' if the target's path did, and is NUL-terminated.
 * Returns its length; -1 for a target that must be answered with 400: not
 * a path, a scheme other than http or https, a '#' (a fragment is never
 * sent), a bad or %00 escape, a ".." above the root; -2 for a path longer
 * than out_size - 2 (414). *query is set to the target's "?..." part (or ""). */
long http_path_decode(const char *target, size_t len, char *out, size_t out_size,
                      const char **query, size_t *query_len);

/* Whether a decoded path names a dotfile or something inside a
 * dot-directory ("/.git/config", "/a/.env"), which are not served by
 * default. /.well-known/ (RFC 8615) is not hidden, though dot names inside
 * it are. */
bool http_path_is_hidden(const char *path, size_t len);

/* Percent-encodes `name` for use in a URL path (RFC 3986 unreserved and
 * "/" pass as they are). Returns the length written, or -1 if out is too small. */
long http_path_encode(const char *name, size_t len, char *out, size_t out_size);

#endif
