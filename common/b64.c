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

/* The base64url character for a 6-bit value, by arithmetic on masks (after libsodium's
 * codec): each range test is a borrow bit turned into an all-ones or all-zeros byte. */
static char ct_char(unsigned x)
{
	unsigned lt26 = ((x - 26u) >> 8) & 0xffu, lt52 = ((x - 52u) >> 8) & 0xffu, lt62 = ((x - 62u) >> 8) & 0xffu,
		 eq62 = (((0u - (x ^ 62u)) >> 8) & 0xffu) ^ 0xffu, eq63 = (((0u - (x ^ 63u)) >> 8) & 0xffu) ^ 0xffu;
	return (char)((lt26 & (x + 'A')) | (~lt26 & lt52 & (x + 'a' - 26)) | (~lt52 & lt62 & (x + '0' - 52)) |
		      (eq62 & '-') | (eq63 & '_'));
}

char *b64url_encode_ct(const unsigned char *data, size_t n, char *out)
{
	char *p = out;
	size_t i = 0;
	for (; i + 3 <= n; i += 3) {
		unsigned v = (unsigned)data[i] << 16 | (unsigned)data[i + 1] << 8 | data[i + 2];
		*p++ = ct_char(v >> 18);
		*p++ = ct_char((v >> 12) & 63);
		*p++ = ct_char((v >> 6) & 63);
		*p++ = ct_char(v & 63);
	}
	if (n - i == 1) {
		unsigned v = (unsigned)data[i] << 16;
		*p++ = ct_char(v >> 18);
		*p++ = ct_char((v >> 12) & 63);
	} else if (n - i == 2) {
		unsigned v = (unsigned)data[i] << 16 | (unsigned)data[i + 1] << 8;
		*p++ = ct_char(v >> 18);
		*p++ = ct_char((v >> 12) & 63);
		*p++ = ct_char((v >> 6) & 63);
	}
	*p = 0;
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
