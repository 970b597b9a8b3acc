/* relay.h - a two-way byte relay between two sockets, for CONNECT tunnels
 * and upgraded (WebSocket) connections; reusable by the reverse tunnel.
 *
 * Each direction is a symmetric half: bytes already read into a buffer are
 * written first, then the kernel moves the rest with splice() through a pipe,
 * so tunnel bytes never cross into user space. A half that sees EOF shuts
 * down the other side's write end once its pipe is drained (half-close is
 * passed on); the relay is done when both halves are. Backpressure is
 * natural: a half reads only when its pipe has room.
 *
 * The relay does not own the sockets' ev_io registrations: the owner passes
 * events in with relay_event(), so the same relay works wherever the fds are
 * registered. */
#ifndef SLUICE_RELAY_H
#define SLUICE_RELAY_H

#include <stdbool.h>
#include <stdint.h>

#include "base/base.h"
#include "buf/iobuf.h"

#define RELAY_AGAIN 0
#define RELAY_DONE  1
#define RELAY_ERROR (-1)

struct relay;

/* Read the system limits the relay tunes to; once, before any relay_new(). */
void relay_init(void);
/* Whether bulk halves get their source's receive buffer raised (the system
 * allows RELAY_WIDE_RCVBUF). */
bool relay_widens(void);

/* Make a relay between fds a and b. a_to_b / b_to_a: bytes already read from
 * one side for the other (taken over, may be NULL). Returns NULL if no pipe
 * could be made (errno set). */
struct relay *relay_new(int a, int b, struct iobuf **a_to_b, struct iobuf **b_to_a);
void relay_free(struct relay **rp);

/* Note readiness on fd (a or b) and move bytes until both halves would
 * block. Returns RELAY_AGAIN, RELAY_DONE (both directions ended cleanly) or
 * RELAY_ERROR (a socket failed; *err = -errno). */
int relay_event(struct relay *r, int fd, uint32_t revents, int *err) SL_WUR;

/* Only note readiness on fd (a or b); relay_event(r, -1, 0, ...) moves. */
void relay_note(struct relay *r, int fd, uint32_t revents);

/* Bytes moved a->b and b->a so far. */
void relay_bytes(const struct relay *r, uint64_t *a_to_b, uint64_t *b_to_a);

#endif
