/* net.h - sockets: listeners, non-blocking connects, address text.
 *
 * Every fd made here is non-blocking and close-on-exec. Functions return the
 * fd (>= 0) or -errno. */
#ifndef SLUICE_NET_H
#define SLUICE_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/base.h"

/* Enough for "[ffff:...:ffff]:65535". */
#define NET_ADDRSTRLEN 56

/* Bind and listen. With reuseport, several sockets (one per worker) share the
 * address and the kernel spreads connections across them. IPv6 sockets are
 * IPV6_V6ONLY so [::]:p and 0.0.0.0:p can both be configured. */
int net_listen(const struct sockaddr *sa, socklen_t len, int backlog, bool reuseport) SL_WUR;

/* Accept one connection (accept4, non-blocking). Returns fd, or -EAGAIN when
 * none is pending, or another -errno. */
int net_accept(int lfd, struct sockaddr_storage *peer, socklen_t *plen) SL_WUR;

/* Start a non-blocking connect. Returns the fd; *in_progress is true if the
 * connect completes later (wait for writability, then net_connect_result()). */
int net_connect(const struct sockaddr *sa, socklen_t len, bool *in_progress) SL_WUR;

/* After writability: 0 if connected, else -errno of the failure. */
int net_connect_result(int fd) SL_WUR;

/* Close with SO_LINGER 0, so the peer sees a reset instead of a clean end:
 * how a proxy tells a client a body was cut short when framing cannot. */
void net_abort(int fd);

void net_set_nodelay(int fd);

/* "1.2.3.4" / "::1" (no port) or "1.2.3.4:80" / "[::1]:80" (with_port). */
void net_addr_str(const struct sockaddr *sa, char *out, size_t outlen, bool with_port);

socklen_t net_sockaddr_len(const struct sockaddr *sa);
uint16_t net_sockaddr_port(const struct sockaddr *sa);
void net_sockaddr_set_port(struct sockaddr *sa, uint16_t port);

/* True if both addresses are equal (family, address; port when with_port). */
bool net_sockaddr_eq(const struct sockaddr *a, const struct sockaddr *b, bool with_port);

/* Parse a numeric IPv4 or IPv6 literal (no brackets) into *ss with port.
 * Returns 0, or -1 if it is not a literal. */
int net_parse_ip(const char *s, uint16_t port, struct sockaddr_storage *ss) SL_WUR;

#endif
