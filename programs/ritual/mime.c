/* mime.c - the extension table. Lookups hash the lower-cased extension into
 * an open-addressed table built once; nothing in a table changes after. A
 * reload (SIGHUP) builds a new table, and the old one goes with its last
 * reference, once no worker uses it. */
#include "mime.h"

#include <ctype.h>
#include <stdatomic.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXT_MAX 16

struct mime_entry {
    char ext[EXT_MAX];
    const char *type;
};

struct mime_table {
    atomic_uint refs;
    struct mime_entry *slots;
    size_t cap, count;
    char **owned; /* type strings read from a file */
    size_t owned_count, owned_cap;
};

static const char *const builtin[][2] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"txt", "text/plain; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"},
    {"csv", "text/csv; charset=utf-8"},
    {"xml", "application/xml"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"avif", "image/avif"},
    {"ico", "image/x-icon"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
    {"pdf", "application/pdf"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
    {"tar", "application/x-tar"},
    {"wasm", "application/wasm"},
    {"mp4", "video/mp4"},
    {"webm", "video/webm"},
    {"mp3", "audio/mpeg"},
    {"ogg", "audio/ogg"},
    {"wav", "audio/wav"},
    {"bin", "application/octet-stream"},
};

static uint32_t hash_ext(const char *ext)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *ext; ext++)
        h = (h ^ (unsigned char)*ext) * 16777619u;
    return h;
}

/* Lower-cases `len` bytes of an extension into out; -1 if it is too long. */
static int normalise(const char *ext, size_t len, char out[EXT_MAX])
{
    if (len == 0 || len >= EXT_MAX)
        return -1;
    for (size_t i = 0; i < len; i++)
        out[i] = (char)tolower((unsigned char)ext[i]);
    out[len] = '\0';
    return 0;
}

static int grow(struct mime_table *t)
{
    size_t cap = t->cap ? t->cap * 2 : 64;
    struct mime_entry *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->slots[i].type)
            continue;
        size_t j = hash_ext(t->slots[i].ext) & (cap - 1);
        while (slots[j].type)
            j = (j + 1) & (cap - 1);
        slots[j] = t->slots[i];
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return 0;
}

/* Adds or replaces. Returns 0, or -1 when out of memory. */
static int put(struct mime_table *t, const char ext[EXT_MAX], const char *type)
{
    if ((t->count + 1) * 2 > t->cap && grow(t) < 0)
        return -1;
    size_t j = hash_ext(ext) & (t->cap - 1);
    while (t->slots[j].type && strcmp(t->slots[j].ext, ext) != 0)
        j = (j + 1) & (t->cap - 1);
    if (!t->slots[j].type)
        t->count++;
    memcpy(t->slots[j].ext, ext, EXT_MAX);
    t->slots[j].type = type;
    return 0;
}

static char *keep(struct mime_table *t, const char *s, size_t len)
{
    if (t->owned_count == t->owned_cap) {
        size_t cap = t->owned_cap ? t->owned_cap * 2 : 64;
        char **owned = realloc(t->owned, cap * sizeof *owned);
        if (!owned)
            return NULL;
        t->owned = owned;
        t->owned_cap = cap;
    }
    char *copy = strndup(s, len);
    if (copy)
        t->owned[t->owned_count++] = copy;
    return copy;
}

/* "type/subtype", each a token (RFC 9110 5.6.2, 8.3.1): what may follow
 * "Content-Type: " in a head. */
static bool is_media_type(const char *s)
{
    static const char tchar[] = "!#$%&'*+-.^_`|~";
    int slash = 0;
    size_t run = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '/') {
            if (run == 0 || ++slash > 1)
                return false;
            run = 0;
        } else if (isalnum(c) || (c < 0x80 && strchr(tchar, c))) {
            run++;
        } else {
            return false;
        }
    }
    return slash == 1 && run > 0;
}

/* mime.types: "type ext ext ...", '#' comments. A line whose type is not
 * one fails the whole file, naming the line. */
static int load(struct mime_table *t, const char *path, char *err, size_t err_size)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        snprintf(err, err_size, "--mime %s: %s", path, strerror(errno));
        return -1;
    }
    char line[1024];
    int rc = 0;
    unsigned lineno = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *save = NULL;
        char *type = strtok_r(line, " \t\r\n", &save);
        if (!type)
            continue;
        if (!is_media_type(type)) {
            char shown[64];
            size_t n = 0;
            for (; type[n] && n + 1 < sizeof shown; n++)
                shown[n] = (unsigned char)type[n] < 0x20 || type[n] == 0x7f ? '?' : type[n];
            shown[n] = '\0';
            snprintf(err, err_size, "--mime %s:%u: '%s' is not a media type (TYPE/SUBTYPE)", path,
                     lineno, shown);
            fclose(f);
            return -1;
        }
        const char *kept = NULL;
        for (char *ext; (ext = strtok_r(NULL, " \t\r\n", &save));) {
            char key[EXT_MAX];
            if (normalise(ext, strlen(ext), key) < 0)
                continue; /* longer than any real extension */
            if (!kept && !(kept = keep(t, type, strlen(type))))
                rc = -1;
            if (rc == 0 && put(t, key, kept) < 0)
                rc = -1;
        }
    }
    if (rc < 0)
        snprintf(err, err_size, "--mime %s: out of memory", path);
    else if (ferror(f)) {
        snprintf(err, err_size, "--mime %s: read error", path);
        rc = -1;
    }
    fclose(f);
    return rc;
}

struct mime_table *mime_table_new(const char *path, char *err, size_t err_size)
{
    struct mime_table *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    atomic_init(&t->refs, 1);
    int rc = 0;
    if (path)
        rc = load(t, path, err, err_size);
    /* The built-in types win: they carry the charset the file lacks. */
    for (size_t i = 0; rc == 0 && i < sizeof builtin / sizeof builtin[0]; i++) {
        char key[EXT_MAX];
        normalise(builtin[i][0], strlen(builtin[i][0]), key);
        if (put(t, key, builtin[i][1]) < 0) {
            snprintf(err, err_size, "out of memory");
            rc = -1;
        }
    }
    if (rc < 0) {
        mime_table_free(t);
        return NULL;
    }
    return t;
}

struct mime_table *mime_table_ref(struct mime_table *t)
{
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    return t;
}

void mime_table_free(struct mime_table *t)
{
    /* The last reference frees; acq_rel so that the thread freeing sees
     * every other thread's last use done. */
    if (!t || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < t->owned_count; i++)
        free(t->owned[i]);
    free(t->owned);
    free(t->slots);
    free(t);
}

const char *mime_type(const struct mime_table *t, const char *name, size_t len)
{
    const char *dot = NULL;
    for (size_t i = len; i > 0; i--) {
        if (name[i - 1] == '/')
            break;
        if (name[i - 1] == '.') {
            dot = name + i;
            break;
        }
    }
    char key[EXT_MAX];
    if (dot && t->cap && normalise(dot, (size_t)(name + len - dot), key) == 0) {
        size_t j = hash_ext(key) & (t->cap - 1);
        while (t->slots[j].type) {
            if (strcmp(t->slots[j].ext, key) == 0)
                return t->slots[j].type;
            j = (j + 1) & (t->cap - 1);
        }
    }
    return "application/octet-stream";
}
