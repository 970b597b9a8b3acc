#include "buf/iobuf.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

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

/* Buffers are mapped pages of their own, not heap chunks: a burst of busy
 * connections then leaves no holes between the small long-lived objects
 * (sessions) on the heap, and memory given back is really given back. */
static size_t map_len(size_t cap)
{
	return (sizeof(struct iobuf) + cap + 4095) & ~(size_t)4095;
}

static struct iobuf *buf_alloc(size_t cap)
{
	struct iobuf *b = mmap(NULL, map_len(cap), PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	/* Out of memory: abort, as every allocation in sluice does. */
	if (b == MAP_FAILED)
		sl_assert_fail("mmap of an I/O buffer", __FILE__, __LINE__, __func__);
	b->cap = (uint32_t)cap;
	return b;
}

static void buf_free(struct iobuf *b)
{
	munmap(b, map_len(b->cap));
}

struct iobuf *iobuf_get(size_t cap)
{
	struct pool *p = pool_for(cap);
	struct iobuf *b = p->free;

	if (b != NULL) {
		p->free = b->next;
		p->n--;
	} else {
		b = buf_alloc(cap);
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
		buf_free(b);
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
			buf_free(b);
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
