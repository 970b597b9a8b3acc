#include "cache/disk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "buf/limits.h"
#include "cache/diskfmt.h"
#include "cache/key.h"
#include "cache/policy.h"

#define DISK_MAGIC 0xd15c570eu
#define MBOX_MAGIC 0xd15cb0c5u
#define READ_MAGIC 0xd15c4eadu

/* The largest header a valid file has; each I/O thread's buffer holds one,
 * and body bytes move through it in pieces of that size. */
#define HDR_MAX	 (DISKFMT_FIXED + CACHE_KEY_MAX + CACHE_VARY_KEY_MAX + MAX_RESPONSE_HEAD)
#define IO_BUF	 HDR_MAX
#define TABLE_LO 1024 /* initial hash buckets (a power of two) */
/* Generations from here up are for entries made while the index is being
 * rebuilt: everything the rebuild finds is older, and gets one below. */
#define GEN_LIVE (UINT64_C(1) << 48)
/* Entries the rebuild merges into the index per hold of its lock. */
#define MERGE_BATCH 4096
/* Bits of each bitmap kept during the rebuild (keys purged, names entered
 * live), by hash. */
#define REBUILD_BITS	 (UINT64_C(1) << 20)
#define BIT_SET(map, h)	 ((map)[((h) % REBUILD_BITS) / 64] |= UINT64_C(1) << ((h) % 64))
#define BIT_TEST(map, h) (((map)[((h) % REBUILD_BITS) / 64] >> ((h) % 64)) & 1)
/* "xy/" + name, and "tmp/" + name + "." + a 64-bit counter in hex. */
#define REL_MAX (4 + DISKFMT_NAME_LEN + 1 + 16 + 1)

/* One stored object, as the index knows it. Its Vary field value(s) are
 * kept so a request's secondary key can be computed without the file. */
struct entry {
	struct entry *chain;	     /* hash chain */
	struct entry *newer, *older; /* CLOCK order: d->young .. d->old */
	uint64_t khash;		     /* of the key */
	uint64_t nhash;		     /* of the name: picks the I/O thread */
	uint64_t gen;		     /* unique, increasing: newer entries have larger ones */
	uint64_t size;		     /* bytes charged for the file: disk_charge() */
	bool ref;		     /* CLOCK reference bit */
	char name[DISKFMT_NAME_LEN + 1];
	size_t key_len, vary_len, vfield_len;
	char *key, *vary, *vfield; /* into data[] */
	char data[];
};

enum job_kind { JOB_READ, JOB_WRITE, JOB_UNLINK, JOB_FENCE };

/* Work for an I/O thread about one file name. gen names the index entry the
 * work is for, so a completion never touches a newer entry of that name. */
struct job {
	struct job *next;
	enum job_kind kind;
	uint64_t khash, nhash, gen;
	uint64_t size;	       /* write: bytes charged to the backlog */
	struct cache_obj *obj; /* write: what to write; read: what was read */
	char name[DISKFMT_NAME_LEN + 1];
	struct disk_read *fence; /* fence: the purge wait it counts down */
};

struct disk_read {
	unsigned magic;
	struct job job;
	struct disk_mbox *mb; /* holds a reference */
	disk_read_cb cb;
	void *arg;
	atomic_bool cancelled;	/* set on mb's loop; read by the I/O thread */
	atomic_uint fence_left; /* purge wait: fences still to run */
	bool delivering;	/* the callback is running (mb's loop only) */
};

struct disk_mbox {
	unsigned magic;
	atomic_uint refs; /* the owner's and one per read made with it */
	struct ev_loop *loop;
	struct ev_io io;
	int efd;
	pthread_mutex_t mu;
	struct job *head, *tail; /* completed reads (under mu) */
	bool dead;		 /* freed by its owner (under mu) */
};

struct io_thread {
	struct disk_store *d;
	pthread_t tid;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job *head, *tail; /* under mu */
	bool stop;		 /* under mu */
	char *buf;		 /* IO_BUF bytes, this thread's only */
};

struct disk_store {
	unsigned magic;
	char *dir; /* as given, for log lines */
	int dirfd;
	int lockfd; /* holds the directory's lock (flock) while open */
	uint64_t cap;

	pthread_mutex_t mu; /* the index: everything down to next_gen */
	struct entry **tab;
	size_t mask; /* buckets - 1 */
	struct entry *young, *old;
	uint64_t objects, bytes, next_gen;

	atomic_bool degraded;
	_Atomic uint64_t unlink_failed; /* removals that failed (not ENOENT) */
	atomic_bool warned;		/* an unexpected write error was logged */
	atomic_bool read_warned;	/* a read short of descriptors or memory was */
	_Atomic uint64_t backlog;	/* bytes of objects queued for writing */
	_Atomic uint64_t tmp_seq;

	unsigned nthreads;
	struct io_thread *io;

	/* The index rebuild (disk_rebuild), on a thread of its own. Until it
	 * is done, a file it has not reached reads as a miss, and a key
	 * purged meanwhile has its bit set in purged (under mu; a bitmap by
	 * key hash, NULL once rebuilt), so that the rebuild deletes the
	 * key's older files rather than bring them back; a name entered
	 * live has its bit set in live (by name hash), so that a file the
	 * rebuild found of a name that came and went meanwhile (evicted) is
	 * deleted too rather than indexed without a file behind it. A false
	 * positive only costs a cached object. */
	pthread_t rebuild_tid;
	bool rebuild_started;
	atomic_bool rebuild_stop;
	atomic_bool rebuilt;
	uint64_t *purged;
	uint64_t *live;
	void (*rebuild_hook)(void *); /* disk_rebuild_hook() */
	void *rebuild_hook_arg;
};

static const char *err_str(int err, char *buf, size_t len)
{
	/* The GNU strerror_r: thread-safe, returns the text. */
	return strerror_r(err, buf, len);
}

static void rel_path(char out[REL_MAX], const char *name)
{
	snprintf(out, REL_MAX, "%.2s/%s", name, name);
}

/* ---- the index (all under d->mu) ---- */

static bool same_key(const struct entry *e, uint64_t h, const char *key, size_t len)
{
	return e->khash == h && e->key_len == len && memcmp(e->key, key, len) == 0;
}

/* The Vary field lines of a head, joined by commas into one list value
 * (RFC 9110 §5.3: the same list). Returns the length; writes into out when
 * it is not NULL. */
static size_t vary_join(const struct h1_header *h, unsigned n, char *out)
{
	size_t len = 0;
	for (unsigned i = 0; i < n; i++) {
		if (!sv_ieq_cstr(h[i].name, "vary"))
			continue;
		if (len > 0 && out)
			out[len] = ',';
		len += len > 0;
		if (out)
			memcpy(out + len, h[i].value.p, h[i].value.len);
		len += h[i].value.len;
	}
	return len;
}

