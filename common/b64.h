/* b64: base64url without padding (RFC 4648 section 5), as JWTs and signed URLs use it. */
#ifndef ENCORE_B64_H
#define ENCORE_B64_H
#include <stddef.h>

/* Encodes n bytes; returns a new NUL-terminated string the caller frees. */
char *b64url_encode(const void *data, size_t n);
/* Decodes s (length slen) into a new buffer (caller frees, NUL-terminated for convenience)
 * and stores its length in *outlen. Returns NULL if s is not strict base64url. */
unsigned char *b64url_decode(const char *s, size_t slen, size_t *outlen);

#endif
