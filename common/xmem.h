/* xmem: allocation that aborts on out-of-memory, so callers never test for NULL. */
#ifndef ENCORE_XMEM_H
#define ENCORE_XMEM_H
#include <stddef.h>

/* Each returns valid memory or aborts the process with a message on stderr. */
void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a fresh string; caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
