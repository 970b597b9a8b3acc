/* unit.h - the unit test harness: one file per module, each test a function.
 *
 *   TEST(name) { CHECK(x == 1); CHECK_INT(f(), 3); CHECK_STR(s, "abc"); }
 *   int main(void) { RUN(name); ...; return unit_done(); }
 *
 * Each failing CHECK prints file:line and the expression; a test passes when
 * none of its checks failed. unit_done() prints "N passed, N failed" and
 * returns the exit status. */
#ifndef SLUICE_UNIT_H
#define SLUICE_UNIT_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int unit_passed, unit_failed, unit_cur_failed;
static const char *unit_cur;

#define TEST(name) static void name(void)

#define CHECK(c)                                                                                \
	do {                                                                                    \
		if (!(c)) {                                                                     \
			unit_cur_failed++;                                                      \
			printf("    %s:%d: %s: CHECK(%s)\n", __FILE__, __LINE__, unit_cur, #c); \
		}                                                                               \
	} while (0)

#define CHECK_INT(a, b)                                                                          \
	do {                                                                                     \
		long long unit_a_ = (long long)(a), unit_b_ = (long long)(b);                    \
		if (unit_a_ != unit_b_) {                                                        \
			unit_cur_failed++;                                                       \
			printf("    %s:%d: %s: %s == %lld, expected %lld\n", __FILE__, __LINE__, \
			       unit_cur, #a, unit_a_, unit_b_);                                  \
		}                                                                                \
	} while (0)

/* Compare a (pointer, length) or NUL-terminated string with a literal. */
#define CHECK_MEM(p, n, lit)                                                                       \
	do {                                                                                       \
		const char *unit_p_ = (const char *)(p);                                           \
		size_t unit_n_ = (size_t)(n);                                                      \
		if (unit_n_ != strlen(lit) || (unit_n_ && memcmp(unit_p_, lit, unit_n_))) {        \
			unit_cur_failed++;                                                         \
			printf("    %s:%d: %s: %s == \"%.*s\", expected \"%s\"\n", __FILE__,       \
			       __LINE__, unit_cur, #p, (int)unit_n_, unit_p_ ? unit_p_ : "", lit); \
		}                                                                                  \
	} while (0)
#define CHECK_SV(v, lit)  CHECK_MEM((v).p, (v).len, lit)
#define CHECK_STR(s, lit) CHECK_MEM((s), strlen(s), lit)

#define RUN(fn)                                   \
	do {                                      \
		unit_cur = #fn;                   \
		unit_cur_failed = 0;              \
		fn();                             \
		if (unit_cur_failed) {            \
			unit_failed++;            \
			printf("FAIL %s\n", #fn); \
		} else {                          \
			unit_passed++;            \
			printf("ok   %s\n", #fn); \
		}                                 \
	} while (0)

static inline int unit_done(void)
{
	printf("%d passed, %d failed\n", unit_passed, unit_failed);
	return unit_failed ? 1 : 0;
}

#endif
