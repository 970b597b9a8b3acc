/* alog.h - the access log: one line per request, Squid native or combined.
 *
 * The target (a file, stderr, or off) is process-wide. Workers format lines
 * into their own buffer and write it out once per loop iteration or when it
 * fills, so a line costs no lock and a busy worker one write(2) per batch.
 * Writes go to the page cache; on SIGUSR1 the main thread reopens the file
 * and dup2()s it over the same descriptor, so workers never see a change.
 *
 * Squid:    time.ms elapsed_ms client TAG[_ABORTED]/status bytes METHOD URL - HIER/peer type
 * combined: client - - [date] "METHOD URL HTTP/x.y" status bytes "referer" "agent"
 *           elapsed_ms upstream */
#ifndef SLUICE_ALOG_H
#define SLUICE_ALOG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/base.h"
#include "base/sv.h"
#include "conf/conf.h"

struct alog_rec {
	uint64_t start_wall_us;
	uint64_t duration_us;
	const struct sockaddr *client;
	const char *tag; /* TCP_MISS, TCP_TUNNEL, TCP_DENIED, NONE_NONE */
	int status;	 /* 0 if none was sent */
	uint64_t bytes;	 /* bytes sent to the client */
	/* The client did not get its whole answer: squid appends _ABORTED
	 * to the tag; combined shows a status never sent as 499 (nginx's
	 * "client closed request"). */
	bool aborted;
	struct sv method;
	struct sv url;
	int version;			 /* 10 or 11 */
	const struct sockaddr *upstream; /* NULL if none */
	struct sv content_type;
	struct sv referer;
	struct sv user_agent;
};

/* Set the target from a config (main thread). path NULL: off; "stderr";
 * else a file opened O_APPEND|O_CREAT. Returns 0, or -errno (the old target
 * and its format are kept). */
int alog_configure(const char *path, enum alog_format fmt) SL_WUR;
/* Reopen the current file (SIGUSR1). Returns 0 or -errno. */
int alog_reopen(void) SL_WUR;
/* Close the target (process exit). */
void alog_shutdown(void);

/* Per-thread: format a record into this thread's buffer. */
void alog_write(const struct alog_rec *r);
/* Per-thread: write out the buffer (call once per loop iteration). */
void alog_flush(void);

/* Flush and free this thread's buffer (thread exit). */
void alog_thread_exit(void);

/* Format one record into out (for tests). Returns the length. */
size_t alog_format_rec(const struct alog_rec *r, enum alog_format fmt, char *out, size_t outlen);

#endif
