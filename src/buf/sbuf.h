/* sbuf.h - a growable string builder with a hard cap.
 *
 * Appends never fail loudly: once an append would pass the cap, the builder
 * is marked failed and ignores further appends, so a caller builds a whole
 * message and checks sbuf_failed() once at the end. */
#ifndef SLUICE_SBUF_H
#define SLUICE_SBUF_H

#include <stdbool.h>
#include <stddef.h>

#include "base/base.h"
#include "base/sv.h"

struct sbuf {
	char *p; /* NUL-terminated when len > 0; owned */
	size_t len;
	size_t cap; /* allocated */
	size_t max; /* hard cap on len */
	bool failed;
};

/* A zeroed struct with max set is a valid empty builder. */
void sbuf_init(struct sbuf *s, size_t max);
void sbuf_add(struct sbuf *s, const void *p, size_t n);
void sbuf_add_sv(struct sbuf *s, struct sv v);
void sbuf_add_str(struct sbuf *s, const char *str);
void sbuf_add_char(struct sbuf *s, char c);
void sbuf_add_u64(struct sbuf *s, unsigned long long v);
void sbuf_add_i64(struct sbuf *s, long long v);
void sbuf_printf(struct sbuf *s, const char *fmt, ...) SL_PRINTF(2, 3);
/* True if an append was refused because of the cap. */
static inline bool sbuf_failed(const struct sbuf *s)
{
	return s->failed;
}
/* Empty it, keep the allocation. */
void sbuf_reset(struct sbuf *s);
/* Free the allocation; the builder is empty and usable again. */
void sbuf_free(struct sbuf *s);

#endif
