/* base.h - asserts, magic-checked objects and small macros every module uses.
 *
 * Asserts are always on: a broken invariant in a proxy is a security bug, and
 * the cost of a predictable branch is nothing next to a syscall. */
#ifndef SLUICE_BASE_H
#define SLUICE_BASE_H

#include <stddef.h>
#include <stdint.h>
#include <stdnoreturn.h>

#define SL_WUR				   __attribute__((warn_unused_result))
#define SL_UNUSED			   __attribute__((unused))
#define SL_PRINTF(f, a)			   __attribute__((format(printf, f, a)))
#define SL_LIKELY(x)			   __builtin_expect(!!(x), 1)
#define SL_UNLIKELY(x)			   __builtin_expect(!!(x), 0)
#define SL_ARRAY_LEN(a)			   (sizeof(a) / sizeof((a)[0]))
#define SL_MIN(a, b)			   ((a) < (b) ? (a) : (b))
#define SL_MAX(a, b)			   ((a) > (b) ? (a) : (b))
#define SL_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* Report a failed assertion and abort. Never returns. */
noreturn void sl_assert_fail(const char *expr, const char *file, int line, const char *func);

#define SL_ASSERT(c) (SL_LIKELY(c) ? (void)0 : sl_assert_fail(#c, __FILE__, __LINE__, __func__))

/* Long-lived objects carry `unsigned magic` as their first member; public
 * functions check it on entry so a stale or foreign pointer aborts at once. */
#define SL_CHECK_OBJ(o, m) SL_ASSERT((o) != NULL && (o)->magic == (m))

/* Allocation that cannot fail from the caller's view: out of memory aborts
 * with a message (a proxy that half-handles OOM corrupts more than it saves).
 * Sizes are checked for overflow. */
void *sl_malloc(size_t n);
void *sl_calloc(size_t nmemb, size_t size);
void *sl_realloc(void *p, size_t n);
char *sl_strndup(const char *s, size_t n);

#endif
