/*
 * idle_clients - open many keep-alive client connections and leave them idle.
 *
 * Opens N connections to ADDR (at most -p connects/requests in flight at a
 * time), sends one GET on each ("GET TARGET HTTP/1.1", keep-alive), reads the
 * whole response (Content-Length framed), then leaves the connection idle.
 * When every connection is idle or failed it prints
 *   READY idle=I failed=F closed_by_peer=C
 * and holds the connections until SIGTERM/SIGINT or -H seconds, watching for
 * connections the server closes. On exit it prints
 *   DONE idle=I failed=F closed_by_peer=C
 *
 *   idle_clients -a 127.0.0.1:3128 -t http://127.0.0.1:8080/1k
 *                -h 127.0.0.1:8080 -n 5000 [-p 200] [-H 300]
 *     -a HOST:PORT  where to connect (proxy, or origin / reverse proxy)
 *     -t TARGET     request-target: absolute URL for a forward proxy, or /1k
 *     -h HOST       Host header value
 *     -n N          connections (default 5000)
 *     -p N          connections being set up at the same time (default 200)
 *     -H SECONDS    hold at most this long after READY (default 300)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum state { ST_FREE, ST_CONNECTING, ST_SENDING, ST_READING, ST_IDLE, ST_FAILED, ST_CLOSED };

struct conn {
	int fd;
	enum state st;
	size_t sent;
	size_t have;      /* bytes of response read */
	long long total;  /* header + body length once known, else -1 */
	char *buf;        /* only while reading */
};

#define RBUF 16384

static volatile sig_atomic_t g_quit;
static void on_sig(int s) { (void)s; g_quit = 1; }

static char g_req[1024];
static size_t g_reqlen;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fail(struct conn *c, int ep, int *inflight, int *failed)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	c->st = ST_FAILED;
	(*inflight)--;
	(*failed)++;
}

