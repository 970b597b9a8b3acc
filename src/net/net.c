#include "net/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int set_opt(int fd, int level, int name, int val)
{
	return setsockopt(fd, level, name, &val, sizeof(val));
}

int net_listen(const struct sockaddr *sa, socklen_t len, int backlog, bool reuseport)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int e;

	if (fd < 0)
		return -errno;
	if (set_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1) < 0)
		goto fail;
	if (reuseport && set_opt(fd, SOL_SOCKET, SO_REUSEPORT, 1) < 0)
		goto fail;
	if (sa->sa_family == AF_INET6 && set_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1) < 0)
		goto fail;
	if (bind(fd, sa, len) < 0)
		goto fail;
	if (listen(fd, backlog) < 0)
		goto fail;
	return fd;
fail:
	e = errno;
	close(fd);
	return -e;
}

int net_accept(int lfd, struct sockaddr_storage *peer, socklen_t *plen)
{
	*plen = sizeof(*peer);
	int fd = accept4(lfd, (struct sockaddr *)peer, plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return fd;
}

int net_connect(const struct sockaddr *sa, socklen_t len, bool *in_progress)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	*in_progress = false;
	if (connect(fd, sa, len) < 0) {
		if (errno != EINPROGRESS) {
			int e = errno;
			close(fd);
			return -e;
		}
		*in_progress = true;
	}
	net_set_nodelay(fd);
	return fd;
}

int net_connect_result(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	return err ? -err : 0;
}

void net_abort(int fd)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

void net_set_nodelay(int fd)
{
	/* Best effort: a socket that refuses TCP_NODELAY still works. */
	(void)set_opt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
}

void net_addr_str(const struct sockaddr *sa, char *out, size_t outlen, bool with_port)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
		if (with_port)
			snprintf(out, outlen, "%s:%u", ip, ntohs(s4->sin_port));
		else
			snprintf(out, outlen, "%s", ip);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
		if (with_port)
			snprintf(out, outlen, "[%s]:%u", ip, ntohs(s6->sin6_port));
		else
			snprintf(out, outlen, "%s", ip);
	} else {
		snprintf(out, outlen, "?");
	}
}

socklen_t net_sockaddr_len(const struct sockaddr *sa)
{
	return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

uint16_t net_sockaddr_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	return ntohs(((const struct sockaddr_in *)sa)->sin_port);
}

void net_sockaddr_set_port(struct sockaddr *sa, uint16_t port)
{
	if (sa->sa_family == AF_INET6)
		((struct sockaddr_in6 *)sa)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)sa)->sin_port = htons(port);
}

bool net_sockaddr_eq(const struct sockaddr *a, const struct sockaddr *b, bool with_port)
{
	if (a->sa_family != b->sa_family)
		return false;
	if (with_port && net_sockaddr_port(a) != net_sockaddr_port(b))
		return false;
	if (a->sa_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	if (a->sa_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
			      &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
	return false;
}

int net_parse_ip(const char *s, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, s, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		return 0;
	}
	if (inet_pton(AF_INET6, s, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		return 0;
	}
	return -1;
}
