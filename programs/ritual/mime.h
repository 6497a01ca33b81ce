/* mime.h - Content-Type by file extension: a built-in table of the common
 * types, optionally extended from a mime.types file (/etc/mime.types). */
#ifndef RITUAL_MIME_H
#define RITUAL_MIME_H

#include <stddef.h>

struct mime_table;

/* Returns the table, or NULL with a one-line reason in `err` (the file,
 * and the line that is wrong). `path` may be NULL for the built-in types. */
struct mime_table *mime_table_new(const char *path, char *err, size_t err_size);
/* One more reference, from any thread; mime_table_free drops one (the
 * table goes with the last). A new table holds one. */
struct mime_table *mime_table_ref(struct mime_table *table);
void mime_table_free(struct mime_table *table);

/* The type for `name` (by its last extension, case-insensitive), or
 * "application/octet-stream". */
const char *mime_type(const struct mime_table *table, const char *name, size_t len);

#endif
