/* disk.h - the disk store: the large, persistent tier beneath the memory
 * store. Complete objects (cache/mem.h) are kept one per file in the
 * format of cache/diskfmt.h, and survive a restart, kill -9 included.
 *
 * No disk I/O on a worker's loop. The index of what is stored lives in
 * memory; lookups, inserts and purges work on it under one mutex in short
 * critical sections, never held across I/O. The files are read and written
 * by a few I/O threads the store starts. A read completes on the asking
 * worker's loop through that worker's mailbox (struct disk_mbox).
 *
 * Layout: DIR/xy/<32 hex digits>, the hex being a 128-bit hash of the key
 * and secondary key and xy its first two digits (256 subdirectories keep
 * directories small); DIR/tmp holds files being written.
 *
 * Crash safety: a file is written under a temporary name and renamed into
 * place, so a kill -9 leaves the old file or the new one, never half of
 * one. There is no fsync before the rename: after a power loss the renamed
 * file may be torn, and its checksum (diskfmt.h) catches that on reading
 * or at start-up, when the file is dropped. Losing a cached object is
 * cheap; an fsync per object is not.
 *
 * Ordering: every operation on one file name (write, read, unlink) runs on
 * the same I/O thread, chosen by the name's hash, in the order the index
 * asked for it; so a purge queued after a write removes what that write
 * made, and a read queued after a write reads what it wrote.
 *
 * Eviction: CLOCK over the index in insertion order. A hit sets an entry's
 * reference bit; when the store is over its capacity, the oldest entry is
 * dropped unless its bit is set, in which case the bit is cleared and the
 * entry goes to the young end. Capacity is counted in bytes of object
 * files.
 *
 * Start-up: the index is rebuilt from the files' headers on a thread of its
 * own (disk_rebuild), while the proxy already serves: until it is done a
 * stored object it has not reached reads as a miss, and what is written or
 * purged meanwhile wins over what it finds. It orders what it finds oldest
 * file (by modification time) first, behind everything written since.
 *
 * Failures: a full disk (ENOSPC, EDQUOT) or a directory that can no longer
 * be written (EACCES, EPERM, EROFS) degrades the store, with one log line:
 * no more writes (until a restart), reads of what is stored go on. A file
 * found torn or corrupted is deleted and reads as a miss. */
#ifndef SLUICE_CACHE_DISK_H
#define SLUICE_CACHE_DISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "cache/mem.h"
#include "ev/ev.h"
#include "http/h1.h"

/* I/O threads when 0 is asked for, and the most that may be. */
#define DISK_THREADS_DEFAULT 2
#define DISK_THREADS_MAX     64
/* Bytes of objects queued for writing at most; a write beyond it is
 * dropped (the object is still in memory), so a slow disk cannot make
 * the queue hold the whole memory cache twice. */
#define DISK_WRITE_BACKLOG (64u << 20)
/* Every file counts against the store's size in whole blocks of this many
 * bytes, as it takes room on the disk: so the index, whose entries live in
 * memory, never holds more than size / DISK_BLOCK of them. */
#define DISK_BLOCK 4096u

/* A file of file_len bytes as the store counts it. */
static inline uint64_t disk_charge(uint64_t file_len)
{
	return (file_len + DISK_BLOCK - 1) / DISK_BLOCK * DISK_BLOCK;
}

struct disk_store;
struct disk_mbox;
struct disk_read;

/* Open the store in dir with a capacity of cap bytes and nthreads I/O
 * threads (0: DISK_THREADS_DEFAULT; at most DISK_THREADS_MAX). Creates dir
 * and its subdirectories as needed and deletes leftover temporary files;
 * the index starts empty, until disk_rebuild(). Blocking: for the main
 * thread at start-up.
 * Returns NULL with the reason in err[errlen] if dir cannot be created,
 * read or written (the caller runs with the memory cache alone). */
struct disk_store *disk_open(const char *dir, uint64_t cap, unsigned nthreads, char *err,
			     size_t errlen) SL_WUR;

/* Rebuild the index from the headers of the files in the background,
 * deleting files with a bad header or a name that is not their key's; if
 * they hold more than the capacity, the oldest go. Logs one line when
 * done. Once per store; the store may be used meanwhile. */
void disk_rebuild(struct disk_store *d);
/* Whether the rebuild has not finished (or not started) yet. */
bool disk_rebuilding(struct disk_store *d);
/* For tests: fn(arg) is called on the rebuild's thread once its scan of
 * the files is done, before what it found goes into the index. Set before
 * disk_rebuild(). */
void disk_rebuild_hook(struct disk_store *d, void (*fn)(void *), void *arg);

/* Stop a rebuild still running (what it found is dropped), finish the
 * queued writes and unlinks, and the queued reads (their
 * callbacks run on their loops as usual), stop the threads, free the
 * store. *dp is set to NULL. No other call on the store may be running or
 * made afterwards. */
