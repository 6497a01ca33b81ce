/* encoding.h - precompressed files: the content codings `ritual http` serves
 * from siblings (file.br, file.zst, file.gz beside file), the
 * --precompressed list, and the choice a request's Accept-Encoding makes
 * among the siblings a file has. */
#ifndef RITUAL_ENCODING_H
#define RITUAL_ENCODING_H

#include "ritual_http.h"

enum coding { CODING_BR, CODING_ZSTD, CODING_GZIP, CODING_COUNT };

/* The coding's token (Accept-Encoding, Content-Encoding) and the suffix of
 * its sibling file (".br"). */
const char *coding_name(enum coding c);
const char *coding_suffix(enum coding c);

/* The codings looked for, in order of preference when q-values tie. */
struct coding_list {
    unsigned char order[CODING_COUNT];
    unsigned count; /* 0: precompressed files are off */
};

/* Parses "br,zstd,gzip" (any order, each at most once), or "off" or "" for
 * none. Returns 0, or -1 if `text` names something else. */
int coding_list_parse(const char *text, struct coding_list *out);

/* Which coding to answer `req` with, given `have` (bit 1 << coding for each
 * sibling the file has): the one of the highest q-value in its
 * Accept-Encoding lines (all of them, RFC 9110 5.3), ties going to the
 * earlier in `list`; "*" stands for codings not named, q=0 refuses, and an
 * "identity" named with a higher q-value than every coding wins. Returns the
 * coding, or -1 for the file itself (no header, nothing acceptable). */
int coding_choose(const ritual_http_request *req, const struct coding_list *list, unsigned have);

#endif
