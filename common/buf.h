/* buf: a growable byte string, always NUL-terminated so it can be used as a C string. */
#ifndef ENCORE_BUF_H
#define ENCORE_BUF_H
#include <stddef.h>
#include <stdint.h>

struct buf {
	char *data;   /* owned; NULL until the first append */
	size_t len;
	size_t cap;
};

#define BUF_INIT {NULL, 0, 0}

void buf_append(struct buf *b, const void *p, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_reset(struct buf *b);
/* Hands the storage to the caller (who frees it) and leaves b empty. Never NULL. */
char *buf_steal(struct buf *b);
void buf_free(struct buf *b);

#endif
