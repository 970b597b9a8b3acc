/*
 * connect_bulk - bulk download load generator for the sluice benchmark.
 *
 * N threads, one connection each at a time. Every thread, until the run
 * ends: connect to ADDR; when a proxy is named with -x, send
 * "CONNECT ORIGIN HTTP/1.1" and wait for a 2xx; then send a plain
 * "GET PATH HTTP/1.1" (inside the tunnel, or straight to the origin),
 * read the response header, and read and discard Content-Length bytes
 * of body; close and start again. Body bytes are discarded in the kernel
 * (recv with MSG_TRUNC), so the client costs little CPU.
 *
 * Only bytes received during the measured window (after the warm-up)
 * count. Prints one line:
 *   CBRESULT bytes=B seconds=S mib_s=M objects=O errors=E p50_ms=X p99_ms=Y
 * objects/p50/p99 are over objects completed in the window (time from
 * connect() to the last body byte; with -k from the request to the last
 * body byte).
 *
 * With -k each thread keeps its connection and sends its GETs on it one
 * after another (keep-alive; a new connection only after an error).
 *
 *   connect_bulk -a 127.0.0.1:8080 [-x] -o 127.0.0.1:8080 -u /64m
 *                -c 4 -d 10 -w 2 [-k]
 *     -a HOST:PORT  where to connect (the proxy, or the origin for direct)
 *     -x            -a is a proxy: open a CONNECT tunnel to -o first
 *     -o HOST:PORT  the origin (CONNECT target and Host header; any Host
 *                   value without -x)
 *     -k            keep-alive: one connection per thread, reused
 *     -u PATH       object to fetch (default /64m)
 *     -c N          parallel connections (default 4)
 *     -d SECONDS    measured time (default 10)
 *     -w SECONDS    warm-up, not measured (default 2)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 256
#define MAX_SAMPLES 100000

static struct sockaddr_in g_addr;
static int g_via_proxy;
static int g_keep;
static const char *g_origin = NULL;
static const char *g_path = "/64m";
static atomic_int g_stop;
static atomic_int g_measuring;

struct worker {
	pthread_t tid;
	atomic_uint_least64_t bytes; /* body+header bytes received, total */
	atomic_uint_least64_t errors;
	/* per-object durations completed while measuring (ms) */
	double *samples;
	size_t nsamples;
	uint64_t objects;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_hostport(const char *s, struct sockaddr_in *sa)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)atoi(colon + 1));
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read a response header into buf (NUL-terminated). Returns header length,
 * sets *extra to the bytes after the header that were read too. */
