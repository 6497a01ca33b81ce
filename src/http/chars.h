/* chars.h - character classes shared by the HTTP parser files (RFC 9110).
 * One 256-entry table, one lookup per byte and no branches on ranges in the
 * hot loops. Internal: the table carries the ritual__ prefix. */
#ifndef RITUAL_HTTP_CHARS_H
#define RITUAL_HTTP_CHARS_H

enum {
    RITUAL__HTTP_TCHAR = 1, /* token: ALPHA DIGIT and !#$%&'*+-.^_`|~ */
    RITUAL__HTTP_VALUE = 2, /* field value: HTAB SP VCHAR obs-text (0x80-0xff) */
    RITUAL__HTTP_HOST = 4,  /* Host and authority-form: unreserved sub-delims % : [ ] */
};

extern const unsigned char ritual__http_ctype[256];

#define http_is(c, class) (ritual__http_ctype[(unsigned char)(c)] & (class))

#endif
