/* json_line.h - a strict reader of the one-line JSON objects the program
 * writes (the access log in JSON), for the tests: RFC 8259 to the letter
 * (no raw control bytes, raw bytes valid UTF-8 only, known escapes, paired
 * surrogates), for a flat object whose values are strings or integers. */
#ifndef RITUAL_TEST_JSON_LINE_H
#define RITUAL_TEST_JSON_LINE_H

#include <stddef.h>

#define JSON_LINE_MAX_FIELDS 16

/* The fields in their order. Strings are decoded: \u0000-\u00ff to that
 * byte (how the access log writes bytes that are not UTF-8), other code
 * points to UTF-8; integers are kept as their text. */
struct json_line {
    int n;
    char key[JSON_LINE_MAX_FIELDS][32];
    char *value[JSON_LINE_MAX_FIELDS]; /* malloc'd, NUL-terminated */
    size_t len[JSON_LINE_MAX_FIELDS];
    int is_string[JSON_LINE_MAX_FIELDS];
};

/* Reads line[0..len) (without its '\n') as one object; fails the test,
 * naming the byte, unless it is valid JSON with nothing after it. */
void json_line_read(const char *line, size_t len, struct json_line *j);
void json_line_free(struct json_line *j);

/* The value of `key` (its length in *len, unless NULL), or NULL. */
const char *json_line_get(const struct json_line *j, const char *key, size_t *len);

#endif
