#include "dns/dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "base/log.h"
#include "ev/ev.h"

#define DNS_MAGIC   0xd0d5d0d5u
#define QUERY_MAGIC 0xd0d5a11cu

struct cache_entry {
	struct cache_entry *hnext; /* hash chain */
	struct cache_entry *lru_prev, *lru_next;
	uint64_t hash;
	uint64_t expires; /* monotonic ms */
	unsigned epoch;	  /* cache_epoch when it was asked */
	enum dns_error error;
	uint8_t n;
	struct dns_addr addrs[DNS_MAX_ADDRS];
	char name[];
};

struct host_entry {
	struct host_entry *next;  /* in file order */
	struct host_entry *hnext; /* in its bucket, in file order */
	uint64_t hash;
	struct dns_addr addr;
	char name[];
};

struct pending {
	struct pending *next;
	struct dns *d;
	struct dns_query *waiters;
	unsigned gen;		    /* d->gen when the query was asked */
	unsigned epoch;		    /* cache_epoch then */
	bool in_call;		    /* inside ares_getaddrinfo() */
	bool done_in_call;	    /* ... and c-ares answered right there */
	struct dns_result sync_res; /* that answer */
	char name[];
};

struct dns_query {
	unsigned magic;
	struct pending *p;
	struct dns_query *prev, *next;
	dns_cb cb;
	void *arg;
};

struct sockwatch {
	struct ev_io io;
	struct dns *d;
	struct sockwatch *next;
};

struct dns {
	unsigned magic;
	char *servers;				     /* as configured, NULL for resolv.conf */
	struct ares_addr_port_node *default_servers; /* what resolv.conf gave */
	struct ev_loop *loop;
	ares_channel channel;
	struct ev_timer timer;
	struct sockwatch *socks;

	struct host_entry *hosts, *hosts_tail;
	struct host_entry **hosts_idx; /* by name hash, built after loading */
	unsigned hosts_nidx;
	struct pending *pending;
	unsigned gen; /* bumped when the servers change under queries */
	struct dns_stats stats;
};

static const char *const err_str[] = {
#define X(e, s) s,
	DNS_ERRORS(X)
#undef X
};

const char *dns_error_str(enum dns_error e)
{
	return (size_t)e < SL_ARRAY_LEN(err_str) ? err_str[e] : "?";
}

socklen_t dns_addr_to_sockaddr(const struct dns_addr *a, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		memcpy(&s6->sin6_addr, a->a, 16);
		return sizeof(*s6);
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	s4->sin_family = AF_INET;
	s4->sin_port = htons(port);
	memcpy(&s4->sin_addr, a->a, 4);
	return sizeof(*s4);
}

void dns_get_stats(const struct dns *d, struct dns_stats *out)
{
	*out = d->stats;
}

/* ---- c-ares on the loop ---- */

static void arm_timer(struct dns *d);