void disk_close(struct disk_store **dp);

/* A worker's mailbox: an eventfd registered on loop, on which the I/O
 * threads post completed reads; their callbacks run on loop's thread. One
 * per loop; free it on that thread (loop still alive). Returns NULL with
 * errno set if the eventfd cannot be made or registered. */
struct disk_mbox *disk_mbox_new(struct ev_loop *loop) SL_WUR;
/* Reads not yet delivered through it are dropped: their callbacks never
 * run and their handles must not be used again. *mp is set to NULL. Not
 * from within a read callback. */
void disk_mbox_free(struct disk_mbox **mp);

/* A read's result: o is a complete object the callee owns a reference to,
 * or NULL when the file was missing, torn or corrupted (its entry and file
 * are then dropped). */
typedef void (*disk_read_cb)(void *arg, struct cache_obj *o);

/* Look up the stored response for key that the request (its header lines)
 * selects, like mem_lookup(): the variant whose secondary key equals the
 * request's under that variant's stored Vary. The index is searched on
 * the calling thread (no I/O). A miss returns NULL at once and cb never
 * runs. A hit returns a handle: the file is read and verified on an I/O
 * thread, and cb(arg, o) runs later on mb's loop, exactly once unless the
 * read is cancelled. The handle is valid until then. */
struct disk_read *disk_read(struct disk_store *d, struct disk_mbox *mb, const char *key,
			    size_t key_len, const struct h1_header *req, unsigned nreq,
			    disk_read_cb cb, void *arg) SL_WUR;
/* Whether the index holds any response for key, whichever variant. */
bool disk_has_key(struct disk_store *d, const char *key, size_t key_len);
/* On mb's loop, before the callback ran: it never will, and an object
 * already read is freed. *rp is set to NULL; a NULL *rp is ignored. */
void disk_read_cancel(struct disk_read **rp);

/* Store a complete object: the store takes its own reference and writes it
 * in the background. It replaces the stored one with the same key and
 * secondary key at once in the index; a key keeps at most
 * CACHE_MAX_VARIANTS variants (the oldest goes); then entries are evicted
 * until the store is within its capacity. Returns false, doing nothing, if
 * the object is not complete, is larger than the whole store, the write
 * backlog is full, or the store is degraded. */
bool disk_write(struct disk_store *d, struct cache_obj *o);
/* The same, but only if still(arg), asked under the index's lock, at the
 * moment the object would enter the index: a disk_purge() is then either
 * before it (and still() can know) or after the entry is in (and drops it). */
bool disk_write_if(struct disk_store *d, struct cache_obj *o, bool (*still)(void *arg), void *arg);

/* A newer response of o's key and secondary key was seen but not written
 * (disk_write refused it, or it was not stored at all): the stored one of
 * that name goes, from the index at once and its file in the background,
 * so that it is never served in place of what superseded it (RFC 9111
 * §4: the most recent response). Unless still(arg), called under the
 * index lock as for disk_write_if(), says o was invalidated since it was
 * fetched: then what the index holds came later and stays. Returns
 * whether an entry went. */
bool disk_forget_if(struct disk_store *d, const struct cache_obj *o, bool (*still)(void *arg),
		    void *arg);

/* Remove every stored variant of key: from the index at once (a read
 * started after this misses), the files in the background. Returns how
 * many. */
unsigned disk_purge(struct disk_store *d, const char *key, size_t key_len);
/* The same, and when the files are gone too: if any were, returns a handle
 * whose cb(arg, NULL) runs on mb's loop once every removal this queued has
 * run (so the purge outlives a kill of the process from then on, not a
 * power loss: there is no fsync; a removal that failed counts as run, and
 * shows in disk_unlink_failures());
 * exactly once unless cancelled with disk_read_cancel(), as for a read.
 * NULL if the index had none (cb never runs): during the start-up rebuild,
 * files it has not reached are not waited for (they are deleted when it
 * merges). *n is how many the index had. */
struct disk_read *disk_purge_wait(struct disk_store *d, struct disk_mbox *mb, const char *key,
				  size_t key_len, unsigned *n, disk_read_cb cb, void *arg) SL_WUR;

/* How many file removals have failed (a read-only or unwritable directory:
 * the file stays, and the next start-up's rebuild reads it back). Such a
 * failure of EACCES, EPERM or EROFS also degrades the store. */
uint64_t disk_unlink_failures(struct disk_store *d);

/* Objects and bytes (of files) in the index, and whether the store is
 * degraded (writes stopped after a full disk or an unwritable directory).
 * Any pointer may be NULL. */
void disk_stats(struct disk_store *d, uint64_t *objects, uint64_t *bytes, bool *degraded);

#endif
