/* clock.h - monotonic and wall time. */
#ifndef SLUICE_CLOCK_H
#define SLUICE_CLOCK_H

#include <stdint.h>

/* Monotonic milliseconds since an arbitrary point (CLOCK_MONOTONIC). */
uint64_t clock_mono_ms(void);
/* Monotonic microseconds, for request durations. */
uint64_t clock_mono_us(void);
/* Wall clock in microseconds since the epoch (CLOCK_REALTIME), for logs. */
uint64_t clock_wall_us(void);

#endif
