/* log.h - the error/diagnostic log (not the access log, see obs/alog.h).
 *
 * Lines go to stderr, one write(2) each so threads never interleave within a
 * line. The level is process-wide and may change on reload. */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "base/base.h"

#define LOG_LEVELS(X)     \
	X(ERROR, "error") \
	X(WARN, "warn")   \
	X(INFO, "info")   \
	X(DEBUG, "debug")

enum log_level {
#define X(e, s) LOG_##e,
	LOG_LEVELS(X)
#undef X
};

void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* Parse "error"/"warn"/"info"/"debug"; returns 0 or -1. */
int log_level_parse(const char *s, enum log_level *out) SL_WUR;
const char *log_level_str(enum log_level lvl);

void log_msg(enum log_level lvl, const char *fmt, ...) SL_PRINTF(2, 3);

/* At most one line a second from one place that a client can set off at
 * will (refused connections, denied requests), so that a flood of them is
 * not a flood of writes. One gate per thread: no locking. */
struct log_gate {
	uint64_t next_ms;
	unsigned held; /* lines held back since the last one out */
};
/* True if a line may go out at now_ms; *held then says how many were held
 * back since the one before. */
bool log_gate_pass(struct log_gate *g, uint64_t now_ms, unsigned *held);

#define log_enabled(lvl) ((lvl) <= log_get_level())
#define log_error(...)	 log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)	 log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)                                   \
	do {                                            \
		if (log_enabled(LOG_INFO))              \
			log_msg(LOG_INFO, __VA_ARGS__); \
	} while (0)
#define log_debug(...)                                   \
	do {                                             \
		if (log_enabled(LOG_DEBUG))              \
			log_msg(LOG_DEBUG, __VA_ARGS__); \
	} while (0)

#endif