/* Returns 1 when the response is complete, 0 to wait, -1 on error. */
static int on_readable(struct conn *c)
{
	for (;;) {
		if (c->have >= RBUF - 1)
			return -1;
		ssize_t r = recv(c->fd, c->buf + c->have, RBUF - 1 - c->have, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (r <= 0)
			return -1;
		c->have += (size_t)r;
		c->buf[c->have] = '\0';
		if (c->total < 0) {
			char *end = strstr(c->buf, "\r\n\r\n");
			if (end) {
				if (strncmp(c->buf, "HTTP/1.", 7) != 0 || atoi(c->buf + 9) != 200)
					return -1;
				long long cl = -1;
				for (char *p = c->buf; p && p < end; p = strchr(p, '\n')) {
					if (*p == '\n')
						p++;
					if (strncasecmp(p, "content-length:", 15) == 0) {
						cl = atoll(p + 15);
						break;
					}
				}
				if (cl < 0)
					return -1;
				c->total = (long long)(end - c->buf) + 4 + cl;
			}
		}
		if (c->total >= 0 && (long long)c->have >= c->total)
			return (long long)c->have == c->total ? 1 : -1;
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: idle_clients -a HOST:PORT -t TARGET -h HOST [-n N] [-p N] [-H SECONDS]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *addr = NULL, *target = NULL, *host = NULL;
	int n = 5000, par = 200;
	double hold = 300;
	int opt;
	while ((opt = getopt(argc, argv, "a:t:h:n:p:H:")) != -1) {
		switch (opt) {
		case 'a': addr = optarg; break;
		case 't': target = optarg; break;
		case 'h': host = optarg; break;
		case 'n': n = atoi(optarg); break;
		case 'p': par = atoi(optarg); break;
		case 'H': hold = atof(optarg); break;
		default: usage();
		}
	}
	if (!addr || !target || !host || n < 1 || par < 1)
		usage();

	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < (rlim_t)n + 64) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_cur < (rlim_t)n + 64) {
			fprintf(stderr, "idle_clients: RLIMIT_NOFILE %llu too low for %d\n",
				(unsigned long long)rl.rlim_cur, n);
			return 1;
		}
	}

	struct sockaddr_in sa;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	{
		char h[64];
		const char *colon = strrchr(addr, ':');
		if (!colon || (size_t)(colon - addr) >= sizeof(h))
			usage();
		memcpy(h, addr, (size_t)(colon - addr));
		h[colon - addr] = '\0';
		sa.sin_port = htons((uint16_t)atoi(colon + 1));
		if (inet_pton(AF_INET, h, &sa.sin_addr) != 1)
			usage();
	}
	g_reqlen = (size_t)snprintf(g_req, sizeof(g_req),
				    "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: idle_clients\r\n\r\n",
				    target, host);

	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_sig);
	signal(SIGINT, on_sig);

	struct conn *cs = calloc((size_t)n, sizeof(*cs));
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (!cs || ep < 0)
		return 1;
	for (int i = 0; i < n; i++) {
		cs[i].fd = -1;
		cs[i].total = -1;
	}

	int next = 0, inflight = 0, idle = 0, failed = 0;
	struct epoll_event evs[256];
	double deadline = now_s() + 120;
	while ((idle + failed < n) && !g_quit) {
		while (next < n && inflight < par) {
			struct conn *c = &cs[next];
			c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			if (c->fd < 0) {
				c->st = ST_FAILED;
				failed++;
				next++;
				continue;
			}
			int one = 1;
			setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			c->buf = malloc(RBUF);
			int r = connect(c->fd, (struct sockaddr *)&sa, sizeof(sa));
			if (r < 0 && errno != EINPROGRESS) {
				close(c->fd);
				c->fd = -1;
				free(c->buf);
				c->buf = NULL;
				c->st = ST_FAILED;
				failed++;
				next++;
				continue;
			}
			c->st = ST_CONNECTING;
			struct epoll_event ev = { .events = EPOLLOUT | EPOLLIN | EPOLLRDHUP,
						  .data.u32 = (uint32_t)next };
			epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
			inflight++;
			next++;
		}
		int k = epoll_wait(ep, evs, 256, 1000);
		if (now_s() > deadline) {
			fprintf(stderr, "idle_clients: setup timed out\n");
			break;
		}
		for (int j = 0; j < k; j++) {
			struct conn *c = &cs[evs[j].data.u32];
			uint32_t e = evs[j].events;
			if (c->st == ST_IDLE) {
				/* the server closed an idle connection during setup */
				char b[64];
				if (recv(c->fd, b, sizeof(b), 0) == 0 || (e & (EPOLLHUP | EPOLLERR))) {
					epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
					close(c->fd);
					c->fd = -1;
					c->st = ST_CLOSED;
				}
				continue;
			}
			if (c->st == ST_CONNECTING && (e & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
				int err = 0;
				socklen_t el = sizeof(err);
				getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
				if (err) {
					fail(c, ep, &inflight, &failed);
					continue;
				}
				c->st = ST_SENDING;
			}
			if (c->st == ST_SENDING) {
				ssize_t w = send(c->fd, g_req + c->sent, g_reqlen - c->sent, MSG_NOSIGNAL);
				if (w < 0 && errno != EAGAIN) {
					fail(c, ep, &inflight, &failed);
					continue;
				}
				if (w > 0)
					c->sent += (size_t)w;
				if (c->sent == g_reqlen) {
					c->st = ST_READING;
					struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP,
								  .data.u32 = evs[j].data.u32 };
					epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
				}
			}
			if (c->st == ST_READING && (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
				int r = on_readable(c);
				if (r < 0) {
					fail(c, ep, &inflight, &failed);
					continue;
				}
				if (r == 1) {
					free(c->buf);
					c->buf = NULL;
					c->st = ST_IDLE;
					inflight--;
					idle++;
				}
			}
		}
	}
	int closed = 0;
	for (int i = 0; i < n; i++)
		if (cs[i].st == ST_CLOSED)
			closed++;
	printf("READY idle=%d failed=%d closed_by_peer=%d\n", idle - closed, n - idle, closed);
	fflush(stdout);

	double until = now_s() + hold;
	while (!g_quit && now_s() < until) {
		int k = epoll_wait(ep, evs, 256, 500);
		for (int j = 0; j < k; j++) {
			struct conn *c = &cs[evs[j].data.u32];
			if (c->st != ST_IDLE)
				continue;
			char b[64];
			ssize_t r = recv(c->fd, b, sizeof(b), 0);
			if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR) ||
			    (evs[j].events & (EPOLLHUP | EPOLLERR))) {
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				close(c->fd);
				c->fd = -1;
				c->st = ST_CLOSED;
			}
		}
	}
	closed = 0;
	idle = 0;
	for (int i = 0; i < n; i++) {
		if (cs[i].st == ST_CLOSED)
			closed++;
		if (cs[i].st == ST_IDLE)
			idle++;
	}
	printf("DONE idle=%d failed=%d closed_by_peer=%d\n", idle, n - idle - closed, closed);
	fflush(stdout);
	for (int i = 0; i < n; i++)
		if (cs[i].fd >= 0)
			close(cs[i].fd);
	return 0;
}
