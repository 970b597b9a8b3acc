/* key.h - the cache's primary key (RFC 9111 §2): the target URI, normalised
 * as RFC 9110 §4.2.3 allows for http URIs, so that equivalent spellings
 * share one entry. Pure: no I/O, no allocation. */
#ifndef SLUICE_CACHE_KEY_H
#define SLUICE_CACHE_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "base/sv.h"

/* Write the key of http://host:port/path into out[cap]: "http://", the host
 * lower-cased without a trailing dot (an IPv6 literal in brackets), ":" and
 * the port always, then
 * the path and query ("/" for an empty path) with each %XX that encodes an
 * unreserved character decoded and the hex digits of the others upper-cased.
 * Returns the length, or -1 if the key does not fit or a '%' is not followed
 * by two hex digits. */
long cache_key_make(struct sv host, bool ipv6, uint16_t port, struct sv path, char *out,
		    size_t cap) SL_WUR;

/* The key's hash for the index (XXH3, 64 bits). */
uint64_t cache_key_hash(const char *key, size_t len);

#endif
