#include "buf/iobuf.h"

#include <stdlib.h>
#include <string.h>

struct pool {
	struct iobuf *free;
	unsigned n;
};

/* Index 0: IOBUF_SIZE, 1: IOBUF_LARGE_SIZE. */
static __thread struct pool pools[2];

static struct pool *pool_for(size_t cap)
{
	SL_ASSERT(cap == IOBUF_SIZE || cap == IOBUF_LARGE_SIZE);
	return &pools[cap == IOBUF_LARGE_SIZE];
}

struct iobuf *iobuf_get(size_t cap)
{
	struct pool *p = pool_for(cap);
	struct iobuf *b = p->free;

	if (b != NULL) {
		p->free = b->next;
		p->n--;
	} else {
		b = sl_malloc(sizeof(*b) + cap);
		b->cap = (uint32_t)cap;
	}
	b->start = b->end = 0;
	b->next = NULL;
	return b;
}

void iobuf_put(struct iobuf **bp)
{
	struct iobuf *b = *bp;
	struct pool *p;

	if (b == NULL)
		return;
	*bp = NULL;
	p = pool_for(b->cap);
	if (p->n >= IOBUF_POOL_KEEP) {
		free(b);
		return;
	}
	b->next = p->free;
	p->free = b;
	p->n++;
}

void iobuf_pool_drain(void)
{
	for (size_t i = 0; i < SL_ARRAY_LEN(pools); i++) {
		while (pools[i].free != NULL) {
			struct iobuf *b = pools[i].free;
			pools[i].free = b->next;
			free(b);
		}
		pools[i].n = 0;
	}
}

void iobuf_compact(struct iobuf *b)
{
	size_t n = iobuf_len(b);
	if (b->start == 0)
		return;
	memmove(b->data, b->data + b->start, n);
	b->start = 0;
	b->end = (uint32_t)n;
}

struct iobuf *iobuf_grow(struct iobuf **src, size_t cap)
{
	struct iobuf *b = iobuf_get(cap);
	size_t n = iobuf_len(*src);

	SL_ASSERT(n <= cap);
	memcpy(b->data, iobuf_head(*src), n);
	b->end = (uint32_t)n;
	iobuf_put(src);
	return b;
}
