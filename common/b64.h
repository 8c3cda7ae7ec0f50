/* b64: base64url without padding (RFC 4648 section 5), as JWTs and signed URLs use it. */
#ifndef ENCORE_B64_H
#define ENCORE_B64_H
#include <stdbool.h>
#include <stddef.h>

/* Encodes n bytes; returns a new NUL-terminated string the caller frees. */
char *b64url_encode(const void *data, size_t n);
/* Encodes n bytes into out, which holds at least B64URL_LEN(n) + 1 bytes; returns out.
 * Constant time in the data (no table lookups, no branches on it): for secrets such as
 * a MAC (urlsign_sign). */
#define B64URL_LEN(n) (((n) * 4 + 2) / 3)
char *b64url_encode_ct(const unsigned char *data, size_t n, char *out);
/* Decodes s (length slen) into a new buffer (caller frees, NUL-terminated for convenience)
 * and stores its length in *outlen. Returns NULL if s is not strict base64url. */
unsigned char *b64url_decode(const char *s, size_t slen, size_t *outlen);

/* The same codec for public bytes (audio inlined in a manifest), by table: several times
 * faster than the constant-time pair above, whose care is for secrets. Same strictness:
 * the decoder refuses padding, the standard alphabet, a length of 4n+1 and non-zero
 * trailing bits. Ownership as above. */
char *b64url_encode_public(const void *data, size_t n);
unsigned char *b64url_decode_public(const char *s, size_t slen, size_t *outlen);
/* The public decoder into a caller's buffer of cap bytes (at least B64URL_DECODED_LEN(slen)),
 * for fixed-size fields such as a URL signature. True, with *outlen set, or false. */
#define B64URL_DECODED_LEN(slen) ((slen) / 4 * 3 + 2)
bool b64url_decode_into(const char *s, size_t slen, unsigned char *out, size_t cap, size_t *outlen);

#endif
