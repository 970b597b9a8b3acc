#include "obs/counters.h"

static const char *const names[] = {
#define X(e, n, d) n,
	COUNTERS(X)
#undef X
};

static const char *const helps[] = {
#define X(e, n, d) d,
	COUNTERS(X)
#undef X
};

const char *counter_name(enum counter_id id)
{
	return names[id];
}

const char *counter_help(enum counter_id id)
{
	return helps[id];
}