static ssize_t read_header(int fd, char *buf, size_t cap, size_t *extra,
			   struct worker *w)
{
	size_t have = 0;
	for (;;) {
		if (have + 1 >= cap)
			return -1;
		ssize_t r = recv(fd, buf + have, cap - 1 - have, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		if (atomic_load_explicit(&g_measuring, memory_order_relaxed))
			atomic_fetch_add_explicit(&w->bytes, (uint64_t)r,
						  memory_order_relaxed);
		have += (size_t)r;
		buf[have] = '\0';
		char *end = strstr(buf, "\r\n\r\n");
		if (end) {
			size_t hlen = (size_t)(end - buf) + 4;
			*extra = have - hlen;
			return (ssize_t)hlen;
		}
	}
}

static int status_of(const char *hdr)
{
	/* "HTTP/1.x NNN" */
	if (strncmp(hdr, "HTTP/1.", 7) != 0 || strlen(hdr) < 12)
		return -1;
	return atoi(hdr + 9);
}

static long long content_length(const char *hdr)
{
	const char *p = hdr;
	while ((p = strchr(p, '\n')) != NULL) {
		p++;
		if (strncasecmp(p, "content-length:", 15) == 0)
			return atoll(p + 15);
	}
	return -1;
}

/* A connected socket (through a CONNECT tunnel with -x), or -1. */
static int open_conn(struct worker *w, char *hbuf, size_t hcap)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct timeval tv = { .tv_sec = 1, .tv_usec = 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	char req[512];
	size_t extra;

	if (connect(fd, (struct sockaddr *)&g_addr, sizeof(g_addr)) < 0)
		goto fail;
	if (g_via_proxy) {
		int n = snprintf(req, sizeof(req),
				 "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n",
				 g_origin, g_origin);
		if (send_all(fd, req, (size_t)n) < 0)
			goto fail;
		if (read_header(fd, hbuf, hcap, &extra, w) < 0)
			goto fail;
		int st = status_of(hbuf);
		if (st < 200 || st > 299 || extra != 0)
			goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

/* One GET on fd, its body read and dropped. 0: done, 1: stopped, -1: error
 * (the connection is no longer usable). */
static int fetch(int fd, struct worker *w, char *hbuf, size_t hcap)
{
	char req[512];
	size_t extra;
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", g_path,
			 g_origin, g_keep ? "" : "Connection: close\r\n");
	if (send_all(fd, req, (size_t)n) < 0)
		return -1;
	if (read_header(fd, hbuf, hcap, &extra, w) < 0)
		return -1;
	if (status_of(hbuf) != 200)
		return -1;
	long long left = content_length(hbuf);
	if (left < 0 || (long long)extra > left)
		return -1;
	left -= (long long)extra;
	while (left > 0) {
		/* MSG_TRUNC on TCP: the kernel drops the bytes, no copy. */
		ssize_t r = recv(fd, hbuf, (size_t)(left > (1 << 22) ? (1 << 22) : left),
				 MSG_TRUNC);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (atomic_load(&g_stop))
				return 1;
			continue;
		}
		if (r <= 0)
			return -1;
		if (atomic_load_explicit(&g_measuring, memory_order_relaxed))
			atomic_fetch_add_explicit(&w->bytes, (uint64_t)r,
						  memory_order_relaxed);
		left -= r;
		if (left > 0 && atomic_load_explicit(&g_stop, memory_order_relaxed))
			return 1;
	}
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	char *hbuf = malloc(1 << 22);
	if (!hbuf)
		return NULL;
	int fd = -1;
	while (!atomic_load(&g_stop)) {
		int measuring_at_start = atomic_load(&g_measuring);
		double t0 = now_s();
		int rc = -1;
		if (fd < 0)
			fd = open_conn(w, hbuf, 16384);
		if (fd >= 0)
			rc = fetch(fd, w, hbuf, 16384);
		if (fd >= 0 && (rc != 0 || !g_keep)) {
			close(fd);
			fd = -1;
		}
		if (rc < 0) {
			if (!atomic_load(&g_stop)) {
				atomic_fetch_add(&w->errors, 1);
				usleep(10000);
			}
			continue;
		}
		if (rc == 0 && measuring_at_start && !atomic_load(&g_stop)) {
			w->objects++;
			if (w->nsamples < MAX_SAMPLES)
				w->samples[w->nsamples++] = (now_s() - t0) * 1000.0;
		}
	}
	if (fd >= 0)
		close(fd);
	free(hbuf);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void usage(void)
{
	fprintf(stderr, "usage: connect_bulk -a HOST:PORT [-x] -o HOST:PORT [-u PATH] "
			"[-c N] [-d SECONDS] [-w SECONDS] [-k]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *addr = NULL;
	int conns = 4;
	double dur = 10, warm = 2;
	int opt;
	while ((opt = getopt(argc, argv, "a:xo:u:c:d:w:k")) != -1) {
		switch (opt) {
		case 'a': addr = optarg; break;
		case 'x': g_via_proxy = 1; break;
		case 'o': g_origin = optarg; break;
		case 'u': g_path = optarg; break;
		case 'c': conns = atoi(optarg); break;
		case 'd': dur = atof(optarg); break;
		case 'w': warm = atof(optarg); break;
		case 'k': g_keep = 1; break;
		default: usage();
		}
	}
	if (!addr || !g_origin || conns < 1 || conns > MAX_THREADS || dur <= 0)
		usage();
	if (parse_hostport(addr, &g_addr) < 0) {
		fprintf(stderr, "connect_bulk: bad address %s\n", addr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);

	struct worker *ws = calloc((size_t)conns, sizeof(*ws));
	if (!ws)
		return 1;
	for (int i = 0; i < conns; i++) {
		ws[i].samples = calloc(MAX_SAMPLES, sizeof(double));
		if (!ws[i].samples ||
		    pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]) != 0) {
			fprintf(stderr, "connect_bulk: cannot start thread\n");
			return 1;
		}
	}
	if (warm > 0)
		usleep((useconds_t)(warm * 1e6));
	double t0 = now_s();
	atomic_store(&g_measuring, 1);
	usleep((useconds_t)(dur * 1e6));
	atomic_store(&g_measuring, 0);
	double t1 = now_s();
	atomic_store(&g_stop, 1);

	uint64_t bytes = 0, errors = 0, objects = 0;
	size_t ns = 0;
	for (int i = 0; i < conns; i++) {
		pthread_join(ws[i].tid, NULL);
		bytes += atomic_load(&ws[i].bytes);
		errors += atomic_load(&ws[i].errors);
		objects += ws[i].objects;
		ns += ws[i].nsamples;
	}
	double *all = calloc(ns ? ns : 1, sizeof(double));
	size_t k = 0;
	for (int i = 0; i < conns; i++)
		for (size_t j = 0; j < ws[i].nsamples; j++)
			all[k++] = ws[i].samples[j];
	qsort(all, ns, sizeof(double), cmp_double);
	double p50 = ns ? all[(ns - 1) / 2] : 0;
	double p99 = ns ? all[(size_t)((double)(ns - 1) * 0.99)] : 0;
	double secs = t1 - t0;
	printf("CBRESULT bytes=%llu seconds=%.3f mib_s=%.1f objects=%llu errors=%llu "
	       "p50_ms=%.1f p99_ms=%.1f\n",
	       (unsigned long long)bytes, secs, (double)bytes / secs / 1048576.0,
	       (unsigned long long)objects, (unsigned long long)errors, p50, p99);
	return 0;
}
