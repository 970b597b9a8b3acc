#include "obs/alog.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf/limits.h"
#include "net/net.h"

/* Once opened, the descriptor number never changes (files are swapped under
 * it with dup2), so a worker can never write to a closed or reused number. */
static atomic_int log_fd = -1;
static atomic_bool log_on;
static atomic_int log_format = ALOG_SQUID;
static char *log_path; /* main thread only */

static __thread char *tbuf;
static __thread size_t tlen;

static int open_target(const char *path)
{
	int fd;
	if (strcmp(path, "stderr") == 0)
		fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
	else
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	return fd < 0 ? -errno : fd;
}

int alog_configure(const char *path, enum alog_format fmt)
{
	int old = atomic_load(&log_fd);

	/* The format changes only with the file, never for a file kept
	 * because the new one would not open: one file, one format. */
	if (path == NULL) {
		atomic_store(&log_format, (int)fmt);
		atomic_store(&log_on, false);
		free(log_path);
		log_path = NULL;
		return 0;
	}
	if (log_path && strcmp(log_path, path) == 0 && old >= 0) {
		atomic_store(&log_format, (int)fmt);
		atomic_store(&log_on, true);
		return 0;
	}
	int fd = open_target(path);
	if (fd < 0)
		return fd;
	if (old >= 0) {
		/* Swap the file under the same number workers already use. */
		if (dup2(fd, old) < 0) {
			int e = errno;
			close(fd);
			return -e;
		}
		close(fd);
	} else {
		atomic_store(&log_fd, fd);
	}
	atomic_store(&log_format, (int)fmt);
	free(log_path);
	log_path = sl_strndup(path, strlen(path));
	atomic_store(&log_on, true);
	return 0;
}

int alog_reopen(void)
{
	int old = atomic_load(&log_fd);
	if (log_path == NULL || old < 0 || strcmp(log_path, "stderr") == 0)
		return 0;
	int fd = open_target(log_path);
	if (fd < 0)
		return fd;
	int rc = dup2(fd, old) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

void alog_shutdown(void)
{
	int fd = atomic_exchange(&log_fd, -1);
	atomic_store(&log_on, false);
	if (fd >= 0)
		close(fd);
	free(log_path);
	log_path = NULL;
}

static void sv_or_dash(char **p, char *end, struct sv v)
{
	if (v.len == 0) {
		v = SV_LIT("-");
	}
	size_t n = SL_MIN(v.len, (size_t)(end - *p));
	/* Control bytes and quotes would let a client forge log fields. */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v.p[i];
		(*p)[i] = (c < 0x20 || c == 0x7f || c == '"') ? '?' : (char)c;
	}
	*p += n;
}

size_t alog_format_rec(const struct alog_rec *r, enum alog_format fmt, char *out, size_t outlen)
{
	char client[NET_ADDRSTRLEN], up[NET_ADDRSTRLEN] = "-";
	char *p = out, *end = out + outlen - 1;
	int n;

	net_addr_str(r->client, client, sizeof(client), false);
	if (fmt == ALOG_SQUID) {
		if (r->upstream)
			net_addr_str(r->upstream, up, sizeof(up), false);
		n = snprintf(p, (size_t)(end - p), "%llu.%03llu %6llu %s %s%s/%03d %llu ",
			     (unsigned long long)(r->start_wall_us / 1000000),
			     (unsigned long long)(r->start_wall_us / 1000 % 1000),
			     (unsigned long long)(r->duration_us / 1000), client, r->tag,
			     r->aborted ? "_ABORTED" : "", r->status, (unsigned long long)r->bytes);
		p += SL_MAX(0, SL_MIN(n, (int)(end - p)));
		sv_or_dash(&p, end, r->method);
		if (p < end)
			*p++ = ' ';
		sv_or_dash(&p, end, r->url);
		n = snprintf(p, (size_t)(end - p), " - %s/%s ",
			     r->upstream ? "HIER_DIRECT" : "HIER_NONE", up);
		p += SL_MAX(0, SL_MIN(n, (int)(end - p)));
		struct sv ct = r->content_type;
		const char *semi = ct.len ? memchr(ct.p, ';', ct.len) : NULL;
		if (semi)
			ct.len = (size_t)(semi - ct.p);
		sv_or_dash(&p, end, sv_trim_ows(ct));
	} else {
		char date[64];
		struct tm tm;
		time_t t = (time_t)(r->start_wall_us / 1000000);
		if (r->upstream)
			net_addr_str(r->upstream, up, sizeof(up), true);
		gmtime_r(&t, &tm);
		strftime(date, sizeof(date), "%d/%b/%Y:%H:%M:%S +0000", &tm);
		n = snprintf(p, (size_t)(end - p), "%s - - [%s] \"", client, date);
		p += SL_MAX(0, SL_MIN(n, (int)(end - p)));
		sv_or_dash(&p, end, r->method);
		if (p < end)
			*p++ = ' ';
		sv_or_dash(&p, end, r->url);
		n = snprintf(p, (size_t)(end - p), " HTTP/1.%d\" %d %llu \"",
			     r->version == 10 ? 0 : 1,
			     r->status == 0 && r->aborted ? 499 : r->status,
			     (unsigned long long)r->bytes);
		p += SL_MAX(0, SL_MIN(n, (int)(end - p)));
		sv_or_dash(&p, end, r->referer);
		n = snprintf(p, (size_t)(end - p), "\" \"");
		p += SL_MAX(0, SL_MIN(n, (int)(end - p)));
		sv_or_dash(&p, end, r->user_agent);
		n = snprintf(p, (size_t)(end - p), "\" %llu %s",
			     (unsigned long long)(r->duration_us / 1000), up);
		p += SL_MAX(0, SL_MIN(n, (int)(end - p)));
	}
	*p++ = '\n';
	return (size_t)(p - out);
}

void alog_flush(void)
{
	int fd = atomic_load_explicit(&log_fd, memory_order_relaxed);
	size_t off = 0;

	if (tlen == 0)
		return;
	while (fd >= 0 && off < tlen) {
		ssize_t n = write(fd, tbuf + off, tlen - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* a full disk loses log lines, never requests */
		off += (size_t)n;
	}
	tlen = 0;
}

void alog_write(const struct alog_rec *r)
{
	enum { LINE_MAX_LEN = 8192 };

	if (!atomic_load_explicit(&log_on, memory_order_relaxed))
		return;
	if (tbuf == NULL)
		tbuf = sl_malloc(ALOG_BUF_SIZE);
	if (ALOG_BUF_SIZE - tlen < LINE_MAX_LEN)
		alog_flush();
	tlen += alog_format_rec(r, (enum alog_format)atomic_load(&log_format), tbuf + tlen,
				LINE_MAX_LEN);
}

void alog_thread_exit(void)
{
	alog_flush();
	free(tbuf);
	tbuf = NULL;
}