static struct entry *entry_new(const char *key, size_t key_len, const char *vary, size_t vary_len,
			       const struct h1_header *hdrs, unsigned nhdrs, uint64_t size)
{
	size_t vf = vary_join(hdrs, nhdrs, NULL);
	struct entry *e = sl_calloc(1, sizeof(*e) + key_len + vary_len + vf);
	e->key = e->data;
	e->vary = e->key + key_len;
	e->vfield = e->vary + vary_len;
	memcpy(e->key, key, key_len);
	memcpy(e->vary, vary, vary_len);
	vary_join(hdrs, nhdrs, e->vfield);
	e->key_len = key_len;
	e->vary_len = vary_len;
	e->vfield_len = vf;
	e->khash = cache_key_hash(key, key_len);
	e->size = disk_charge(size);
	diskfmt_name(key, key_len, vary, vary_len, e->name);
	e->nhash = cache_key_hash(e->name, DISKFMT_NAME_LEN);
	return e;
}

/* The I/O thread of a file name (by its hash): every job on one name runs
 * there, in order. */
static unsigned thread_of(const struct disk_store *d, uint64_t nhash)
{
	return (unsigned)(nhash % d->nthreads);
}

static void enqueue(struct disk_store *d, struct job *j)
{
	struct io_thread *t = &d->io[thread_of(d, j->nhash)];
	j->next = NULL;
	pthread_mutex_lock(&t->mu);
	if (t->tail)
		t->tail->next = j;
	else
		t->head = j;
	t->tail = j;
	pthread_cond_signal(&t->cv);
	pthread_mutex_unlock(&t->mu);
}

/* Queue the removal of the file name, behind what is queued for it. */
static void enqueue_unlink(struct disk_store *d, const char *name)
{
	struct job *j = sl_calloc(1, sizeof(*j));
	j->kind = JOB_UNLINK;
	memcpy(j->name, name, sizeof(j->name));
	j->nhash = cache_key_hash(j->name, DISKFMT_NAME_LEN);
	enqueue(d, j);
}

static void list_push_young(struct disk_store *d, struct entry *e)
{
	e->older = d->young;
	e->newer = NULL;
	if (d->young)
		d->young->newer = e;
	else
		d->old = e;
	d->young = e;
}

static void list_unlink(struct disk_store *d, struct entry *e)
{
	if (e->newer)
		e->newer->older = e->older;
	else
		d->young = e->older;
	if (e->older)
		e->older->newer = e->newer;
	else
		d->old = e->newer;
	e->newer = e->older = NULL;
}

/* Take e out of the index and free it; unlink_file queues its file's
 * removal (after whatever is queued for that name already). */
static void entry_remove(struct disk_store *d, struct entry *e, bool unlink_file)
{
	for (struct entry **pp = &d->tab[e->khash & d->mask]; *pp; pp = &(*pp)->chain) {
		if (*pp == e) {
			*pp = e->chain;
			break;
		}
	}
	list_unlink(d, e);
	d->objects--;
	d->bytes -= e->size;
	if (unlink_file)
		enqueue_unlink(d, e->name);
	free(e);
}

static void table_grow(struct disk_store *d)
{
	size_t n = (d->mask + 1) * 2;
	struct entry **tab = sl_calloc(n, sizeof(*tab));
	for (size_t i = 0; i <= d->mask; i++) {
		for (struct entry *e = d->tab[i], *next; e; e = next) {
			next = e->chain;
			e->chain = tab[e->khash & (n - 1)];
			tab[e->khash & (n - 1)] = e;
		}
	}
	free(d->tab);
	d->tab = tab;
	d->mask = n - 1;
}

static void list_push_old(struct disk_store *d, struct entry *e)
{
	e->newer = d->old;
	e->older = NULL;
	if (d->old)
		d->old->older = e;
	else
		d->young = e;
	d->old = e;
}

/* Put e (its gen set) into the hash table and the CLOCK list, at the young
 * end or the old one, and count it. */
static void index_link(struct disk_store *d, struct entry *e, bool young)
{
	struct entry **b = &d->tab[e->khash & d->mask];
	e->chain = *b;
	*b = e;
	if (young)
		list_push_young(d, e);
	else
		list_push_old(d, e);
	d->objects++;
	d->bytes += e->size;
	if (d->objects > d->mask + 1)
		table_grow(d);
}

/* Add e (its gen not yet set) as the newest entry: it replaces the entry of
 * the same key and secondary key, whose file the caller's write will
 * rename over; or, if the key has its fill of variants, the oldest goes. */
static void index_add(struct disk_store *d, struct entry *e)
{
	struct entry *same = NULL, *oldest = NULL;
	unsigned variants = 0;
	for (struct entry *c = d->tab[e->khash & d->mask]; c; c = c->chain) {
		if (!same_key(c, e->khash, e->key, e->key_len))
			continue;
		variants++;
		if (oldest == NULL || c->gen < oldest->gen)
			oldest = c;
		if (c->vary_len == e->vary_len && memcmp(c->vary, e->vary, e->vary_len) == 0)
			same = c;
	}
	if (same)
		entry_remove(d, same, false);
	else if (variants >= CACHE_MAX_VARIANTS)
		entry_remove(d, oldest, true);
	if (d->live)
		BIT_SET(d->live, e->nhash);
	e->gen = ++d->next_gen;
	index_link(d, e, true);
}

enum found_fate { FOUND_ADDED, FOUND_SUPERSEDED, FOUND_DROPPED };

/* Add e, found by the rebuild (its gen set, below GEN_LIVE), at the old end:
 * whatever the index got since it opened is newer. Not added if the index
 * has a newer entry of its name (whose file it may be by now: it stays), or
 * if its file must go: its key was purged since the store opened, its name
 * was entered since and is gone again (evicted: the file the rebuild saw
 * may be gone too), or the key has its fill of variants already. */
static enum found_fate index_found(struct disk_store *d, struct entry *e)
{
	unsigned variants = 0;
	for (struct entry *c = d->tab[e->khash & d->mask]; c; c = c->chain) {
		if (!same_key(c, e->khash, e->key, e->key_len))
			continue;
		if (c->vary_len == e->vary_len && memcmp(c->vary, e->vary, e->vary_len) == 0)
			return FOUND_SUPERSEDED;
		variants++;
	}
	if (BIT_TEST(d->purged, e->khash) || BIT_TEST(d->live, e->nhash) ||
	    variants >= CACHE_MAX_VARIANTS)
		return FOUND_DROPPED;
	index_link(d, e, false);
	return FOUND_ADDED;
}

/* CLOCK: the oldest entry goes unless it was hit since it was last here.
 * At most max entries are looked at; true if the store is still over. */
static bool evict_some(struct disk_store *d, size_t max)
{
	for (; d->bytes > d->cap && d->old; max--) {
		if (max == 0)
			return true;
		struct entry *e = d->old;
		if (e->ref) {
			e->ref = false;
			list_unlink(d, e);
			list_push_young(d, e);
			continue;
		}
		entry_remove(d, e, true);
	}
	return false;
}

static void evict(struct disk_store *d)
{
	(void)evict_some(d, SIZE_MAX);
}

