/* date.c - HTTP dates (RFC 9110 5.6.7) with plain arithmetic: no locale, no
 * time zone, no static buffer, so every function is thread-safe.
 *
 *   IMF-fixdate  Sun, 06 Nov 1994 08:49:37 GMT   (what we send)
 *   rfc850-date  Sunday, 06-Nov-94 08:49:37 GMT  (obsolete, accepted)
 *   asctime-date Sun Nov  6 08:49:37 1994        (obsolete, accepted)
 */
#include "ritual_http.h"

#include <errno.h>
#include <string.h>
#include <time.h>

static const char day_names[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const long_day_names[7] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                              "Thursday", "Friday", "Saturday"};
static const char month_names[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

#define SECONDS_PER_DAY 86400
#define MIN_TIME (-62167219200LL) /* 0000-01-01T00:00:00Z: IMF years have 4 digits */
#define MAX_TIME 253402300799LL   /* 9999-12-31T23:59:59Z */

/* Days since 1970-01-01 of a proleptic Gregorian date, and back (Howard
 * Hinnant's algorithms: eras of 400 years, March-based years). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static void put2(char *out, unsigned v)
{
    out[0] = (char)('0' + v / 10);
    out[1] = (char)('0' + v % 10);
}

void ritual_http_date(int64_t unix_time, char out[30])
{
    int64_t t = unix_time < MIN_TIME ? MIN_TIME : unix_time > MAX_TIME ? MAX_TIME : unix_time;
    int64_t days = t / SECONDS_PER_DAY, secs = t % SECONDS_PER_DAY;
    if (secs < 0) { /* floor, not truncation, before 1970 */
        secs += SECONDS_PER_DAY;
        days--;
    }
    int64_t year;
    unsigned month, mday;
    civil_from_days(days, &year, &month, &mday);
    unsigned wday = (unsigned)(((days % 7) + 11) % 7); /* 1970-01-01 was a Thursday */

    memcpy(out, day_names[wday], 3);
    memcpy(out + 3, ", ", 2);
    put2(out + 5, mday);
    out[7] = ' ';
    memcpy(out + 8, month_names[month - 1], 3);
    out[11] = ' ';
    put2(out + 12, (unsigned)(year / 100));
    put2(out + 14, (unsigned)(year % 100));
    out[16] = ' ';
    put2(out + 17, (unsigned)(secs / 3600));
    out[19] = ':';
    put2(out + 20, (unsigned)(secs / 60 % 60));
    out[22] = ':';
    put2(out + 23, (unsigned)(secs % 60));
    memcpy(out + 25, " GMT", 5); /* with the NUL */
}

/* ----------------------------------------------------------------- parsing */

/* n decimal digits (a leading space allowed when `space`), or -1. */
static int digits(const char *s, size_t n, int space)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (space && i == 0 && s[i] == ' ' && n > 1)
            continue;
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9)
            return -1;
        v = v * 10 + (int)d;
    }
    return v;
}

static int month_index(const char *s)
{
    for (int i = 0; i < 12; i++)
        if (memcmp(s, month_names[i], 3) == 0)
            return i + 1;
    return -1;
}

static int is_day_name(const char *s)
{
    for (int i = 0; i < 7; i++)
        if (memcmp(s, day_names[i], 3) == 0)
            return 1;
    return 0;
}

/* "HH:MM:SS" into seconds of the day (60 allowed for a leap second), or -1. */
static int time_of_day(const char *s)
{
    if (s[2] != ':' || s[5] != ':')
        return -1;
    int h = digits(s, 2, 0), m = digits(s + 3, 2, 0), sec = digits(s + 6, 2, 0);
    if (h < 0 || h > 23 || m < 0 || m > 59 || sec < 0 || sec > 60)
        return -1;
    return h * 3600 + m * 60 + sec;
}

static int days_in_month(int64_t y, int m)
{
    static const unsigned char days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return days[m - 1] + (m == 2 && leap);
}

static int finish(int64_t year, int month, int day, int tod, int64_t *out)
{
    if (year < 0 || month < 1 || day < 1 || day > days_in_month(year, month) || tod < 0)
        return -1;
    *out = days_from_civil(year, (unsigned)month, (unsigned)day) * SECONDS_PER_DAY + tod;
    return 0;
}

/* RFC 9110: a two-digit year more than 50 years in the future is the most
 * recent past year with the same last two digits. */
static int64_t full_year(int yy)
{
    int64_t days = (int64_t)time(NULL) / SECONDS_PER_DAY, now_year;
    unsigned m, d;
    civil_from_days(days, &now_year, &m, &d);
    int64_t y = now_year - now_year % 100 + yy;
    if (y > now_year + 50)
        y -= 100;
    return y;
}

/* The weekday is checked for being a name but not against the date: that
 * is a sender's slip, and nothing we could use a date for depends on it. */
static int parse_date(const char *s, size_t len, int64_t *out)
{
    if (len == 29 && is_day_name(s) && memcmp(s + 3, ", ", 2) == 0 && s[7] == ' ' && s[11] == ' ' &&
        s[16] == ' ' && memcmp(s + 25, " GMT", 4) == 0) {
        int y = digits(s + 12, 4, 0);
        if (y < 0)
            return -1;
        return finish(y, month_index(s + 8), digits(s + 5, 2, 0), time_of_day(s + 17), out);
    }
    if (len == 24 && is_day_name(s) && s[3] == ' ' && s[7] == ' ' && s[10] == ' ' &&
        s[19] == ' ') { /* asctime */
        int y = digits(s + 20, 4, 0);
        if (y < 0)
            return -1;
        return finish(y, month_index(s + 4), digits(s + 8, 2, 1), time_of_day(s + 11), out);
    }
    for (int i = 0; i < 7; i++) { /* rfc850: Sunday, 06-Nov-94 08:49:37 GMT */
        size_t n = strlen(long_day_names[i]);
        if (len != n + 24 || memcmp(s, long_day_names[i], n) != 0)
            continue;
        const char *r = s + n;
        if (memcmp(r, ", ", 2) != 0 || r[4] != '-' || r[8] != '-' || r[11] != ' ' ||
            memcmp(r + 20, " GMT", 4) != 0)
            return -1;
        int yy = digits(r + 9, 2, 0);
        if (yy < 0)
            return -1;
        return finish(full_year(yy), month_index(r + 5), digits(r + 2, 2, 0), time_of_day(r + 12),
                      out);
    }
    return -1;
}

int ritual_http_parse_date(const char *s, size_t len, int64_t *out)
{
    return parse_date(s, len, out) == 0 ? 0 : -EINVAL;
}
