/* tap: a tiny TAP producer for Encore's C tests. Each RUN() is one test point;
 * a failing CHECK prints what was expected and what was got, then the test goes on. */
#ifndef ENCORE_TAP_H
#define ENCORE_TAP_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_count, tap_failures, tap_current_failed;

#define CHECK(cond, ...) do { \
	if (!(cond)) { \
		tap_current_failed = 1; \
		printf("#   %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
		printf(__VA_ARGS__); \
		printf("\n"); \
	} \
} while (0)

#define CHECK_INT(got, want) do { \
	long long g_ = (long long)(got), w_ = (long long)(want); \
	CHECK(g_ == w_, "expected %s == %lld, got %lld", #got, w_, g_); \
} while (0)

#define CHECK_STR(got, want) do { \
	const char *g_ = (got), *w_ = (want); \
	CHECK(g_ && w_ && strcmp(g_, w_) == 0, "expected %s == \"%s\", got \"%s\"", #got, w_ ? w_ : "(null)", g_ ? g_ : "(null)"); \
} while (0)

#define RUN(fn) do { \
	tap_current_failed = 0; \
	fn(); \
	tap_count++; \
	if (tap_current_failed) { tap_failures++; printf("not ok %d - %s\n", tap_count, #fn); } \
	else printf("ok %d - %s\n", tap_count, #fn); \
	fflush(stdout); \
} while (0)

/* A new private directory "$TMPDIR/PREFIX-XXXXXX" (TMPDIR defaulting to /tmp) in buf; buf,
 * or NULL when it cannot be made. */
static inline char *tap_mkdtemp(char *buf, size_t cap, const char *prefix)
{
	const char *t = getenv("TMPDIR");
	if (snprintf(buf, cap, "%s/%s-XXXXXX", t && *t ? t : "/tmp", prefix) >= (int)cap)
		return NULL;
	return mkdtemp(buf);
}

#define TAP_DONE() (printf("1..%d\n", tap_count), tap_failures ? 1 : 0)

#endif
