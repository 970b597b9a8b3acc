/* chunked.c - incremental chunked transfer coding decoder (RFC 9112 §7.1).
 *
 * Everything but chunk data is walked one byte at a time through a state
 * machine whose whole memory is struct chunked, so where the input is split
 * cannot change the outcome: the same bytes give the same data spans (joined)
 * and the same verdict whether they arrive at once or one by one. Chunk data
 * is taken in bulk, as much of the current chunk as the slice holds. */
#include "http/chunked.h"

#include <limits.h>
#include <string.h>

#include "base/sv.h"
#include "buf/limits.h"

enum {
	/* chunk-size line; S_SIZE is 0 so a zeroed struct is a fresh decoder */
	S_SIZE = 0,	/* hex digits */
	S_EXT_BWS,	/* BWS after size or value: only ';' may follow */
	S_EXT_PRE_NAME, /* after ';': BWS, then ext name */
	S_EXT_NAME,
	S_EXT_NAME_BWS, /* BWS after name: '=' or ';' */
	S_EXT_PRE_VAL,	/* after '=': BWS, then token or quoted-string */
	S_EXT_VAL,
	S_EXT_QUOTED,
	S_EXT_QESC,    /* after a backslash in a quoted-string */
	S_EXT_AFTER_Q, /* after the closing quote */
	S_SIZE_LF,     /* CR seen, LF expected */
	/* chunk data and its CRLF */
	S_DATA,
	S_DATA_CR,
	S_DATA_LF,
	/* trailer section after the last chunk */
	S_TR_START,
	S_TR_NAME,
	S_TR_VALUE,
	S_TR_LF,
	S_FINAL_LF,
	S_DONE,
	S_ERROR,
};

/* A chunk size above this is refused: it keeps every length sum far from
 * overflow and no real chunk is anywhere near it. */
#define CHUNK_SIZE_MAX	  ((uint64_t)1 << 62)
#define CHUNK_SIZE_DIGITS 16

void chunked_init(struct chunked *c)
{
	*c = (struct chunked){0};
}

/* ch is the offending byte (an unexpected LF is named as such, being the
 * smuggling case), or 0 when a limit rather than a byte is the reason. */
static long fail(struct chunked *c, const char *why, unsigned char ch)
{
	c->state = S_ERROR;
	c->error = ch == '\n' ? "bare LF in chunked coding" : why;
	return CHUNKED_ERROR;
}

static bool is_ws(unsigned char ch)
{
	return ch == ' ' || ch == '\t';
}

/* qdtext (RFC 9110 §5.6.4): HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text */
static bool is_qdtext(unsigned char ch)
{
	return ch == '\t' || ch == ' ' || ch == 0x21 || (ch >= 0x23 && ch <= 0x5b) ||
	       (ch >= 0x5d && ch <= 0x7e) || ch >= 0x80;
}

/* field-value bytes, and quoted-pair's second byte: HTAB / SP / VCHAR / obs-text */
static bool is_fval(unsigned char ch)
{
	return ch == '\t' || (ch >= 0x20 && ch != 0x7f);
}

/* One byte of the chunk-size line (states S_SIZE .. S_SIZE_LF). */
static long size_line_byte(struct chunked *c, unsigned char ch)
{
	if (ch != '\r' && c->state != S_SIZE_LF && ++c->line_len > CHUNK_LINE_MAX)
		return fail(c, "chunk size line too long", 0);

	switch (c->state) {
	case S_SIZE: {
		int d = sv_hexval(ch);
		if (d >= 0) {
			if (c->line_len > CHUNK_SIZE_DIGITS)
				return fail(c, "chunk size has too many digits", 0);
			if (c->remaining > (CHUNK_SIZE_MAX - (uint64_t)d) / 16)
				return fail(c, "chunk size too large", 0);
			c->remaining = c->remaining * 16 + (uint64_t)d;
			return 0;
		}
		/* line_len counts every byte but CR: this byte is the first
		 * of the line, with no digit before it */
		if (c->line_len == (ch == '\r' ? 0u : 1u))
			return fail(c, "bad chunk size", ch);
		if (ch == '\r')
			c->state = S_SIZE_LF;
		else if (ch == ';')
			c->state = S_EXT_PRE_NAME;
		else if (is_ws(ch))
			c->state = S_EXT_BWS;
		else
			return fail(c, "bad chunk size", ch);
		return 0;
	}
	case S_EXT_BWS:
		if (ch == ';')
			c->state = S_EXT_PRE_NAME;
		else if (!is_ws(ch))
			return fail(c, "bad chunk extension", ch);
		return 0;
	case S_EXT_PRE_NAME:
		if (sv_is_tchar(ch))
			c->state = S_EXT_NAME;
		else if (!is_ws(ch))
			return fail(c, "bad chunk extension name", ch);
		return 0;
	case S_EXT_NAME:
		if (sv_is_tchar(ch))
			return 0;
		if (ch == '=')
			c->state = S_EXT_PRE_VAL;
		else if (ch == ';')
			c->state = S_EXT_PRE_NAME;
		else if (ch == '\r')
			c->state = S_SIZE_LF;
		else if (is_ws(ch))
			c->state = S_EXT_NAME_BWS;
		else
			return fail(c, "bad chunk extension name", ch);
		return 0;
	case S_EXT_NAME_BWS:
		if (ch == '=')
			c->state = S_EXT_PRE_VAL;
		else if (ch == ';')
			c->state = S_EXT_PRE_NAME;
		else if (!is_ws(ch))
			return fail(c, "bad chunk extension", ch);
		return 0;
	case S_EXT_PRE_VAL:
		if (sv_is_tchar(ch))
			c->state = S_EXT_VAL;
		else if (ch == '"')
			c->state = S_EXT_QUOTED;
		else if (!is_ws(ch))
			return fail(c, "bad chunk extension value", ch);
		return 0;
	case S_EXT_VAL:
	case S_EXT_AFTER_Q:
		if (c->state == S_EXT_VAL && sv_is_tchar(ch))
			return 0;
		if (ch == ';')
			c->state = S_EXT_PRE_NAME;
		else if (ch == '\r')
			c->state = S_SIZE_LF;
		else if (is_ws(ch))
			c->state = S_EXT_BWS;
		else
			return fail(c, "bad chunk extension value", ch);
		return 0;
	case S_EXT_QUOTED:
		if (ch == '"')
			c->state = S_EXT_AFTER_Q;
		else if (ch == '\\')
			c->state = S_EXT_QESC;
		else if (!is_qdtext(ch))
			return fail(c, "bad byte in chunk extension", ch);
		return 0;
	case S_EXT_QESC:
		if (!is_fval(ch))
			return fail(c, "bad byte in chunk extension", ch);
		c->state = S_EXT_QUOTED;
		return 0;
	case S_SIZE_LF:
		if (ch != '\n')
			return fail(c, "bare CR in chunk size line", ch);
		c->line_len = 0;
		if (c->remaining == 0) {
			c->trailer_len = 0;
			c->state = S_TR_START;
		} else {
			c->state = S_DATA;
		}
		return 0;
	}
	SL_ASSERT(!"unreachable chunk size state");
	return CHUNKED_ERROR;
}

