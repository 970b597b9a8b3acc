/* test_date.c - HTTP-date parsing and formatting (RFC 9110 §5.6.7). */
#include "http/date.h"
#include "unit.h"

#define NOW 1764806400 /* 2025-12-04 00:00:00 UTC */

static int64_t parse(const char *s)
{
	int64_t t = -12345;
	return http_date_parse(sv_from_cstr(s), NOW, &t) == 0 ? t : -1;
}

TEST(rfc9110_5_6_7_three_formats_give_the_same_time)
{
	CHECK_INT(parse("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
	CHECK_INT(parse("Sunday, 06-Nov-94 08:49:37 GMT"), 784111777);
	CHECK_INT(parse("Sun Nov  6 08:49:37 1994"), 784111777);
	CHECK_INT(parse("Thu, 01 Jan 1970 00:00:00 GMT"), 0);
	CHECK_INT(parse("Tue, 29 Feb 2028 23:59:59 GMT"), 1835481599);
	CHECK_INT(parse("Wed Dec 31 23:59:60 1969"), 0); /* leap second */
}

TEST(rfc9110_5_6_7_rfc850_two_digit_year_not_more_than_50_years_ahead)
{
	/* now is 2025: 75 would be 2075, exactly 50 years ahead: kept; 76
	 * would be 2076, more than 50: taken as 1976. */
	CHECK_INT(parse("Monday, 01-Jan-24 00:00:00 GMT"), 1704067200);
	CHECK(parse("Thursday, 01-Jan-76 00:00:00 GMT") == 189302400);
	CHECK(parse("Friday, 01-Jan-75 00:00:00 GMT") > NOW);
}

TEST(rfc9110_5_6_7_grammar_is_exact)
{
	const char *bad[] = {
		"",
		"Sun, 06 Nov 1994 08:49:37",	 /* no GMT */
		"Sun, 06 Nov 1994 08:49:37 UTC", /* not GMT */
		"Sun, 6 Nov 1994 08:49:37 GMT",	 /* one-digit day */
		"sun, 06 Nov 1994 08:49:37 GMT", /* names are case-sensitive */
		"Sun, 06 nov 1994 08:49:37 GMT",
		"Sun,  06 Nov 1994 08:49:37 GMT", /* two spaces */
		"Sun, 06 Nov 1994 08:49:37 GMT ", /* trailing */
		" Sun, 06 Nov 1994 08:49:37 GMT", /* leading */
		"Sun, 31 Apr 1994 08:49:37 GMT",  /* no 31 April */
		"Sun, 29 Feb 1900 08:49:37 GMT",  /* 1900 is not a leap year */
		"Sun, 06 Nov 1994 24:00:00 GMT",  /* hour 24 */
		"Sun, 06 Nov 1994 08:60:00 GMT",
		"Sun, 06 Nov 1994 08:49:61 GMT",
		"Sun, 00 Nov 1994 08:49:37 GMT",
		"Sun, 06 Nov 0000 08:49:37 GMT",
		"Fun, 06 Nov 1994 08:49:37 GMT",
		"Sunday, 06-Nov-1994 08:49:37 GMT", /* RFC 850 has two digits */
		"Sun Nov 6 08:49:37 1994",	    /* asctime pads with a space */
		"Sun Nov 06 08:49:37 1994 GMT",
		"0",
		"-1",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t t;
		if (http_date_parse(sv_from_cstr(bad[i]), NOW, &t) == 0) {
			CHECK(!"accepted");
			printf("    accepted: \"%s\"\n", bad[i]);
		}
	}
	/* A NUL inside the view. */
	int64_t t;
	CHECK(http_date_parse(sv_make("Sun, 06 Nov 1994 08:49:37 GMT\0", 30), NOW, &t) < 0);
	CHECK(http_date_parse(sv_make(NULL, 0), NOW, &t) < 0);
}

TEST(rfc9110_5_6_7_format_is_imf_fixdate_and_round_trips)
{
	char out[HTTP_DATE_LEN + 1];
	http_date_format(784111777, out);
	CHECK_STR(out, "Sun, 06 Nov 1994 08:49:37 GMT");
	http_date_format(0, out);
	CHECK_STR(out, "Thu, 01 Jan 1970 00:00:00 GMT");
	http_date_format(-1, out);
	CHECK_STR(out, "Wed, 31 Dec 1969 23:59:59 GMT");
	http_date_format(INT64_MAX, out);
	CHECK_STR(out, "Fri, 31 Dec 9999 23:59:59 GMT");
	for (int64_t t = -86400 * 400; t < 4102444800; t += 86400 * 37 + 3607) {
		int64_t back;
		http_date_format(t, out);
		CHECK_INT(strlen(out), HTTP_DATE_LEN);
		CHECK(http_date_parse(sv_from_cstr(out), NOW, &back) == 0 && back == t);
	}
}

int main(void)
{
	RUN(rfc9110_5_6_7_three_formats_give_the_same_time);
	RUN(rfc9110_5_6_7_rfc850_two_digit_year_not_more_than_50_years_ahead);
	RUN(rfc9110_5_6_7_grammar_is_exact);
	RUN(rfc9110_5_6_7_format_is_imf_fixdate_and_round_trips);
	return unit_done();
}
