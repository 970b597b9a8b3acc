#include "proxy/backend.h"

#include <string.h>

static bool prefix_matches(const struct conf_route *r, struct sv path)
{
	if (r->prefix_len == 0)
		return true;
	if (path.len < r->prefix_len || memcmp(path.p, r->prefix, r->prefix_len) != 0)
		return false;
	if (path.len == r->prefix_len || r->prefix[r->prefix_len - 1] == '/')
		return true;
	char next = path.p[r->prefix_len];
	return next == '/' || next == '?' || next == ';';
}

const struct conf_route *backend_route(const struct conf *c, struct sv host, uint16_t port,
				       struct sv path, int *status)
{
	const struct conf_route *best = NULL;
	int best_rank = 0;
	bool host_served = false;

	for (size_t i = 0; i < c->nroutes; i++) {
		const struct conf_route *r = &c->routes[i];
		int rank = 1;
		if (r->host[0] != '\0') {
			if (!sv_ieq_cstr(host, r->host) || (r->port != 0 && r->port != port))
				continue;
			rank = r->port != 0 ? 3 : 2;
		}
		host_served = true;
		if (!prefix_matches(r, path))
			continue;
		if (best == NULL || rank > best_rank ||
		    (rank == best_rank && r->prefix_len > best->prefix_len)) {
			best = r;
			best_rank = rank;
		}
	}
	if (best == NULL)
		*status = host_served ? 404 : 421;
	return best;
}

static bool is_down(const struct conf_server *s, uint64_t now_ms)
{
	return atomic_load_explicit(&s->down_until_ms, memory_order_relaxed) > now_ms;
}

/* splitmix64's finaliser: a well-mixed score per (URL, server). */
static uint64_t mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* A server's identity for rendezvous hashing: its address as written
 * (FNV-1a), so that its URLs stay with it when others are added, removed
 * or reordered by a reload. */
static uint64_t server_id(const struct conf_server *s)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (const char *p = s->text; *p; p++)
		h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
	return h;
}

int backend_pick(struct conf_backend *b, uint64_t tried, uint64_t url_hash, uint64_t now_ms)
{
	size_t n = b->nservers, up = 0;
	int best = -1;
	uint64_t best_v = 0;
	size_t start = 0, turn = 0;

	for (size_t i = 0; i < n; i++)
		if (!(tried & (1ull << i)) && !is_down(&b->servers[i], now_ms))
			up++;
	/* Round robin takes turns among the servers up: the turn of one that
	 * is down goes to the next in turn, not all to its neighbour. Least
	 * connections starts its scan at the server whose turn it is, so
	 * that ties go round the same way. */
	if (b->balance != BALANCE_HASH && up > 0)
		turn = atomic_fetch_add_explicit(&b->rr, 1, memory_order_relaxed) % up;
	if (b->balance == BALANCE_LEASTCONN) {
		for (size_t i = 0, k = turn; i < n; i++) {
			if (tried & (1ull << i) || is_down(&b->servers[i], now_ms))
				continue;
			if (k-- == 0) {
				start = i;
				break;
			}
		}
	}
	for (size_t k = 0; k < n; k++) {
		size_t i = (start + k) % n;
		struct conf_server *s = &b->servers[i];
		uint64_t v;
		if (tried & (1ull << i) || is_down(s, now_ms))
			continue;
		switch (b->balance) {
		case BALANCE_ROUNDROBIN:
			if (turn-- == 0)
				return (int)i;
			continue;
		case BALANCE_LEASTCONN:
			/* Lower is better: invert so that the comparison is one. */
			v = UINT64_MAX - atomic_load_explicit(&s->active, memory_order_relaxed);
			break;
		default:
			v = mix(url_hash ^ server_id(s));
			break;
		}
		if (best < 0 || v > best_v) {
			best = (int)i;
			best_v = v;
		}
	}
	if (best >= 0)
		return best;
	/* Every untried server is down: the one back soonest. */
	for (size_t i = 0; i < n; i++) {
		uint64_t until =
			atomic_load_explicit(&b->servers[i].down_until_ms, memory_order_relaxed);
		if (tried & (1ull << i))
			continue;
		if (best < 0 || until < best_v) {
			best = (int)i;
			best_v = until;
		}
	}
	return best;
}

void backend_failed(struct conf_server *s, uint64_t now_ms, uint32_t fail_ms)
{
	atomic_store_explicit(&s->down_until_ms, now_ms + fail_ms, memory_order_relaxed);
}

void backend_ok(struct conf_server *s)
{
	if (atomic_load_explicit(&s->down_until_ms, memory_order_relaxed) != 0)
		atomic_store_explicit(&s->down_until_ms, 0, memory_order_relaxed);
}
