/* iobuf.h - pooled, fixed-capacity I/O buffers.
 *
 * A buffer holds bytes [start, end) of data[0, cap). Buffers come from a
 * per-thread pool, so taking and giving back one costs no lock and usually no
 * malloc. Connections take a buffer when bytes arrive and give it back when
 * it drains, so an idle connection holds none. */
#ifndef SLUICE_IOBUF_H
#define SLUICE_IOBUF_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "buf/limits.h"

struct iobuf {
	uint32_t cap;
	uint32_t start;
	uint32_t end;
	struct iobuf *next; /* pool link while free */
	char data[];
};

/* Take an empty buffer of capacity IOBUF_SIZE or IOBUF_LARGE_SIZE (the only
 * two sizes). Never fails (out of memory aborts). The caller owns it. */
struct iobuf *iobuf_get(size_t cap);

/* Give a buffer back to this thread's pool and set *bp to NULL. NULL is ok. */
void iobuf_put(struct iobuf **bp);

/* Free this thread's cached buffers (worker exit; keeps leak checkers quiet). */
void iobuf_pool_drain(void);

static inline size_t iobuf_len(const struct iobuf *b)
{
	return b->end - b->start;
}

static inline char *iobuf_head(struct iobuf *b)
{
	return b->data + b->start;
}

/* Free space after the data. */
static inline size_t iobuf_room(const struct iobuf *b)
{
	return b->cap - b->end;
}

static inline char *iobuf_tail(struct iobuf *b)
{
	return b->data + b->end;
}

static inline void iobuf_commit(struct iobuf *b, size_t n)
{
	SL_ASSERT(n <= iobuf_room(b));
	b->end += (uint32_t)n;
}

/* Drop n bytes from the front; an emptied buffer is reset to offset 0. */
static inline void iobuf_consume(struct iobuf *b, size_t n)
{
	SL_ASSERT(n <= iobuf_len(b));
	b->start += (uint32_t)n;
	if (b->start == b->end)
		b->start = b->end = 0;
}

/* Move the data to the front so all free space is contiguous at the tail. */
void iobuf_compact(struct iobuf *b);

/* Copy src's data into a new buffer of capacity cap (>= iobuf_len(src)) and
 * give src back. Used when a head outgrows a standard buffer. */
struct iobuf *iobuf_grow(struct iobuf **src, size_t cap);

#endif
