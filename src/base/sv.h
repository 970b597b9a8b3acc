/* sv.h - string views: a pointer and a length into someone else's bytes.
 *
 * A view never owns its bytes and is not NUL-terminated; it is valid only as
 * long as the buffer it points into. Parsers return views; code that must keep
 * bytes past the buffer's reuse copies them and says so. */
#ifndef SLUICE_SV_H
#define SLUICE_SV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

struct sv {
	const char *p;
	size_t len;
};

#define SV_LIT(s) ((struct sv){.p = (s), .len = sizeof(s) - 1})
#define SV_NULL	  ((struct sv){.p = NULL, .len = 0})
/* printf("%.*s", SV_FMT(v)) */
#define SV_FMT(v) (int)(v).len, (v).p

static inline struct sv sv_make(const char *p, size_t len)
{
	return (struct sv){.p = p, .len = len};
}

struct sv sv_from_cstr(const char *s);

/* Byte-wise equality. */
bool sv_eq(struct sv a, struct sv b);
/* ASCII case-insensitive equality (header names, tokens, schemes). */
bool sv_ieq(struct sv a, struct sv b);
bool sv_ieq_cstr(struct sv a, const char *s);
/* True if a starts with prefix, ASCII case-insensitively. */
bool sv_istarts(struct sv a, const char *prefix);

/* Strip optional whitespace (SP and HTAB) from both ends. */
struct sv sv_trim_ows(struct sv a);

/* Parse a whole view as an unsigned decimal number: digits only, no sign, no
 * whitespace, at least one digit, no overflow past max. Returns 0 and stores
 * *out, or -1. */
int sv_to_u64(struct sv a, uint64_t max, uint64_t *out) SL_WUR;

/* Iterate a comma-separated list (RFC 9110 §5.6.1): each call stores the next
 * non-empty, OWS-trimmed element in *elem and returns true; false at the end.
 * *rest is advanced. Empty elements ("a,,b") are skipped as the RFC allows. */
bool sv_next_list_elem(struct sv *rest, struct sv *elem);

/* True if the comma list contains tok (case-insensitive, whole element, and an
 * element's parameters after ';' are ignored). */
bool sv_list_has_token(struct sv list, const char *tok);

/* The value of a hex digit (either case), or -1. */
int sv_hexval(unsigned char c);
/* The byte a "%XX" at s.p[i] encodes (s.p[i] is '%'), or -1 if two hex
 * digits do not follow within s. */
int sv_pct_at(struct sv s, size_t i);

/* tchar per RFC 9110 §5.6.2. */
bool sv_is_tchar(unsigned char c);
/* True if every byte is a tchar and the view is non-empty. */
bool sv_is_token(struct sv a);

#endif
