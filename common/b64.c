/* b64: thin wrappers over libsodium's constant-time codec. */
#include "b64.h"
#include "xmem.h"
#include <sodium.h>
#include <string.h>

char *b64url_encode(const void *data, size_t n)
{
	size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char *out = xmalloc(cap);
	sodium_bin2base64(out, cap, data, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return out;
}

unsigned char *b64url_decode(const char *s, size_t slen, size_t *outlen)
{
	size_t cap = slen * 3 / 4 + 2;
	unsigned char *out = xmalloc(cap + 1);
	const char *end = NULL;
	size_t len = 0;
	if (sodium_base642bin(out, cap, s, slen, NULL, &len, &end,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    end != s + slen) {
		free(out);
		return NULL;
	}
	out[len] = 0;
	*outlen = len;
	return out;
}