static void sock_cb(struct ev_loop *loop, struct ev_io *io, uint32_t revents)
{
	struct sockwatch *w = SL_CONTAINER_OF(io, struct sockwatch, io);
	struct dns *d = w->d;
	int fd = io->fd;
	(void)loop;
	ares_process_fd(d->channel,
			(revents & (EV_READ | EPOLLERR | EPOLLHUP)) ? fd : ARES_SOCKET_BAD,
			(revents & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	arm_timer(d);
}

/* c-ares tells us which sockets it wants watched. Level-triggered, because
 * c-ares reads only what it needs per call. */
static void sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns *d = data;
	struct sockwatch **pp, *w;
	uint32_t ev = EV_LEVEL | (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);

	for (pp = &d->socks; (w = *pp) != NULL; pp = &w->next)
		if (w->io.fd == fd)
			break;
	if (!readable && !writable) {
		if (w != NULL) {
			ev_io_del(d->loop, &w->io);
			*pp = w->next;
			/* The watcher may have an event pending in this batch. */
			ev_defer(d->loop, free, w);
		}
		return;
	}
	if (w == NULL) {
		w = sl_calloc(1, sizeof(*w));
		w->d = d;
		w->io.fd = -1;
		if (ev_io_add(d->loop, &w->io, fd, ev, sock_cb) < 0) {
			log_error("dns: cannot watch socket %d: %s", fd, strerror(errno));
			free(w);
			return;
		}
		w->next = d->socks;
		d->socks = w;
		return;
	}
	if (ev_io_mod(d->loop, &w->io, ev) < 0)
		log_error("dns: cannot change socket %d: %s", fd, strerror(errno));
}

static void timer_cb(struct ev_loop *loop, struct ev_timer *t)
{
	struct dns *d = SL_CONTAINER_OF(t, struct dns, timer);
	(void)loop;
	ares_process_fd(d->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	arm_timer(d);
}

static void arm_timer(struct dns *d)
{
	struct timeval tv, *tvp = ares_timeout(d->channel, NULL, &tv);
	if (tvp == NULL) {
		ev_timer_stop(d->loop, &d->timer);
		return;
	}
	uint64_t ms = (uint64_t)tvp->tv_sec * 1000 + (uint64_t)tvp->tv_usec / 1000 + 1;
	ev_timer_at(d->loop, &d->timer, ev_now(d->loop) + ms, timer_cb);
}

/* ---- cache ----
 *
 * One cache for the whole process, so a name resolved by one worker is known
 * to all; split into shards, each with its own lock and LRU list, so workers
 * rarely meet on a lock. Entries expire by the monotonic clock. */

#define DNS_SHARDS 16

struct shard {
	pthread_mutex_t lock;
	struct cache_entry **buckets;
	unsigned nbuckets, n, max;
	struct cache_entry lru; /* sentinel: lru.lru_next is the most recent */
};

static struct shard shards[DNS_SHARDS];
static bool cache_on;
/* Moves when some resolver's servers change (reload): answers asked of
 * the servers before are not used after. */
static atomic_uint cache_epoch;

static uint64_t name_hash(const char *name)
{
	return XXH3_64bits(name, strlen(name));
}

static struct shard *shard_of(uint64_t h)
{
	return &shards[h % DNS_SHARDS];
}

static void lru_unlink(struct cache_entry *e)
{
	e->lru_prev->lru_next = e->lru_next;
	e->lru_next->lru_prev = e->lru_prev;
}

static void lru_push(struct shard *sh, struct cache_entry *e)
{
	e->lru_next = sh->lru.lru_next;
	e->lru_prev = &sh->lru;
	sh->lru.lru_next->lru_prev = e;
	sh->lru.lru_next = e;
}

static void cache_remove(struct shard *sh, struct cache_entry *e)
{
	struct cache_entry **pp = &sh->buckets[(e->hash / DNS_SHARDS) % sh->nbuckets];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	lru_unlink(e);
	sh->n--;
	free(e);
}

/* Under the shard lock. */
static struct cache_entry *shard_find(struct shard *sh, uint64_t h, const char *name, uint64_t now)
{
	struct cache_entry *e;
	for (e = sh->buckets[(h / DNS_SHARDS) % sh->nbuckets]; e != NULL; e = e->hnext) {
		if (e->hash != h || strcmp(e->name, name) != 0)
			continue;
		if (e->expires <= now || e->epoch != atomic_load(&cache_epoch)) {
			cache_remove(sh, e);
			return NULL;
		}
		return e;
	}
	return NULL;
}

void dns_cache_init(unsigned size)
{
	unsigned per = size / DNS_SHARDS + 1;
	cache_on = size > 0;
	for (unsigned i = 0; i < DNS_SHARDS; i++) {
		struct shard *sh = &shards[i];
		pthread_mutex_init(&sh->lock, NULL);
		sh->lru.lru_next = sh->lru.lru_prev = &sh->lru;
		sh->max = per;
		sh->nbuckets = 1;
		while (sh->nbuckets < per)
			sh->nbuckets *= 2;
		sh->buckets = cache_on ? sl_calloc(sh->nbuckets, sizeof(*sh->buckets)) : NULL;
	}
}

void dns_cache_free(void)
{
	for (unsigned i = 0; i < DNS_SHARDS; i++) {
		struct shard *sh = &shards[i];
		if (sh->buckets == NULL)
			continue;
		while (sh->lru.lru_next != &sh->lru)
			cache_remove(sh, sh->lru.lru_next);
		free(sh->buckets);
		sh->buckets = NULL;
		pthread_mutex_destroy(&sh->lock);
	}
	cache_on = false;
}

/* Copy a live entry for name into *r. */
static bool cache_get(const char *name, uint64_t now, struct dns_result *r)
{
	uint64_t h;
	struct shard *sh;
	struct cache_entry *e;
	bool found = false;

	if (!cache_on)
		return false;
	h = name_hash(name);
	sh = shard_of(h);
	pthread_mutex_lock(&sh->lock);
	e = shard_find(sh, h, name, now);
	if (e != NULL) {
		lru_unlink(e);
		lru_push(sh, e);
		r->error = e->error;
		r->n = e->n;
		memcpy(r->addrs, e->addrs, e->n * sizeof(e->addrs[0]));
		found = true;
	}
	pthread_mutex_unlock(&sh->lock);
	return found;
}

static void cache_put(const char *name, uint64_t now, const struct dns_result *r, unsigned ttl_s,
		      unsigned epoch)
{
	uint64_t h;
	struct shard *sh;
	struct cache_entry *e;
	size_t len = strlen(name);

	if (!cache_on || epoch != atomic_load(&cache_epoch))
		return; /* asked of servers no longer configured */
	h = name_hash(name);
	sh = shard_of(h);
	e = sl_calloc(1, sizeof(*e) + len + 1);
	e->epoch = epoch;
	memcpy(e->name, name, len + 1);
	e->hash = h;
	e->expires = now + (uint64_t)ttl_s * 1000;
	e->error = r->error;
	e->n = (uint8_t)r->n;
	memcpy(e->addrs, r->addrs, r->n * sizeof(r->addrs[0]));
	pthread_mutex_lock(&sh->lock);
	struct cache_entry *old = shard_find(sh, h, name, now);
	if (old != NULL)
		cache_remove(sh, old);
	if (sh->n >= sh->max)
		cache_remove(sh, sh->lru.lru_prev);
	struct cache_entry **b = &sh->buckets[(h / DNS_SHARDS) % sh->nbuckets];
	e->hnext = *b;
	*b = e;
	lru_push(sh, e);
	sh->n++;
	pthread_mutex_unlock(&sh->lock);
}

/* ---- hosts ---- */

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* Index the table by name hash (a hosts file may have many thousand
 * lines: a lookup must not walk them). Chains keep the file's order. */
static void hosts_index(struct dns *d)
{
	unsigned n = 0, want = 16;
	for (struct host_entry *h = d->hosts; h; h = h->next)
		n++;
	while (want < n)
		want *= 2;
	free(d->hosts_idx);
	d->hosts_idx = sl_calloc(want, sizeof(*d->hosts_idx));
	d->hosts_nidx = want;
	struct host_entry **tails = sl_calloc(want, sizeof(*tails));
	for (struct host_entry *h = d->hosts; h; h = h->next) {
		unsigned b = (unsigned)(h->hash & (want - 1));
		h->hnext = NULL;
		if (tails[b])
			tails[b]->hnext = h;
		else
			d->hosts_idx[b] = h;
		tails[b] = h;
	}
	free(tails);
}

unsigned dns_hosts_parse(struct dns *d, const char *text, size_t len)
{
	unsigned added = 0;
	const char *p = text, *end = text + len;

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *line_end = eol ? eol : end;
		const char *hash = memchr(p, '#', (size_t)(line_end - p));
		const char *q = p, *stop = hash ? hash : line_end;
		char word[HOST_NAME_MAX_LEN + 1];
		struct dns_addr addr = {0};
		bool have_addr = false;

		while (q < stop) {
			const char *w;
			size_t n;
			while (q < stop && is_space(*q))
				q++;
			w = q;
			while (q < stop && !is_space(*q))
				q++;
			n = (size_t)(q - w);
			if (n == 0 || n > HOST_NAME_MAX_LEN)
				break;
			memcpy(word, w, n);
			word[n] = '\0';
			if (!have_addr) {
				if (inet_pton(AF_INET, word, addr.a) == 1)
					addr.family = AF_INET;
				else if (inet_pton(AF_INET6, word, addr.a) == 1)
					addr.family = AF_INET6;
				else
					break;
				have_addr = true;
				continue;
			}
			for (size_t i = 0; i < n; i++)
				if (word[i] >= 'A' && word[i] <= 'Z')
					word[i] = (char)(word[i] + 32);
			struct host_entry *h = sl_calloc(1, sizeof(*h) + n + 1);
			memcpy(h->name, word, n + 1);
			h->hash = name_hash(h->name);
			h->addr = addr;
			/* Appended, so the file's order is kept for a name
			 * listed twice. */
			if (d->hosts_tail)
				d->hosts_tail->next = h;
			else
				d->hosts = h;
			d->hosts_tail = h;
			added++;
		}
		p = eol ? eol + 1 : end;
	}
	hosts_index(d);
	return added;
}

static void hosts_load(struct dns *d, const char *path)
{
	size_t len = 0, cap = 64 * 1024;
	char *buf;
	int fd;

	if (path[0] == '\0')
		return;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	buf = sl_malloc(cap);
	for (;;) {
		if (len == cap) {
			if (cap >= HOSTS_FILE_MAX) {
				log_warn("%s: only its first %zu bytes are read", path, len);
				break;
			}
			cap *= 2;
			buf = sl_realloc(buf, cap);
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	/* A line cut at the cap is left out, not read as a shorter name. */
	if (len == cap && len > 0) {
		char *nl = memrchr(buf, '\n', len);
		len = nl ? (size_t)(nl - buf) + 1 : 0;
	}
	if (len > 0)
		(void)dns_hosts_parse(d, buf, len);
	free(buf);
}

/* Interleave families, IPv6 first (RFC 8305 §4, RFC 6724: a host without
 * IPv6 learns so from its connect at once, and Happy Eyeballs moves on),
 * keeping at most DNS_MAX_ADDRS of the n given: both families are kept
 * whatever the order they came in. */
static void add_interleaved(struct dns_result *r, const struct dns_addr *in, unsigned n)
{
	unsigned next[2] = {0, 0}; /* where to look on for IPv4, IPv6 */
	bool more[2] = {true, true};

	r->n = 0;
	for (unsigned round = 0; r->n < DNS_MAX_ADDRS && (more[0] || more[1]); round++) {
		unsigned f = round % 2 == 0; /* 1: IPv6 */
		int fam = f ? AF_INET6 : AF_INET;
		unsigned i = next[f];
		while (i < n && in[i].family != fam)
			i++;
		if (i == n) {
			more[f] = false;
			continue;
		}
		r->addrs[r->n++] = in[i];
		next[f] = i + 1;
	}
}

static bool hosts_lookup(struct dns *d, const char *name, struct dns_result *r)
{
	struct dns_addr tmp[2 * DNS_MAX_ADDRS];
	unsigned n = 0, per[2] = {0, 0};
	if (d->hosts_idx == NULL)
		return false;
	uint64_t hash = name_hash(name);
	for (struct host_entry *h = d->hosts_idx[hash & (d->hosts_nidx - 1)]; h; h = h->hnext)
		if (h->hash == hash && strcmp(h->name, name) == 0 &&
		    per[h->addr.family == AF_INET6]++ < DNS_MAX_ADDRS)
			tmp[n++] = h->addr;
	if (n == 0)
		return false;
	r->error = DNS_OK;
	add_interleaved(r, tmp, n);
	return true;
}

/* ---- lookups ---- */

static void pending_finish(struct pending *p, const struct dns_result *r)
{
	struct dns *d = p->d;
	struct pending **pp;

	for (pp = &d->pending; *pp != p; pp = &(*pp)->next)
		;
	*pp = p->next;
	while (p->waiters != NULL) {
		struct dns_query *q = p->waiters;
		/* A callback may cancel other waiters: keep the list sound. */
		p->waiters = q->next;
		if (p->waiters)
			p->waiters->prev = NULL;
		q->magic = 0;
		q->cb(q->arg, r);
		free(q);
	}
	free(p);
}

static void ares_done(void *arg, int status, int timeouts, struct ares_addrinfo *ai);

/* Ask c-ares for p's name. true: answered and finished right here. */
static bool pending_ask(struct dns *d, struct pending *p)
{
	struct ares_addrinfo_hints hints = {.ai_family = AF_UNSPEC, .ai_flags = ARES_AI_NOSORT};

	/* c-ares may answer before it returns (a bad name, no servers): the
	 * callback must not run before we return, so ares_done() leaves such
	 * an answer in p for the caller. */
	p->gen = d->gen;
	p->epoch = atomic_load(&cache_epoch);
	p->in_call = true;
	ares_getaddrinfo(d->channel, p->name, NULL, &hints, ares_done, p);
	p->in_call = false;
	return p->done_in_call;
}

static void ares_done(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
	struct pending *p = arg;
	struct dns *d = p->d;
	struct dns_result r = {.error = DNS_FAIL};
	struct dns_addr tmp[2 * DNS_MAX_ADDRS]; /* at most DNS_MAX_ADDRS a family */
	unsigned n = 0, per[2] = {0, 0}, ttl = DNS_MAX_TTL_S;

	if (status == ARES_EDESTRUCTION) {
		/* dns_free(): waiters are freed there without callbacks. */
		if (ai)
			ares_freeaddrinfo(ai);
		return;
	}
	if (p->gen != d->gen) {
		/* Cancelled with the channel of servers no longer configured:
		 * ask the new ones. */
		if (ai)
			ares_freeaddrinfo(ai);
		d->stats.queries++;
		if (pending_ask(d, p))
			pending_finish(p, &p->sync_res);
		return;
	}
	if (status == ARES_SUCCESS && ai != NULL) {
		for (struct ares_addrinfo_node *nd = ai->nodes; nd; nd = nd->ai_next) {
			if ((nd->ai_family == AF_INET || nd->ai_family == AF_INET6) &&
			    per[nd->ai_family == AF_INET6]++ >= DNS_MAX_ADDRS)
				continue; /* (its TTL counts no more than its address) */
			if (nd->ai_family == AF_INET) {
				tmp[n].family = AF_INET;
				memcpy(tmp[n].a, &((struct sockaddr_in *)nd->ai_addr)->sin_addr, 4);
			} else if (nd->ai_family == AF_INET6) {
				tmp[n].family = AF_INET6;
				memcpy(tmp[n].a, &((struct sockaddr_in6 *)nd->ai_addr)->sin6_addr,
				       16);
			} else {
				continue;
			}
			n++;
			if (nd->ai_ttl >= 0 && (unsigned)nd->ai_ttl < ttl)
				ttl = (unsigned)nd->ai_ttl;
		}
		/* The answer lives as long as the shortest link of its chain. */
		for (struct ares_addrinfo_cname *cn = ai->cnames; cn; cn = cn->next)
			if (cn->ttl >= 0 && (unsigned)cn->ttl < ttl)
				ttl = (unsigned)cn->ttl;
		/* A query that timed out may have been the other family's. */
		if (timeouts > 0)
			ttl = SL_MIN(ttl, (unsigned)DNS_PARTIAL_TTL_S);
		r.error = n ? DNS_OK : DNS_NODATA;
		add_interleaved(&r, tmp, n);
	} else if (status == ARES_ENOTFOUND) {
		r.error = DNS_NOTFOUND;
	} else if (status == ARES_ENODATA) {
		r.error = DNS_NODATA;
	} else if (status == ARES_ETIMEOUT) {
		r.error = DNS_TIMEOUT;
	} else if (status == ARES_EBADNAME) {
		r.error = DNS_BADNAME;
	}
	if (ai)
		ares_freeaddrinfo(ai);
	if (r.error != DNS_OK) {
		d->stats.failures++;
		ttl = DNS_NEG_TTL_S;
		log_debug("dns: %s: %s (%s)", p->name, dns_error_str(r.error),
			  ares_strerror(status));
	}
	/* Timeouts and server failures say nothing about the name: not cached. */
	if (r.error != DNS_TIMEOUT && r.error != DNS_FAIL)
		cache_put(p->name, ev_now(d->loop), &r, SL_MAX(ttl, (unsigned)DNS_MIN_TTL_S),
			  p->epoch);
	if (p->in_call) {
		/* Answered inside dns_lookup(): it returns the answer itself. */
		p->done_in_call = true;
		p->sync_res = r;
		return;
	}
	pending_finish(p, &r);
}

int dns_lookup(struct dns *d, const char *host, struct dns_result *res, dns_cb cb, void *arg,
	       struct dns_query **qp)
{
	char name[HOST_NAME_MAX_LEN + 1];
	size_t len = strlen(host);
	struct pending *p;
	struct dns_query *q;

	SL_CHECK_OBJ(d, DNS_MAGIC);
	d->stats.lookups++;
	*qp = NULL;
	memset(res, 0, sizeof(*res));
	if (len == 0 || len > HOST_NAME_MAX_LEN) {
		res->error = DNS_BADNAME;
		return 0;
	}
	for (size_t i = 0; i <= len; i++)
		name[i] = (host[i] >= 'A' && host[i] <= 'Z') ? (char)(host[i] + 32) : host[i];
	if (name[len - 1] == '.' && len > 1)
		name[--len] = '\0';

	struct dns_addr lit = {0};
	if (inet_pton(AF_INET, name, lit.a) == 1 || inet_pton(AF_INET6, name, lit.a) == 1) {
		lit.family = strchr(name, ':') ? AF_INET6 : AF_INET;
		res->error = DNS_OK;
		res->n = 1;
		res->addrs[0] = lit;
		return 0;
	}
	if (hosts_lookup(d, name, res))
		return 0;
	if (cache_get(name, ev_now(d->loop), res)) {
		d->stats.cache_hits++;
		return 0;
	}

	q = sl_calloc(1, sizeof(*q));
	q->magic = QUERY_MAGIC;
	q->cb = cb;
	q->arg = arg;
	for (p = d->pending; p != NULL; p = p->next)
		if (strcmp(p->name, name) == 0)
			break;
	if (p == NULL) {
		p = sl_calloc(1, sizeof(*p) + len + 1);
		memcpy(p->name, name, len + 1);
		p->d = d;
		p->next = d->pending;
		d->pending = p;
		d->stats.queries++;
		q->p = p;
		p->waiters = q;
		if (pending_ask(d, p)) {
			*res = p->sync_res;
			p->waiters = NULL;
			free(q);
			pending_finish(p, res);
			return 0;
		}
		arm_timer(d);
		*qp = q;
		return 1;
	}
	q->p = p;
	q->next = p->waiters;
	if (p->waiters)
		p->waiters->prev = q;
	p->waiters = q;
	*qp = q;
	return 1;
}

void dns_cancel(struct dns_query **qp)
{
	struct dns_query *q = *qp;
	if (q == NULL)
		return;
	*qp = NULL;
	SL_CHECK_OBJ(q, QUERY_MAGIC);
	if (q->prev)
		q->prev->next = q->next;
	else
		q->p->waiters = q->next;
	if (q->next)
		q->next->prev = q->prev;
	q->magic = 0;
	free(q);
}

struct dns *dns_new(struct ev_loop *loop, const struct dns_opts *o, char *err, size_t errlen)
{
	struct dns *d = sl_calloc(1, sizeof(*d));
	struct ares_options ao = {0};
	int rc, mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_LOOKUPS | ARES_OPT_TIMEOUTMS |
		       ARES_OPT_TRIES;

	d->magic = DNS_MAGIC;
	d->loop = loop;
	ao.sock_state_cb = sock_state_cb;
	ao.sock_state_cb_data = d;
	ao.lookups = (char *)"b"; /* hosts file handled here, read once */
	ao.timeout = (int)(o->timeout_ms ? o->timeout_ms : 2000);
	ao.tries = 2;
	rc = ares_init_options(&d->channel, &ao, mask);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares init: %s", ares_strerror(rc));
		free(d);
		return NULL;
	}
	if (ares_get_servers_ports(d->channel, &d->default_servers) != ARES_SUCCESS)
		d->default_servers = NULL;
	if (dns_set_servers(d, o->servers, err, errlen) < 0) {
		dns_free(&d);
		return NULL;
	}
	hosts_load(d, o->hosts_path ? o->hosts_path : "/etc/hosts");
	return d;
}

static int apply_servers(struct dns *d, ares_channel ch, const char *servers)
{
	if (servers != NULL)
		return ares_set_servers_ports_csv(ch, servers);
	return ares_set_servers_ports(ch, d->default_servers);
}

/* c-ares (before 1.22) cannot change the servers of a channel with queries
 * in flight. Then the servers go on a copy of the channel, the old one is
 * cancelled, and ares_done() asks its queries again on the new one. */
static int swap_channel(struct dns *d, const char *servers)
{
	ares_channel fresh, old;
	int rc = ares_dup(&fresh, d->channel);

	if (rc != ARES_SUCCESS)
		return rc;
	rc = apply_servers(d, fresh, servers);
	if (rc != ARES_SUCCESS) {
		ares_destroy(fresh);
		return rc;
	}
	/* The old channel's sockets stop being watched while they are still
	 * open, so no fd the new channel opens can be confused with them. */
	while (d->socks) {
		struct sockwatch *w = d->socks;
		d->socks = w->next;
		ev_io_del(d->loop, &w->io);
		ev_defer(d->loop, free, w);
	}
	old = d->channel;
	d->channel = fresh;
	d->gen++;
	ares_cancel(old);
	ares_destroy(old);
	arm_timer(d);
	return ARES_SUCCESS;
}

int dns_set_servers(struct dns *d, const char *servers, char *err, size_t errlen)
{
	int rc;

	SL_CHECK_OBJ(d, DNS_MAGIC);
	if ((servers == NULL && d->servers == NULL) ||
	    (servers && d->servers && strcmp(servers, d->servers) == 0))
		return 0;
	rc = apply_servers(d, d->channel, servers);
	if (rc == ARES_ENOTIMP && d->pending != NULL)
		rc = swap_channel(d, servers);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "dns_servers %s: %s", servers ? servers : "(resolv.conf)",
			 ares_strerror(rc));
		return -1;
	}
	free(d->servers);
	d->servers = servers ? sl_strndup(servers, strlen(servers)) : NULL;
	atomic_fetch_add(&cache_epoch, 1); /* what the others said is forgotten */
	return 0;
}

void dns_free(struct dns **dp)
{
	struct dns *d = *dp;
	if (d == NULL)
		return;
	*dp = NULL;
	SL_CHECK_OBJ(d, DNS_MAGIC);
	ares_destroy(d->channel);
	ev_timer_stop(d->loop, &d->timer);
	while (d->socks) {
		struct sockwatch *w = d->socks;
		d->socks = w->next;
		ev_io_del(d->loop, &w->io);
		free(w);
	}
	while (d->pending) {
		struct pending *p = d->pending;
		d->pending = p->next;
		while (p->waiters) {
			struct dns_query *q = p->waiters;
			p->waiters = q->next;
			free(q);
		}
		free(p);
	}
	while (d->hosts) {
		struct host_entry *h = d->hosts;
		d->hosts = h->next;
		free(h);
	}
	free(d->hosts_idx);
	free(d->servers);
	if (d->default_servers)
		ares_free_data(d->default_servers);
	d->magic = 0;
	free(d);
}
