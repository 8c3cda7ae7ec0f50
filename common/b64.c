/* b64: thin wrappers over libsodium's constant-time codec, a constant-time encoder for
 * fixed buffers, and a table-driven codec for public data. */
#include "b64.h"
#include "xmem.h"
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
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

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* One 6-bit value's character: by arithmetic (constant time) or by table. Inlined with a
 * constant ct, the test disappears. */
static inline char enc_char(unsigned x, bool ct)
{
	return ct ? ct_char(x) : B64URL[x];
}

/* Encodes n bytes at out (B64URL_LEN(n) + 1 bytes); returns out. */
static inline char *encode(const unsigned char *d, size_t n, char *out, bool ct)
{
	char *p = out;
	size_t i = 0;
	for (; i + 3 <= n; i += 3) {
		unsigned v = (unsigned)d[i] << 16 | (unsigned)d[i + 1] << 8 | d[i + 2];
		*p++ = enc_char(v >> 18, ct);
		*p++ = enc_char((v >> 12) & 63, ct);
		*p++ = enc_char((v >> 6) & 63, ct);
		*p++ = enc_char(v & 63, ct);
	}
	if (n - i >= 1) {
		unsigned v = (unsigned)d[i] << 16 | (n - i == 2 ? (unsigned)d[i + 1] << 8 : 0);
		*p++ = enc_char(v >> 18, ct);
		*p++ = enc_char((v >> 12) & 63, ct);
		if (n - i == 2)
			*p++ = enc_char((v >> 6) & 63, ct);
	}
	*p = 0;
	return out;
}

char *b64url_encode_ct(const unsigned char *data, size_t n, char *out)
{
	return encode(data, n, out, true);
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

char *b64url_encode_public(const void *data, size_t n)
{
	return encode(data, n, xmalloc(B64URL_LEN(n) + 1), false);
}

/* Each character's value plus one; 0 outside the alphabet. */
static const unsigned char B64URL_VAL[256] = {
	['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7, ['H'] = 8,
	['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
	['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
	['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
	['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
	['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
	['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
	['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['-'] = 63, ['_'] = 64,
};

bool b64url_decode_into(const char *s, size_t slen, unsigned char *out, size_t cap, size_t *outlen)
{
	if (slen % 4 == 1 || cap < B64URL_DECODED_LEN(slen))
		return false;
	const unsigned char *u = (const unsigned char *)s;
	unsigned char *o = out;
	size_t i = 0;
	for (; i + 4 <= slen; i += 4) {
		unsigned a = B64URL_VAL[u[i]], b = B64URL_VAL[u[i + 1]], c = B64URL_VAL[u[i + 2]], d = B64URL_VAL[u[i + 3]];
		if (!a || !b || !c || !d)
			return false;
		unsigned v = (a - 1) << 18 | (b - 1) << 12 | (c - 1) << 6 | (d - 1);
		o[0] = (unsigned char)(v >> 16);
		o[1] = (unsigned char)(v >> 8);
		o[2] = (unsigned char)v;
		o += 3;
	}
	size_t rest = slen - i;
	if (rest) {
		unsigned v = 0;
		for (size_t k = 0; k < rest; k++) {
			unsigned x = B64URL_VAL[u[i + k]];
			if (!x)
				return false;
			v = v << 6 | (x - 1);
		}
		if (rest == 2) {
			if (v & 0xf)
				return false;   /* trailing bits must be zero: one spelling per value */
			*o++ = (unsigned char)(v >> 4);
		} else {
			if (v & 0x3)
				return false;
			*o++ = (unsigned char)(v >> 10);
			*o++ = (unsigned char)(v >> 2);
		}
	}
	*outlen = (size_t)(o - out);
	return true;
}

unsigned char *b64url_decode_public(const char *s, size_t slen, size_t *outlen)
{
	size_t cap = B64URL_DECODED_LEN(slen);
	unsigned char *out = xmalloc(cap + 1);
	if (!b64url_decode_into(s, slen, out, cap, outlen)) {
		free(out);
		return NULL;
	}
	out[*outlen] = 0;
	return out;
}