static struct entry *find_gen(struct disk_store *d, uint64_t khash, uint64_t gen)
{
	for (struct entry *e = d->tab[khash & d->mask]; e; e = e->chain)
		if (e->gen == gen)
			return e;
	return NULL;
}

/* Drop the entry a failed job was for, if it is still the current one. */
static void drop_gen(struct disk_store *d, uint64_t khash, uint64_t gen)
{
	pthread_mutex_lock(&d->mu);
	struct entry *e = find_gen(d, khash, gen);
	if (e)
		entry_remove(d, e, false);
	pthread_mutex_unlock(&d->mu);
}

/* ---- the mailbox ---- */

static void mbox_unref(struct disk_mbox *mb)
{
	if (atomic_fetch_sub_explicit(&mb->refs, 1, memory_order_acq_rel) != 1)
		return;
	pthread_mutex_destroy(&mb->mu);
	mb->magic = 0;
	free(mb);
}

static void mbox_unref_deferred(void *arg)
{
	mbox_unref(arg);
}

static void read_free(struct disk_read *r)
{
	cache_obj_put(&r->job.obj);
	mbox_unref(r->mb);
	r->magic = 0;
	free(r);
}

/* From an I/O thread: hand a finished read to its loop. */
static void mbox_post(struct disk_read *r)
{
	struct disk_mbox *mb = r->mb;
	uint64_t one = 1;

	r->job.next = NULL;
	pthread_mutex_lock(&mb->mu);
	if (mb->dead) {
		pthread_mutex_unlock(&mb->mu);
		read_free(r);
		return;
	}
	bool was_empty = mb->head == NULL;
	if (mb->tail)
		mb->tail->next = &r->job;
	else
		mb->head = &r->job;
	mb->tail = &r->job;
	/* Under the lock: once dead is set nobody writes to the eventfd, so
	 * its owner may close it. EAGAIN: a wakeup is pending anyway. */
	if (was_empty) {
		ssize_t n = write(mb->efd, &one, sizeof(one));
		(void)n;
	}
	pthread_mutex_unlock(&mb->mu);
}

static void mbox_cb(struct ev_loop *loop, struct ev_io *io, uint32_t revents)
{
	struct disk_mbox *mb = SL_CONTAINER_OF(io, struct disk_mbox, io);
	uint64_t v;
	(void)loop;
	(void)revents;

	/* Level-triggered: one read clears the count. Cleared before the list
	 * is taken: a post after the take finds the list empty and writes
	 * again, so no read is left behind without a wakeup. */
	ssize_t n = read(mb->efd, &v, sizeof(v));
	(void)n;
	pthread_mutex_lock(&mb->mu);
	struct job *list = mb->head;
	mb->head = mb->tail = NULL;
	pthread_mutex_unlock(&mb->mu);
	/* The mailbox stays alive through the batch: each read holds a
	 * reference, and the owner's is dropped only by a deferred call. */
	while (list) {
		struct disk_read *r = SL_CONTAINER_OF(list, struct disk_read, job);
		list = list->next;
		SL_CHECK_OBJ(r, READ_MAGIC);
		if (!atomic_load_explicit(&r->cancelled, memory_order_relaxed)) {
			struct cache_obj *o = r->job.obj;
			r->job.obj = NULL;
			r->delivering = true;
			r->cb(r->arg, o);
		}
		read_free(r);
	}
}

struct disk_mbox *disk_mbox_new(struct ev_loop *loop)
{
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (efd < 0)
		return NULL;
	struct disk_mbox *mb = sl_calloc(1, sizeof(*mb));
	mb->magic = MBOX_MAGIC;
	atomic_init(&mb->refs, 1);
	mb->loop = loop;
	mb->efd = efd;
	mb->io.fd = -1;
	pthread_mutex_init(&mb->mu, NULL);
	int rc = ev_io_add(loop, &mb->io, efd, EV_READ | EV_LEVEL, mbox_cb);
	if (rc < 0) {
		close(efd);
		pthread_mutex_destroy(&mb->mu);
		free(mb);
		errno = -rc;
		return NULL;
	}
	return mb;
}

void disk_mbox_free(struct disk_mbox **mp)
{
	struct disk_mbox *mb = *mp;
	if (mb == NULL)
		return;
	*mp = NULL;
	SL_CHECK_OBJ(mb, MBOX_MAGIC);
	pthread_mutex_lock(&mb->mu);
	mb->dead = true;
	struct job *list = mb->head;
	mb->head = mb->tail = NULL;
	pthread_mutex_unlock(&mb->mu);
	ev_io_del(mb->loop, &mb->io);
	close(mb->efd);
	mb->efd = -1;
	while (list) {
		struct disk_read *r = SL_CONTAINER_OF(list, struct disk_read, job);
		list = list->next;
		read_free(r);
	}
	/* A later event of this batch may still point at mb->io. */
	ev_defer(mb->loop, mbox_unref_deferred, mb);
}

/* ---- file I/O (I/O threads, and disk_open) ---- */

/* Read n bytes at off unless the file ends first. Returns the bytes read,
 * or -errno. */
static ssize_t pread_full(int fd, void *buf, size_t n, uint64_t off)
{
	size_t got = 0;
	while (got < n) {
		ssize_t k = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (k == 0)
			break;
		got += (size_t)k;
	}
	return (ssize_t)got;
}

