/* chunked.h - incremental, pure decoder for the chunked transfer coding
 * (RFC 9112 §7.1).
 *
 * The decoder is a small state machine fed arbitrary slices of the stream; it
 * never allocates and never copies. Each call consumes a prefix of the input
 * and reports at most one span of chunk data inside that prefix, so a caller
 * can either forward the consumed bytes verbatim (pass-through, after
 * validation) or forward only the data spans (de-chunking).
 *
 * Strict: chunk-size is 1-16 hex digits without sign or leading whitespace,
 * no overflow past 2^62; chunk extensions are parsed (token [= token /
 * quoted-string], separated by ';' with optional BWS) and the whole size line
 * is capped at CHUNK_LINE_MAX; chunk data must be followed by CRLF exactly;
 * trailer fields are checked like header fields and capped in total at
 * CHUNK_TRAILER_MAX; bare CR or bare LF anywhere is an error. */
#ifndef SLUICE_CHUNKED_H
#define SLUICE_CHUNKED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

#define CHUNKED_ERROR (-1)

struct chunked {
	int state;	    /* private */
	uint64_t remaining; /* private: bytes of chunk data left in this chunk */
	size_t line_len;    /* private: bytes of the current line seen */
	size_t trailer_len; /* private */
	unsigned flags;	    /* private */
	bool done;	    /* public: the last CRLF of the message was consumed */
	const char *error;  /* public: short reason once CHUNKED_ERROR was returned */
};

struct chunk_span {
	const char *data; /* start of chunk data within the consumed input, or NULL */
	size_t len;	  /* 0 if this call consumed no chunk data */
};

/* Start a decoder (all fields zero is also a valid start). */
void chunked_init(struct chunked *c);

/* Consume bytes from in[0..len). Returns the number of bytes consumed (0 only
 * if len == 0 or the decoder is already done), or CHUNKED_ERROR with c->error
 * set. *span receives the data span found in the consumed bytes (at most one
 * per call: the call stops after a data span). Bytes after the end of the
 * message are not consumed. After CHUNKED_ERROR the decoder stays in error. */
long chunked_feed(struct chunked *c, const char *in, size_t len, struct chunk_span *span) SL_WUR;

#endif
