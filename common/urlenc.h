/* urlenc: percent-encoding and application/x-www-form-urlencoded pairs, as used in
 * query strings, the token endpoint's form body, and signed URLs. */
#ifndef ENCORE_URLENC_H
#define ENCORE_URLENC_H
#include "buf.h"
#include <stdbool.h>
#include <stddef.h>

/* Appends s percent-encoded (RFC 3986 unreserved characters kept) to b. */
void url_encode(struct buf *b, const char *s);
/* Decodes n bytes of s ('+' is a space when form is true) into a new string (caller frees).
 * Returns NULL on a malformed escape or an encoded NUL. */
char *url_decode(const char *s, size_t n, bool form);
/* Finds name in a form/query string "a=1&b=2" and returns its decoded value (caller frees),
 * or NULL when absent or malformed. */
char *form_get(const char *qs, const char *name);

#endif
