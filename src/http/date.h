/* date.h - HTTP-date (RFC 9110 §5.6.7): parse all three formats, write the
 * preferred one. Pure: no I/O, no allocation, no locale, no time zone. */
#ifndef SLUICE_DATE_H
#define SLUICE_DATE_H

#include <stdint.h>

#include "base/sv.h"

/* "Sun, 06 Nov 1994 08:49:37 GMT" */
#define HTTP_DATE_LEN 29

/* Parse an HTTP-date in IMF-fixdate, RFC 850 or asctime form, exactly as the
 * grammar spells them (day and month names case-sensitive, "GMT" required in
 * the first two, single spaces; the whole view must be the date). Fields are
 * range-checked (a 31 April or hour 24 is an error; second 60 is accepted as
 * a leap second). An RFC 850 two-digit year that would be more than 50 years
 * after `now` is taken as the latest past year with those digits. The day
 * name is checked to be a day name, not that it matches the date: recipients
 * use the date. Returns 0 and *out (seconds since the epoch, UTC), or -1. */
int http_date_parse(struct sv v, int64_t now, int64_t *out) SL_WUR;

/* Write t as an IMF-fixdate into out (HTTP_DATE_LEN bytes and a NUL).
 * t is clamped to years 0001..9999. */
void http_date_format(int64_t t, char out[HTTP_DATE_LEN + 1]);

#endif