/* 0 or an errno. A write that makes no progress is a full disk. */
static int write_full(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n > 0) {
		ssize_t k = write(fd, p, n);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		if (k == 0)
			return ENOSPC;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* The file could not be opened for want of a resource the process may
 * have again soon (descriptors, memory): nothing is wrong with it. */
static bool err_passing(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOMEM || err == EAGAIN || err == EINTR;
}

/* Read and verify the file of job j. Returns the object, or NULL with *why,
 * *exists (whether there is a file to delete) and *err (the errno of a
 * failed open, else 0). */
static struct cache_obj *read_file(struct io_thread *t, const struct job *j, const char **why,
				   bool *exists, int *err)
{
	struct disk_store *d = t->d;
	char rel[REL_MAX];
	struct diskfmt_hdr h;
	struct diskfmt_dec dec;
	struct stat st;
	struct cache_obj *o = NULL;

	rel_path(rel, j->name);
	*exists = true;
	*err = 0;
	int fd = openat(d->dirfd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		*err = errno;
		*exists = errno != ENOENT;
		*why = errno == ENOENT ? "file missing" : "cannot open";
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		*why = "not a regular file";
		goto out;
	}
	ssize_t got = pread_full(fd, t->buf, DISKFMT_FIXED, 0);
	if (got < 0) {
		*why = "read error";
		goto out;
	}
	int rc = diskfmt_header(t->buf, (size_t)got, &h, NULL, 0);
	if (rc == DISKFMT_BAD) {
		*why = h.why;
		goto out;
	}
	/* With the fixed part alone the answer is always "short": the key and
	 * head are not empty. */
	if (got < DISKFMT_FIXED || rc != DISKFMT_SHORT) {
		*why = "truncated header";
		goto out;
	}
	if ((uint64_t)st.st_size != h.file_len) {
		*why = "file length differs from the header's";
		goto out;
	}
	SL_ASSERT(h.hdr_len <= IO_BUF);
	got = pread_full(fd, t->buf, h.hdr_len, 0);
	if (got != (ssize_t)h.hdr_len) {
		*why = "short read";
		goto out;
	}
	rc = diskfmt_dec_begin(&dec, t->buf, h.hdr_len);
	if (rc != DISKFMT_OK) {
		*why = rc == DISKFMT_BAD ? dec.hdr.why : "truncated header";
		goto out;
	}
	uint64_t off = h.hdr_len;
	while (dec.body_left > 0) {
		size_t n = (size_t)SL_MIN(dec.body_left, (uint64_t)IO_BUF);
		got = pread_full(fd, t->buf, n, off);
		if (got != (ssize_t)n) {
			diskfmt_dec_abort(&dec);
			*why = "short read";
			goto out;
		}
		diskfmt_dec_body(&dec, t->buf, n);
		off += n;
	}
	got = pread_full(fd, t->buf, DISKFMT_TRAILER, off);
	o = diskfmt_dec_end(&dec, t->buf, got < 0 ? 0 : (size_t)got, why);
	if (o) {
		char name[DISKFMT_NAME_LEN + 1];
		diskfmt_name(o->key, o->key_len, o->vary, o->vary_len, name);
		if (memcmp(name, j->name, DISKFMT_NAME_LEN) != 0) {
			*why = "file holds another key";
			cache_obj_put(&o);
		}
	}
out:
	close(fd);
	return o;
}

static void run_read(struct io_thread *t, struct disk_read *r)
{
	struct disk_store *d = t->d;
	const char *why = NULL;
	char eb[128];
	bool exists;
	int err;

	if (atomic_load_explicit(&r->cancelled, memory_order_acquire)) {
		read_free(r);
		return;
	}
	r->job.obj = read_file(t, &r->job, &why, &exists, &err);
	if (r->job.obj == NULL && err_passing(err)) {
		/* A miss this time; the file and its entry stay. */
		if (!atomic_exchange(&d->read_warned, true))
			log_warn("cache_dir %s: %.2s/%s: %s: %s; kept, a miss this time (more "
				 "such are logged at debug level)",
				 d->dir, r->job.name, r->job.name, why,
				 err_str(err, eb, sizeof(eb)));
		else
			log_debug("cache_dir %s: %.2s/%s: %s: %s; kept, a miss this time", d->dir,
				  r->job.name, r->job.name, why, err_str(err, eb, sizeof(eb)));
	} else if (r->job.obj == NULL) {
		log_info("cache_dir %s: %.2s/%s: %s%s%s; dropped", d->dir, r->job.name, r->job.name,
			 why, err ? ": " : "", err ? err_str(err, eb, sizeof(eb)) : "");
		drop_gen(d, r->job.khash, r->job.gen);
		/* In order: anything later for this name is behind us. */
		if (exists) {
			char rel[REL_MAX];
			rel_path(rel, r->job.name);
			(void)unlinkat(d->dirfd, rel, 0);
		}
	}
	mbox_post(r);
}

static bool err_degrades(int err)
{
	return err == ENOSPC || err == EDQUOT || err == EACCES || err == EPERM || err == EROFS;
}

static void degrade(struct disk_store *d, const char *what, int err)
{
	char eb[128];
	if (!atomic_exchange(&d->degraded, true))
		log_error("cache_dir %s: %s: %s; continuing with the memory cache only", d->dir,
			  what, err_str(err, eb, sizeof(eb)));
}

/* Write j's object to a temporary file and rename it into place. Returns 0,
 * or an errno with *what saying which step failed. */
static int write_file(struct io_thread *t, const struct job *j, const char **what)
{
	struct disk_store *d = t->d;
	const struct cache_obj *o = j->obj;
	char tmp[REL_MAX], rel[REL_MAX];
	uint8_t trailer[DISKFMT_TRAILER];
	int err = 0;

	snprintf(tmp, sizeof(tmp), "tmp/%s.%" PRIx64, j->name,
		 atomic_fetch_add_explicit(&d->tmp_seq, 1, memory_order_relaxed));
	rel_path(rel, j->name);
	int fd = openat(d->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		*what = "creating a file";
		return errno;
	}
	size_t hl = diskfmt_header_len(o);
	SL_ASSERT(hl <= IO_BUF);
	diskfmt_encode_header(o, t->buf);
	diskfmt_encode_trailer(o, t->buf, trailer);
	*what = "writing";
	err = write_full(fd, t->buf, hl);
	for (const struct cache_chunk *c = o->body; c && !err; c = c->next)
		err = write_full(fd, c->data, c->len);
	if (!err)
		err = write_full(fd, trailer, sizeof(trailer));
	/* close() reports delayed write errors on some file systems. */
	if (close(fd) < 0 && !err && errno != EINTR)
		err = errno;
	if (!err && renameat(d->dirfd, tmp, d->dirfd, rel) < 0) {
		*what = "renaming a file into place";
		err = errno;
	}
	if (err)
		(void)unlinkat(d->dirfd, tmp, 0);
	return err;
}

static void run_write(struct io_thread *t, struct job *j)
{
	struct disk_store *d = t->d;
	char rel[REL_MAX];
	const char *what = "writing";

	pthread_mutex_lock(&d->mu);
	bool current = find_gen(d, j->khash, j->gen) != NULL;
	pthread_mutex_unlock(&d->mu);
	/* Replaced, evicted or purged while queued: whatever came after it
	 * for this name is queued behind it. */
	if (!current)
		goto done;
	int err = atomic_load(&d->degraded) ? EROFS : write_file(t, j, &what);
	if (err) {
		/* The file of the name may be an older version the index no
		 * longer has: remove it too, or a purge could not find it. */
		drop_gen(d, j->khash, j->gen);
		rel_path(rel, j->name);
		(void)unlinkat(d->dirfd, rel, 0);
		if (atomic_load(&d->degraded)) {
			/* Already logged. */
		} else if (err_degrades(err)) {
			degrade(d, what, err);
		} else {
			char eb[128];
			if (!atomic_exchange(&d->warned, true))
				log_warn("cache_dir %s: %s %.2s/%s: %s; object dropped", d->dir,
					 what, j->name, j->name, err_str(err, eb, sizeof(eb)));
			else
				log_debug("cache_dir %s: %s %.2s/%s: %s; object dropped", d->dir,
					  what, j->name, j->name, err_str(err, eb, sizeof(eb)));
		}
	}
done:
	atomic_fetch_sub_explicit(&d->backlog, j->size, memory_order_relaxed);
	cache_obj_put(&j->obj);
	free(j);
}

static void run_unlink(struct io_thread *t, struct job *j)
{
	char rel[REL_MAX];
	rel_path(rel, j->name);
	if (unlinkat(t->d->dirfd, rel, 0) < 0 && errno != ENOENT) {
		/* The file stays, and a restart's rebuild would read it back:
		 * a PURGE waiting for it says so (disk_unlink_failures). */
		int err = errno;
		char eb[128];
		if (atomic_fetch_add(&t->d->unlink_failed, 1) == 0)
			log_warn("cache_dir %s: removing %s: %s; the file stays (more such are "
				 "logged at debug level)",
				 t->d->dir, rel, err_str(err, eb, sizeof(eb)));
		else
			log_debug("cache_dir %s: removing %s: %s; the file stays", t->d->dir, rel,
				  err_str(err, eb, sizeof(eb)));
		if (err_degrades(err))
			degrade(t->d, "removing a file", err);
	}
	free(j);
}

/* A purge wait's fence, behind the unlinks the purge queued on this
 * thread: the last of its fences to run hands it to its loop. */
static void run_fence(struct job *j)
{
	struct disk_read *r = j->fence;
	free(j);
	if (atomic_fetch_sub_explicit(&r->fence_left, 1, memory_order_acq_rel) == 1)
		mbox_post(r);
}

static void *io_main(void *arg)
{
	struct io_thread *t = arg;
	pthread_mutex_lock(&t->mu);
	for (;;) {
		while (t->head == NULL && !t->stop)
			pthread_cond_wait(&t->cv, &t->mu);
		struct job *j = t->head;
		if (j == NULL)
			break; /* stopping, and all queued work is done */
		t->head = j->next;
		if (t->head == NULL)
			t->tail = NULL;
		pthread_mutex_unlock(&t->mu);
		switch (j->kind) {
		case JOB_READ:
			run_read(t, SL_CONTAINER_OF(j, struct disk_read, job));
			break;
		case JOB_WRITE:
			run_write(t, j);
			break;
		case JOB_UNLINK:
			run_unlink(t, j);
			break;
		case JOB_FENCE:
			run_fence(j);
			break;
		}
		pthread_mutex_lock(&t->mu);
	}
	pthread_mutex_unlock(&t->mu);
	return NULL;
}

/* ---- opening: directories and the index rebuild ---- */

/* "what path: error text" into err[errlen]; returns -1. */
static int fail(char *err, size_t errlen, const char *what, const char *path, int e)
{
	char eb[128];
	snprintf(err, errlen, "%s %s: %s", what, path, err_str(e, eb, sizeof(eb)));
	return -1;
}

/* mkdir -p, directories made 0700 (responses may be private to the
 * proxy's users). */
static int mkdir_p(const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX];
	size_t n = strlen(dir);
	struct stat st;

	memcpy(path, dir, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		char c = path[i];
		path[i] = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST) {
			int e = errno;
			if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
				return fail(err, errlen, "cannot create", path, e);
		}
		path[i] = c;
	}
	return 0;
}

