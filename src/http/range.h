/* range.h - the Range request field (RFC 9110 §14), for answering from a
 * complete stored representation (pure).
 *
 * Only byte ranges, and only one: a request for several ranges is answered
 * with the whole representation, which a server may always do (§14.2). */
#ifndef SLUICE_RANGE_H
#define SLUICE_RANGE_H

#include <stdint.h>

#include "base/sv.h"

enum range_result {
	RANGE_IGNORE,	     /* not one valid byte range: send the whole representation */
	RANGE_OK,	     /* 206 with bytes first..last */
	RANGE_UNSATISFIABLE, /* 416 (§15.5.17) */
};

/* Parse a Range value against a representation of len bytes: "bytes=A-B",
 * "bytes=A-" or "bytes=-N" (the unit case-insensitive, §14.1). A syntax
 * error, another unit, last < first, or more than one range gives
 * RANGE_IGNORE; a range starting at or past len, or a zero suffix, gives
 * RANGE_UNSATISFIABLE. On RANGE_OK, *first and *last (inclusive) are within
 * the representation. */
enum range_result range_parse(struct sv value, uint64_t len, uint64_t *first, uint64_t *last);

#endif
