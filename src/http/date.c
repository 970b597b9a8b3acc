#include "http/date.h"

#include <string.h>

static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const long_days[7] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
					 "Thursday", "Friday", "Saturday"};
static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
				   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* Days since 1970-01-01 of a proleptic Gregorian date (month 1..12). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static bool leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int mdays(int64_t y, int m)
{
	static const int n[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && leap(y) ? 29 : n[m - 1];
}

/* A cursor over the date text; every step checks what it consumes. */
struct cur {
	const char *p, *end;
	bool bad;
};

static void lit(struct cur *c, const char *s)
{
	size_t n = strlen(s);
	if (c->bad || (size_t)(c->end - c->p) < n || memcmp(c->p, s, n) != 0) {
		c->bad = true;
		return;
	}
	c->p += n;
}

static int digits(struct cur *c, int n)
{
	int v = 0;
	if (c->bad || c->end - c->p < n) {
		c->bad = true;
		return 0;
	}
	for (int i = 0; i < n; i++) {
		if (c->p[i] < '0' || c->p[i] > '9') {
			c->bad = true;
			return 0;
		}
		v = v * 10 + (c->p[i] - '0');
	}
	c->p += n;
	return v;
}

static int month(struct cur *c)
{
	for (int i = 0; i < 12 && !c->bad; i++) {
		if (c->end - c->p >= 3 && memcmp(c->p, months[i], 3) == 0) {
			c->p += 3;
			return i + 1;
		}
	}
	c->bad = true;
	return 0;
}

/* hh:mm:ss */
static void clock_of_day(struct cur *c, int *h, int *mi, int *s)
{
	*h = digits(c, 2);
	lit(c, ":");
	*mi = digits(c, 2);
	lit(c, ":");
	*s = digits(c, 2);
	if (*h > 23 || *mi > 59 || *s > 60)
		c->bad = true;
}

static bool starts(struct sv v, const char *s)
{
	size_t n = strlen(s);
	return v.len >= n && memcmp(v.p, s, n) == 0;
}

int http_date_parse(struct sv v, int64_t now, int64_t *out)
{
	struct cur c = {.p = v.p, .end = v.p + v.len};
	int64_t y = 0;
	int mo = 0, d = 0, h = 0, mi = 0, s = 0;
	int form = -1;

	if (v.p == NULL)
		return -1;
	for (int i = 0; i < 7 && form < 0; i++) {
		size_t ln = strlen(long_days[i]);
		if (starts(v, days[i]) && v.len > 3 && v.p[3] == ',') {
			form = 0; /* IMF-fixdate */
			c.p += 4;
		} else if (starts(v, long_days[i]) && v.len > ln && v.p[ln] == ',') {
			form = 1; /* RFC 850 */
			c.p += ln + 1;
		} else if (starts(v, days[i]) && v.len > 3 && v.p[3] == ' ') {
			form = 2; /* asctime */
			c.p += 4;
		}
	}
	if (form == 0) {
		lit(&c, " ");
		d = digits(&c, 2);
		lit(&c, " ");
		mo = month(&c);
		lit(&c, " ");
		y = digits(&c, 4);
		lit(&c, " ");
		clock_of_day(&c, &h, &mi, &s);
		lit(&c, " GMT");
	} else if (form == 1) {
		lit(&c, " ");
		d = digits(&c, 2);
		lit(&c, "-");
		mo = month(&c);
		lit(&c, "-");
		int yy = digits(&c, 2);
		lit(&c, " ");
		clock_of_day(&c, &h, &mi, &s);
		lit(&c, " GMT");
		/* RFC 9110 §5.6.7: not more than 50 years in the future. */
		int64_t ny;
		int nm, nd;
		civil_from_days(now >= 0 ? now / 86400 : 0, &ny, &nm, &nd);
		y = ny - ny % 100 + yy;
		if (y > ny + 50)
			y -= 100;
	} else if (form == 2) {
		mo = month(&c);
		lit(&c, " ");
		if (c.p < c.end && *c.p == ' ') {
			c.p++;
			d = digits(&c, 1);
		} else {
			d = digits(&c, 2);
		}
		lit(&c, " ");
		clock_of_day(&c, &h, &mi, &s);
		lit(&c, " ");
		y = digits(&c, 4);
	} else {
		return -1;
	}
	if (c.bad || c.p != c.end || y < 1 || mo < 1 || d < 1 || d > mdays(y, mo))
		return -1;
	*out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
	return 0;
}

void http_date_format(int64_t t, char out[HTTP_DATE_LEN + 1])
{
	static const int64_t lo = -62135596800; /* 0001-01-01 */
	static const int64_t hi = 253402300799; /* 9999-12-31 23:59:59 */
	t = t < lo ? lo : t > hi ? hi : t;
	int64_t z = t >= 0 ? t / 86400 : (t - 86399) / 86400;
	int64_t sec = t - z * 86400, y;
	int m, d;
	civil_from_days(z, &y, &m, &d);
	int wd = (int)(((z % 7) + 11) % 7); /* 1970-01-01 was a Thursday */
	int hh = (int)(sec / 3600), mm = (int)(sec / 60 % 60), ss = (int)(sec % 60);
	char *p = out;
	memcpy(p, days[wd], 3), p += 3;
	*p++ = ',', *p++ = ' ';
	*p++ = (char)('0' + d / 10), *p++ = (char)('0' + d % 10), *p++ = ' ';
	memcpy(p, months[m - 1], 3), p += 3;
	*p++ = ' ';
	*p++ = (char)('0' + y / 1000), *p++ = (char)('0' + y / 100 % 10);
	*p++ = (char)('0' + y / 10 % 10), *p++ = (char)('0' + y % 10), *p++ = ' ';
	*p++ = (char)('0' + hh / 10), *p++ = (char)('0' + hh % 10), *p++ = ':';
	*p++ = (char)('0' + mm / 10), *p++ = (char)('0' + mm % 10), *p++ = ':';
	*p++ = (char)('0' + ss / 10), *p++ = (char)('0' + ss % 10);
	memcpy(p, " GMT", 5);
}