/* Remove every file in dir/sub (leftover temporary files). */
static void clean_dir(int dirfd, const char *sub)
{
	int fd = openat(dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	DIR *dp = fdopendir(fd);
	if (dp == NULL) {
		close(fd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(dp)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			(void)unlinkat(fd, de->d_name, 0);
	closedir(dp);
}

struct found {
	struct entry *e;
	int64_t mtime_ns;
};

static int found_cmp(const void *a, const void *b)
{
	const struct found *x = a, *y = b;
	if (x->mtime_ns != y->mtime_ns)
		return x->mtime_ns < y->mtime_ns ? -1 : 1;
	return memcmp(x->e->name, y->e->name, DISKFMT_NAME_LEN);
}

static bool valid_name(const char *s, const char *sub)
{
	if (strlen(s) != DISKFMT_NAME_LEN || s[0] != sub[0] || s[1] != sub[1])
		return false;
	for (size_t i = 0; i < DISKFMT_NAME_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* The index entry for file name in the open directory fd, from its header
 * alone; NULL and *why if the file is not a valid object file of that name,
 * NULL and *why NULL if it could not be opened (gone meanwhile, or out of
 * descriptors: left alone). */
static struct entry *scan_file(int fd, const char *name, char *buf, struct h1_header *hdrs,
			       int64_t *mtime_ns, const char **why)
{
	struct diskfmt_hdr h;
	struct stat st;
	struct entry *e = NULL;

	int ffd = openat(fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (ffd < 0) {
		if (errno != ENOENT) {
			char eb[128];
			log_warn("cache_dir: %.2s/%s: cannot open (%s); left alone", name, name,
				 err_str(errno, eb, sizeof(eb)));
		}
		*why = NULL;
		return NULL;
	}
	if (fstat(ffd, &st) < 0 || !S_ISREG(st.st_mode)) {
		*why = "not a regular file";
		goto out;
	}
	*mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	ssize_t got = pread_full(ffd, buf, DISKFMT_FIXED, 0);
	int rc = diskfmt_header(buf, got < 0 ? 0 : (size_t)got, &h, hdrs, MAX_HEADERS_CEIL);
	if (rc == DISKFMT_BAD) {
		*why = h.why;
		goto out;
	}
	if (got < DISKFMT_FIXED) {
		*why = "truncated header";
		goto out;
	}
	if ((uint64_t)st.st_size != h.file_len) {
		*why = "file length differs from the header's";
		goto out;
	}
	got = pread_full(ffd, buf, h.hdr_len, 0);
	if (got != (ssize_t)h.hdr_len) {
		*why = "short read";
		goto out;
	}
	if (diskfmt_header(buf, h.hdr_len, &h, hdrs, MAX_HEADERS_CEIL) != DISKFMT_OK) {
		*why = h.why ? h.why : "truncated header";
		goto out;
	}
	e = entry_new(h.key, h.key_len, h.vary, h.vary_len, hdrs, h.nhdrs, h.file_len);
	if (memcmp(e->name, name, DISKFMT_NAME_LEN) != 0) {
		*why = "name is not its key's";
		free(e);
		e = NULL;
	}
out:
	close(ffd);
	return e;
}

static int name_cmp(const void *a, const void *b)
{
	return memcmp(a, b, DISKFMT_NAME_LEN);
}

/* Under d->mu, before anything found is merged: queue the deletion of the
 * bad files named in bad[], but for names the index has (written since the
 * start: their write, queued before, replaces the file, and an unlink
 * queued after it would delete the new one). */
static void drop_bad(struct disk_store *d, char (*bad)[DISKFMT_NAME_LEN + 1], size_t nbad)
{
	if (nbad == 0)
		return;
	char(*live)[DISKFMT_NAME_LEN + 1] = sl_malloc((d->objects + 1) * sizeof(*live));
	size_t nlive = 0;
	for (const struct entry *e = d->young; e; e = e->older)
		memcpy(live[nlive++], e->name, sizeof(*live));
	qsort(live, nlive, sizeof(*live), name_cmp);
	for (size_t i = 0; i < nbad; i++) {
		if (!nlive || !bsearch(bad[i], live, nlive, sizeof(*live), name_cmp))
			enqueue_unlink(d, bad[i]);
	}
	free(live);
}

/* Rebuild the index from the files; deletes what is not a valid file.
 * Returns how many files were deleted (*kept: how many went into the
 * index). */
static unsigned scan(struct disk_store *d, uint64_t *kept)
{
	char *buf = sl_malloc(HDR_MAX);
	struct h1_header *hdrs = sl_malloc(MAX_HEADERS_CEIL * sizeof(*hdrs));
	struct found *all = NULL;
	size_t n = 0, cap = 0;
	/* Files with an object's name found bad: deleted at the end, through
	 * the I/O threads, unless the index has that name by then. */
	char(*bad)[DISKFMT_NAME_LEN + 1] = NULL;
	size_t nbad = 0, badcap = 0;
	unsigned dropped = 0;

	for (unsigned i = 0; i < 256 && !atomic_load(&d->rebuild_stop); i++) {
		char sub[3];
		snprintf(sub, sizeof(sub), "%02x", i);
		int fd = openat(d->dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			continue;
		DIR *dp = fdopendir(fd);
		if (dp == NULL) {
			close(fd);
			continue;
		}
		struct dirent *de;
		while (!atomic_load(&d->rebuild_stop) && (de = readdir(dp)) != NULL) {
			const char *why = "not an object file name";
			int64_t mtime = 0;
			struct entry *e = NULL;
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			if (de->d_type == DT_DIR)
				continue; /* not ours to delete */
			bool named = valid_name(de->d_name, sub);
			if (named)
				e = scan_file(fd, de->d_name, buf, hdrs, &mtime, &why);
			if (e == NULL && why == NULL)
				continue; /* could not be opened: left alone */
			if (e == NULL) {
				log_debug("cache_dir %s: %s/%s: %s; deleted", d->dir, sub,
					  de->d_name, why);
				dropped++;
				if (!named) { /* no write ever makes such a name */
					(void)unlinkat(fd, de->d_name, 0);
					continue;
				}
				if (nbad == badcap) {
					badcap = badcap ? badcap * 2 : 256;
					bad = sl_realloc(bad, badcap * sizeof(*bad));
				}
				memcpy(bad[nbad++], de->d_name, DISKFMT_NAME_LEN + 1);
				continue;
			}
			if (n == cap) {
				cap = cap ? cap * 2 : 1024;
				all = sl_realloc(all, cap * sizeof(*all));
			}
			all[n++] = (struct found){e, mtime};
		}
		closedir(dp);
	}
	/* Oldest first, so the CLOCK order and "oldest variant" survive:
	 * generations by age, and each, newest first, to the old end. */
	if (n > 0)
		qsort(all, n, sizeof(*all), found_cmp);
	if (d->rebuild_hook)
		d->rebuild_hook(d->rebuild_hook_arg);
	*kept = 0;
	pthread_mutex_lock(&d->mu);
	drop_bad(d, bad, nbad);
	/* In batches, so that the workers' lookups wait for one at most. */
	for (size_t i = n; i-- > 0;) {
		struct entry *e = all[i].e;
		e->gen = i + 1;
		enum found_fate f =
			atomic_load(&d->rebuild_stop) ? FOUND_SUPERSEDED : index_found(d, e);
		if (f == FOUND_ADDED)
			(*kept)++;
		else if (f == FOUND_DROPPED)
			enqueue_unlink(d, e->name);
		if (f != FOUND_ADDED)
			free(e);
		if (i % MERGE_BATCH == 0) {
			pthread_mutex_unlock(&d->mu);
			pthread_mutex_lock(&d->mu);
		}
	}
	free(d->purged);
	free(d->live);
	d->purged = d->live = NULL;
	/* A directory over SIZE (SIZE made smaller) may have many to go:
	 * in batches too. */
	while (evict_some(d, MERGE_BATCH)) {
		pthread_mutex_unlock(&d->mu);
		pthread_mutex_lock(&d->mu);
	}
	atomic_store(&d->rebuilt, true);
	pthread_mutex_unlock(&d->mu);
	free(bad);
	free(all);
	free(hdrs);
	free(buf);
	return dropped;
}

void disk_rebuild_hook(struct disk_store *d, void (*fn)(void *), void *arg)
{
	SL_CHECK_OBJ(d, DISK_MAGIC);
	d->rebuild_hook = fn;
	d->rebuild_hook_arg = arg;
}

static void *rebuild_main(void *arg)
{
	struct disk_store *d = arg;
	uint64_t t0 = clock_mono_ms(), kept = 0;
	unsigned dropped = scan(d, &kept);
	if (atomic_load(&d->rebuild_stop))
		return NULL;
	uint64_t objects, bytes;
	disk_stats(d, &objects, &bytes, NULL);
	log_info("cache_dir %s: %" PRIu64 " objects, %" PRIu64 " bytes of %" PRIu64
		 "; index rebuilt in %" PRIu64 " ms: %" PRIu64 " files kept, %u bad files deleted",
		 d->dir, objects, bytes, d->cap, clock_mono_ms() - t0, kept, dropped);
	return NULL;
}

void disk_rebuild(struct disk_store *d)
{
	SL_CHECK_OBJ(d, DISK_MAGIC);
	if (d->rebuild_started || atomic_load(&d->rebuilt))
		return;
	int rc = pthread_create(&d->rebuild_tid, NULL, rebuild_main, d);
	if (rc != 0) {
		char eb[128];
		log_error("cache_dir %s: cannot start the index rebuild (%s); rebuilding now",
			  d->dir, err_str(rc, eb, sizeof(eb)));
		(void)rebuild_main(d);
		return;
	}
	d->rebuild_started = true;
	log_info("cache_dir %s: rebuilding the index in the background", d->dir);
}

bool disk_rebuilding(struct disk_store *d)
{
	SL_CHECK_OBJ(d, DISK_MAGIC);
	return !atomic_load(&d->rebuilt);
}

static void store_free(struct disk_store *d)
{
	for (struct entry *e = d->young, *next; e; e = next) {
		next = e->older;
		free(e);
	}
	for (unsigned i = 0; i < d->nthreads; i++) {
		struct io_thread *t = &d->io[i];
		/* Only jobs never run (a failed start): unlinks alone. */
		for (struct job *j = t->head, *next; j; j = next) {
			next = j->next;
			SL_ASSERT(j->kind == JOB_UNLINK);
			free(j);
		}
		pthread_cond_destroy(&t->cv);
		pthread_mutex_destroy(&t->mu);
		free(t->buf);
	}
	free(d->io);
	free(d->tab);
	free(d->purged);
	free(d->live);
	pthread_mutex_destroy(&d->mu);
	if (d->dirfd >= 0)
		close(d->dirfd);
	if (d->lockfd >= 0)
		close(d->lockfd);
	free(d->dir);
	d->magic = 0;
	free(d);
}

struct disk_store *disk_open(const char *dir, uint64_t cap, unsigned nthreads, char *err,
			     size_t errlen)
{
	char eb[128];
	size_t dlen = strlen(dir);

	if (dlen == 0 || dlen >= PATH_MAX - REL_MAX) {
		snprintf(err, errlen, "cache_dir: path empty or too long");
		return NULL;
	}
	if (nthreads == 0)
		nthreads = DISK_THREADS_DEFAULT;
	nthreads = SL_MIN(nthreads, (unsigned)DISK_THREADS_MAX);
	if (mkdir_p(dir, err, errlen) < 0)
		return NULL;
	int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		fail(err, errlen, "cannot open", dir, errno);
		return NULL;
	}
	for (int i = -1; i < 256; i++) {
		char sub[4];
		snprintf(sub, sizeof(sub), i < 0 ? "tmp" : "%02x", i);
		if (mkdirat(dirfd, sub, 0700) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "cannot create %s/%s: %s", dir, sub,
				 err_str(errno, eb, sizeof(eb)));
			close(dirfd);
			return NULL;
		}
	}
	/* One process a directory: a second would delete the first's files
	 * being written (clean_dir) and keep a size budget of its own. */
	int lockfd = openat(dirfd, "lock", O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
	int locked = lockfd < 0 ? -1 : flock(lockfd, LOCK_EX | LOCK_NB);
	if (locked < 0 && lockfd >= 0 && errno == EBADF) {
		/* Read-only, so that a directory in use can be remounted; NFS
		 * takes an exclusive lock only on a file open for writing. */
		close(lockfd);
		lockfd = openat(dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		locked = lockfd < 0 ? -1 : flock(lockfd, LOCK_EX | LOCK_NB);
	}
	if (locked < 0) {
		int e = errno;
		if (e == EWOULDBLOCK)
			snprintf(err, errlen, "in use by another process (it holds %s/lock)", dir);
		else
			snprintf(err, errlen, "cannot lock %s/lock: %s", dir,
				 err_str(e, eb, sizeof(eb)));
		if (lockfd >= 0)
			close(lockfd);
		close(dirfd);
		return NULL;
	}
	clean_dir(dirfd, "tmp");
	/* A directory we cannot write is found now, not on the first write. */
	int pfd = openat(dirfd, "tmp/probe", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (pfd < 0) {
		snprintf(err, errlen, "cannot write in %s/tmp: %s", dir,
			 err_str(errno, eb, sizeof(eb)));
		close(lockfd);
		close(dirfd);
		return NULL;
	}
	close(pfd);
	(void)unlinkat(dirfd, "tmp/probe", 0);

	struct disk_store *d = sl_calloc(1, sizeof(*d));
	d->magic = DISK_MAGIC;
	d->dir = sl_strndup(dir, dlen);
	d->dirfd = dirfd;
	d->lockfd = lockfd;
	d->cap = cap;
	pthread_mutex_init(&d->mu, NULL);
	d->tab = sl_calloc(TABLE_LO, sizeof(*d->tab));
	d->mask = TABLE_LO - 1;
	d->next_gen = GEN_LIVE;
	d->purged = sl_calloc(REBUILD_BITS / 64, sizeof(*d->purged));
	d->live = sl_calloc(REBUILD_BITS / 64, sizeof(*d->live));
	d->nthreads = nthreads;
	d->io = sl_calloc(nthreads, sizeof(*d->io));
	for (unsigned i = 0; i < nthreads; i++) {
		struct io_thread *t = &d->io[i];
		t->d = d;
		pthread_mutex_init(&t->mu, NULL);
		pthread_cond_init(&t->cv, NULL);
		t->buf = sl_malloc(IO_BUF);
	}
	for (unsigned i = 0; i < nthreads; i++) {
		int rc = pthread_create(&d->io[i].tid, NULL, io_main, &d->io[i]);
		if (rc != 0) {
			snprintf(err, errlen, "cache_dir %s: cannot start an I/O thread: %s", dir,
				 err_str(rc, eb, sizeof(eb)));
			disk_close(&d);
			return NULL;
		}
		d->io[i].started = true;
	}
	return d;
}

void disk_close(struct disk_store **dp)
{
	struct disk_store *d = *dp;
	if (d == NULL)
		return;
	*dp = NULL;
	SL_CHECK_OBJ(d, DISK_MAGIC);
	if (d->rebuild_started) { /* before the I/O threads: it queues unlinks */
		atomic_store(&d->rebuild_stop, true);
		pthread_join(d->rebuild_tid, NULL);
	}
	for (unsigned i = 0; i < d->nthreads; i++) {
		struct io_thread *t = &d->io[i];
		if (!t->started)
			continue;
		pthread_mutex_lock(&t->mu);
		t->stop = true;
		pthread_cond_signal(&t->cv);
		pthread_mutex_unlock(&t->mu);
		pthread_join(t->tid, NULL);
	}
	store_free(d);
}

/* ---- the public operations ---- */

bool disk_has_key(struct disk_store *d, const char *key, size_t key_len)
{
	SL_CHECK_OBJ(d, DISK_MAGIC);
	uint64_t h = cache_key_hash(key, key_len);
	bool found = false;

	pthread_mutex_lock(&d->mu);
	for (struct entry *e = d->tab[h & d->mask]; e && !found; e = e->chain)
		found = same_key(e, h, key, key_len);
	pthread_mutex_unlock(&d->mu);
	return found;
}

struct disk_read *disk_read(struct disk_store *d, struct disk_mbox *mb, const char *key,
			    size_t key_len, const struct h1_header *req, unsigned nreq,
			    disk_read_cb cb, void *arg)
{
	SL_CHECK_OBJ(d, DISK_MAGIC);
	SL_CHECK_OBJ(mb, MBOX_MAGIC);
	uint64_t h = cache_key_hash(key, key_len);
	char vk[CACHE_VARY_KEY_MAX];
	struct entry *best = NULL;
	struct disk_read *r = NULL;

	pthread_mutex_lock(&d->mu);
	for (struct entry *e = d->tab[h & d->mask]; e; e = e->chain) {
		if (!same_key(e, h, key, key_len) || (best && best->gen > e->gen))
			continue;
		struct h1_header vary = {.name = SV_LIT("Vary"),
					 .value = sv_make(e->vfield, e->vfield_len)};
		long n = policy_vary_key(&vary, e->vfield_len ? 1 : 0, req, nreq, vk, sizeof(vk));
		if (n >= 0 && (size_t)n == e->vary_len && memcmp(vk, e->vary, (size_t)n) == 0)
			best = e;
	}
	if (best) {
		best->ref = true;
		r = sl_calloc(1, sizeof(*r));
		r->magic = READ_MAGIC;
		r->job.kind = JOB_READ;
		r->job.khash = best->khash;
		r->job.nhash = best->nhash;
		r->job.gen = best->gen;
		memcpy(r->job.name, best->name, sizeof(r->job.name));
		atomic_fetch_add_explicit(&mb->refs, 1, memory_order_relaxed);
		r->mb = mb;
		r->cb = cb;
		r->arg = arg;
		atomic_init(&r->cancelled, false);
		/* Under the index lock, so the read is ordered with the
		 * writes and unlinks of this name as the index saw them. */
		enqueue(d, &r->job);
	}
	pthread_mutex_unlock(&d->mu);
	return r;
}

void disk_read_cancel(struct disk_read **rp)
{
	struct disk_read *r = *rp;
	if (r == NULL)
		return;
	*rp = NULL;
	SL_CHECK_OBJ(r, READ_MAGIC);
	/* From its own callback: freed when that returns. */
	if (r->delivering)
		return;
	atomic_store_explicit(&r->cancelled, true, memory_order_release);
}

bool disk_write(struct disk_store *d, struct cache_obj *o)
{
	return disk_write_if(d, o, NULL, NULL);
}

bool disk_write_if(struct disk_store *d, struct cache_obj *o, bool (*still)(void *arg), void *arg)
{
	SL_CHECK_OBJ(d, DISK_MAGIC);
	SL_CHECK_OBJ(o, CACHE_OBJ_MAGIC);
	if (!o->complete || o->body_len > CACHE_MAX_OBJECT_CEIL ||
	    atomic_load_explicit(&d->degraded, memory_order_relaxed))
		return false;
	uint64_t size = diskfmt_file_len(o);
	if (disk_charge(size) > d->cap)
		return false;
	/* One object alone may exceed the backlog, or it could never be
	 * written. */
	uint64_t queued = atomic_fetch_add_explicit(&d->backlog, size, memory_order_relaxed);
	if (queued > 0 && queued + size > DISK_WRITE_BACKLOG) {
		atomic_fetch_sub_explicit(&d->backlog, size, memory_order_relaxed);
		return false;
	}
	struct entry *e =
		entry_new(o->key, o->key_len, o->vary, o->vary_len, o->hdrs, o->nhdrs, size);
	struct job *j = sl_calloc(1, sizeof(*j));
	j->kind = JOB_WRITE;
	j->khash = e->khash;
	j->nhash = e->nhash;
	j->size = size;
	j->obj = cache_obj_ref(o);
	memcpy(j->name, e->name, sizeof(j->name));

	pthread_mutex_lock(&d->mu);
	if (still && !still(arg)) {
		pthread_mutex_unlock(&d->mu);
		atomic_fetch_sub_explicit(&d->backlog, size, memory_order_relaxed);
		cache_obj_put(&j->obj);
		free(j);
		free(e);
		return false;
	}
	index_add(d, e);
	j->gen = e->gen;
	enqueue(d, j);
	/* Until the rebuild is done it may have many to evict (SIZE made
	 * smaller), in batches of its own: a worker takes no more than one. */
	if (atomic_load(&d->rebuilt))
		evict(d);
	else
		(void)evict_some(d, MERGE_BATCH);
	pthread_mutex_unlock(&d->mu);
	return true;
}

bool disk_forget_if(struct disk_store *d, const struct cache_obj *o, bool (*still)(void *arg),
		    void *arg)
{
	SL_CHECK_OBJ(d, DISK_MAGIC);
	SL_CHECK_OBJ(o, CACHE_OBJ_MAGIC);
	uint64_t h = cache_key_hash(o->key, o->key_len);
	char name[DISKFMT_NAME_LEN + 1];
	bool found = false;
	diskfmt_name(o->key, o->key_len, o->vary, o->vary_len, name);

	pthread_mutex_lock(&d->mu);
	/* Invalidated since o was fetched: what the index has of the name
	 * came after that, and is newer than o. */
	if (still && !still(arg)) {
		pthread_mutex_unlock(&d->mu);
		return false;
	}
	/* A rebuild still to find its file drops it (index_found). */
	if (d->live)
		BIT_SET(d->live, cache_key_hash(name, DISKFMT_NAME_LEN));
	for (struct entry *c = d->tab[h & d->mask]; c; c = c->chain) {
		if (same_key(c, h, o->key, o->key_len) && c->vary_len == o->vary_len &&
		    memcmp(c->vary, o->vary, o->vary_len) == 0) {
			entry_remove(d, c, true);
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&d->mu);
	return found;
}

_Static_assert(DISK_THREADS_MAX <= 64, "a purge's threads are bits of a uint64_t");

/* Under the index lock: drop every entry of key, queue its file's removal,
 * and return how many, with in *threads a bit per I/O thread that got one. */
static unsigned purge_locked(struct disk_store *d, const char *key, size_t key_len,
			     uint64_t *threads)
{
	uint64_t h = cache_key_hash(key, key_len);
	unsigned n = 0;

	if (d->purged)
		BIT_SET(d->purged, h);
	struct entry **pp = &d->tab[h & d->mask];
	while (*pp) {
		struct entry *e = *pp;
		if (!same_key(e, h, key, key_len)) {
			pp = &e->chain;
			continue;
		}
		*threads |= 1ull << thread_of(d, e->nhash);
		entry_remove(d, e, true); /* *pp is now the next one */
		n++;
	}
	return n;
}

unsigned disk_purge(struct disk_store *d, const char *key, size_t key_len)
{
	SL_CHECK_OBJ(d, DISK_MAGIC);
	uint64_t threads = 0;

	pthread_mutex_lock(&d->mu);
	unsigned n = purge_locked(d, key, key_len, &threads);
	pthread_mutex_unlock(&d->mu);
	return n;
}

struct disk_read *disk_purge_wait(struct disk_store *d, struct disk_mbox *mb, const char *key,
				  size_t key_len, unsigned *n, disk_read_cb cb, void *arg)
{
	SL_CHECK_OBJ(d, DISK_MAGIC);
	SL_CHECK_OBJ(mb, MBOX_MAGIC);
	struct disk_read *r = NULL;
	uint64_t threads = 0;

	pthread_mutex_lock(&d->mu);
	*n = purge_locked(d, key, key_len, &threads);
	if (threads != 0) {
		r = sl_calloc(1, sizeof(*r));
		r->magic = READ_MAGIC;
		r->job.kind = JOB_FENCE;
		atomic_fetch_add_explicit(&mb->refs, 1, memory_order_relaxed);
		r->mb = mb;
		r->cb = cb;
		r->arg = arg;
		atomic_init(&r->cancelled, false);
		atomic_init(&r->fence_left, (unsigned)__builtin_popcountll(threads));
		/* One fence per thread, queued under the index lock behind the
		 * unlinks purge_locked() just queued there. */
		for (unsigned i = 0; i < d->nthreads; i++) {
			if (!(threads & (1ull << i)))
				continue;
			struct job *j = sl_calloc(1, sizeof(*j));
			j->kind = JOB_FENCE;
			j->fence = r;
			j->nhash = i;
			enqueue(d, j);
		}
	}
	pthread_mutex_unlock(&d->mu);
	return r;
}

uint64_t disk_unlink_failures(struct disk_store *d)
{
	SL_CHECK_OBJ(d, DISK_MAGIC);
	return atomic_load(&d->unlink_failed);
}

void disk_stats(struct disk_store *d, uint64_t *objects, uint64_t *bytes, bool *degraded)
{
	SL_CHECK_OBJ(d, DISK_MAGIC);
	pthread_mutex_lock(&d->mu);
	if (objects)
		*objects = d->objects;
	if (bytes)
		*bytes = d->bytes;
	pthread_mutex_unlock(&d->mu);
	if (degraded)
		*degraded = atomic_load(&d->degraded);
}