/* One byte after the data of a chunk or in the trailer section. */
static long framing_byte(struct chunked *c, unsigned char ch)
{
	if (c->state >= S_TR_START && ++c->trailer_len > CHUNK_TRAILER_MAX)
		return fail(c, "chunked trailer section too large", 0);

	switch (c->state) {
	case S_DATA_CR:
		if (ch != '\r')
			return fail(c, "chunk data not followed by CRLF", ch);
		c->state = S_DATA_LF;
		return 0;
	case S_DATA_LF:
		if (ch != '\n')
			return fail(c, "bare CR after chunk data", ch);
		c->remaining = 0;
		c->state = S_SIZE;
		return 0;
	case S_TR_START:
		/* trailer fields are checked like header fields (RFC 9112 §7.1.2) */
		if (ch == '\r')
			c->state = S_FINAL_LF;
		else if (sv_is_tchar(ch))
			c->state = S_TR_NAME;
		else if (is_ws(ch))
			return fail(c, "obs-fold in trailer", ch);
		else
			return fail(c, "bad trailer field name", ch);
		return 0;
	case S_TR_NAME:
		if (ch == ':')
			c->state = S_TR_VALUE;
		else if (is_ws(ch))
			return fail(c, "whitespace before colon in trailer", ch);
		else if (!sv_is_tchar(ch))
			return fail(c, "bad trailer field name", ch);
		return 0;
	case S_TR_VALUE:
		if (ch == '\r')
			c->state = S_TR_LF;
		else if (!is_fval(ch))
			return fail(c, "control byte in trailer value", ch);
		return 0;
	case S_TR_LF:
		if (ch != '\n')
			return fail(c, "bare CR in trailer", ch);
		c->state = S_TR_START;
		return 0;
	case S_FINAL_LF:
		if (ch != '\n')
			return fail(c, "bare CR at end of chunked body", ch);
		c->state = S_DONE;
		c->done = true;
		return 0;
	}
	SL_ASSERT(!"unreachable chunked framing state");
	return CHUNKED_ERROR;
}

long chunked_feed(struct chunked *c, const char *in, size_t len, struct chunk_span *span)
{
	SL_ASSERT(c != NULL && span != NULL);
	SL_ASSERT(in != NULL || len == 0);
	SL_ASSERT(len <= (size_t)LONG_MAX);

	span->data = NULL;
	span->len = 0;
	if (c->state == S_ERROR)
		return CHUNKED_ERROR;

	size_t i = 0;
	while (i < len && c->state != S_DONE) {
		if (c->state == S_DATA) {
			size_t n = len - i;
			if (c->remaining < n)
				n = (size_t)c->remaining;
			span->data = in + i;
			span->len = n;
			c->remaining -= n;
			if (c->remaining == 0)
				c->state = S_DATA_CR;
			return (long)(i + n);
		}
		unsigned char ch = (unsigned char)in[i];
		long rc = c->state <= S_SIZE_LF ? size_line_byte(c, ch) : framing_byte(c, ch);
		if (rc < 0)
			return rc;
		i++;
	}
	return (long)i;
}
