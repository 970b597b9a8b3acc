/* test_relay.c - the two-way splice relay over real loopback TCP sockets. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf/limits.h"
#include "proxy/relay.h"
#include "unit.h"

/* A connected loopback TCP pair, both ends non-blocking. */
static void tcp_pair(int *x, int *y)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	*x = *y = -1;
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&sa, &len) < 0)
		goto out;
	*x = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*x < 0 || connect(*x, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto out;
	*y = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (*y < 0)
		goto out;
	fcntl(*x, F_SETFL, O_NONBLOCK);
	fcntl(*y, F_SETFL, O_NONBLOCK);
out:
	if (l >= 0)
		close(l);
}

static int rcvbuf(int fd)
{
	int v = 0;
	socklen_t len = sizeof(v);
	return getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, &len) == 0 ? v : -1;
}

/* One round: pretend every fd is ready (the relay finds out for itself
 * with EAGAIN) and let the relay move what it can. */
static int relay_round(struct relay *r, int a, int b)
{
	int err = 0;
	relay_note(r, a, EPOLLIN | EPOLLOUT);
	relay_note(r, b, EPOLLIN | EPOLLOUT);
	return relay_event(r, -1, 0, &err);
}

/* Writer -> a ==relay== b -> reader. Sends `total` bytes (a counting
 * pattern), reading them back at the far end if `drain`; returns the bytes
 * read back, or -1 if a byte came back wrong or out of order. */
static long pump(struct relay *r, int writer, int a, int b, int reader, long total, bool drain)
{
	static char out[65536], in[65536];
	long sent = 0, got = 0;
	int idle = 0;

	for (int round = 0; round < 200000 && idle < 50; round++) {
		bool progress = false;
		while (sent < total) {
			size_t want = (size_t)SL_MIN((long)sizeof(out), total - sent);
			for (size_t i = 0; i < want; i++)
				out[i] = (char)((sent + (long)i) % 251);
			ssize_t n = write(writer, out, want);
			if (n <= 0)
				break;
			sent += n;
			progress = true;
		}
		if (relay_round(r, a, b) == RELAY_ERROR)
			return -1;
		while (drain) {
			ssize_t n = read(reader, in, sizeof(in));
			if (n <= 0)
				break;
			for (ssize_t i = 0; i < n; i++)
				if (in[i] != (char)((got + i) % 251))
					return -1;
			got += n;
			progress = true;
		}
		if (drain && got == total)
			break;
		idle = progress ? 0 : idle + 1;
		if (!progress)
			usleep(1000);
	}
	return got;
}

TEST(bytes_cross_in_order_and_half_close_is_passed_on)
{
	int w, a, b, rd;
	tcp_pair(&w, &a);
	tcp_pair(&b, &rd);
	CHECK(w >= 0 && a >= 0 && b >= 0 && rd >= 0);
	struct relay *r = relay_new(a, b, NULL, NULL);
	CHECK(r != NULL);
	if (r == NULL)
		return;

	CHECK_INT(pump(r, w, a, b, rd, 300000, true), 300000);
	uint64_t ab, ba;
	relay_bytes(r, &ab, &ba);
	CHECK_INT(ab, 300000);
	CHECK_INT(ba, 0);

	/* The writer is done: the reader must see EOF, and the other way
	 * still works until that side ends too. */
	shutdown(w, SHUT_WR);
	char c = 0;
	ssize_t n = -1;
	for (int i = 0; i < 1000 && n != 0; i++) {
		CHECK(relay_round(r, a, b) == RELAY_AGAIN);
		n = read(rd, &c, 1);
		if (n < 0)
			usleep(1000);
	}
	CHECK_INT(n, 0);
	CHECK_INT(write(rd, "ok", 2), 2);
	shutdown(rd, SHUT_WR);
	int rc = RELAY_AGAIN;
	for (int i = 0; i < 1000 && rc == RELAY_AGAIN; i++) {
		rc = relay_round(r, a, b);
		if (rc == RELAY_AGAIN)
			usleep(1000);
	}
	CHECK_INT(rc, RELAY_DONE);
	char got[3] = {0};
	CHECK_INT(read(w, got, 2), 2);
	CHECK_STR(got, "ok");
	relay_bytes(r, &ab, &ba);
	CHECK_INT(ba, 2);

	relay_free(&r);
	CHECK(r == NULL);
	close(w), close(a), close(b), close(rd);
}

TEST(bulk_transfer_fixes_the_source_buffer_where_the_system_allows)
{
	int w, a, b, rd;
	tcp_pair(&w, &a);
	tcp_pair(&b, &rd);
	CHECK(w >= 0 && a >= 0 && b >= 0 && rd >= 0);
	struct relay *r = relay_new(a, b, NULL, NULL);
	if (r == NULL) {
		CHECK(r != NULL);
		return;
	}

	/* Below the threshold the kernel's autotuning is left alone. */
	CHECK_INT(pump(r, w, a, b, rd, RELAY_WIDEN_AFTER / 4, true), RELAY_WIDEN_AFTER / 4);
	CHECK(rcvbuf(a) != 2 * RELAY_WIDE_RCVBUF);

	long total = 2L * RELAY_WIDEN_AFTER;
	CHECK_INT(pump(r, w, a, b, rd, total, true), total);
	if (relay_widens()) /* fixed, no longer autotuned; the kernel reports double */
		CHECK_INT(rcvbuf(a), 2 * RELAY_WIDE_RCVBUF);
	else
		printf("    (net.core.rmem_max below %d: widening is off here)\n",
		       RELAY_WIDE_RCVBUF);
	/* The other direction moved nothing and is left alone. */
	CHECK(rcvbuf(b) != 2 * RELAY_WIDE_RCVBUF);
	relay_free(&r);
	close(w), close(a), close(b), close(rd);
}

int main(void)
{
	relay_init();
	RUN(bytes_cross_in_order_and_half_close_is_passed_on);
	RUN(bulk_transfer_fixes_the_source_buffer_where_the_system_allows);
	return unit_done();
}
