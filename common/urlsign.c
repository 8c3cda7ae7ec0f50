/* urlsign: HMAC-SHA256 over a canonical, newline-separated rendering of the claims;
 * newlines cannot occur in any field (ids are base62, ranges and IPs are ASCII tokens),
 * so two different claim sets never render the same. */
#include "urlsign.h"
#include "b64.h"
#include <errno.h>
#include <sodium.h>
#include <stdint.h>
#include <string.h>

/* Five fields of at most 128 bytes, the bitrate, the expiry and the separators. */
#define URLSIGN_RENDER_MAX (5 + 5 * 129 + 24 + 24)

/* A claim field: 1 to 128 bytes, no newline (the rendering's separator). One pass. */
static bool field_ok(const char *s)
{
	if (!s)
		return false;
	size_t i = 0;
	for (; s[i]; i++)
		if (s[i] == '\n' || s[i] == '\r' || i >= 128)
			return false;
	return i > 0;
}

/* Appends v in decimal at p; returns the end. */
static char *put_dec(char *p, long long v)
{
	char d[24];
	int k = (int)sizeof(d);
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
	do {
		d[--k] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		d[--k] = '-';
	memcpy(p, d + k, sizeof(d) - (size_t)k);
	return p + sizeof(d) - (size_t)k;
}

/* Renders the claims into out (at least URLSIGN_RENDER_MAX bytes): "cdn1", then id, bitrate,
 * range, user, expiry and IP, newline-separated. Its length, or -1 for bad claims. By hand: this runs for every segment request, on an I/O thread,
 * where snprintf's machinery was a visible share of the request's CPU. */
static int render_into(const struct urlsign_claims *c, char *out)
{
	if (!field_ok(c->content_id) || !field_ok(c->range) || !field_ok(c->user) || !field_ok(c->ip) || c->bitrate <= 0)
		return -1;
	char *p = stpcpy(out, "cdn1\n");
	p = stpcpy(stpcpy(p, c->content_id), "\n");
	p = put_dec(p, c->bitrate);
	*p++ = '\n';
	p = stpcpy(stpcpy(p, c->range), "\n");
	p = stpcpy(stpcpy(p, c->user), "\n");
	p = put_dec(p, (long long)c->expires);
	*p++ = '\n';
	p = stpcpy(p, c->ip);
	return (int)(p - out);
}

int urlsign_sign(const struct keyring *kr, const struct urlsign_claims *c, char *sig, char *kid)
{
	const char *k;
	if (!keyring_current(kr, &k))
		return -ENOKEY;
	char text[URLSIGN_RENDER_MAX];
	int len = render_into(c, text);
	if (len < 0)
		return -EINVAL;
	unsigned char m[HMAC256_BYTES];
	hmac256(keyring_find_hmac(kr, k), text, (size_t)len, m);
	b64url_encode_ct(m, sizeof(m), sig);
	strcpy(kid, k);
	return 0;
}

/* Decodes a URLSIGN_SIG_LEN-character base64url signature into 32 bytes; false when it is
 * not one. A table and branches are fine here: these are the client's own bytes, public,
 * and it is the comparison with the MAC that must not leak, which stays constant-time. */
static bool decode_sig(const char *sig, unsigned char out[HMAC256_BYTES])
{
	/* Each character's value plus one; 0 for a character outside the alphabet. */
	static const unsigned char val[256] = {
		['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7, ['H'] = 8,
		['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
		['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
		['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
		['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
		['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
		['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
		['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['-'] = 63, ['_'] = 64,
	};
	uint32_t acc = 0;
	int bits = 0;
	size_t n = 0;
	for (size_t i = 0; i < URLSIGN_SIG_LEN; i++) {
		unsigned v = val[(unsigned char)sig[i]];
		if (!v)
			return false;
		acc = acc << 6 | (v - 1);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (unsigned char)(acc >> bits);
		}
	}
	/* 43 characters carry 258 bits: the last 2 must be zero, so each MAC has one spelling. */
	return (acc & ((1u << bits) - 1)) == 0;
}

enum urlsign_err urlsign_verify(const struct keyring *kr, const struct urlsign_claims *c, const char *kid,
				const char *sig, int64_t now)
{
	unsigned char given[HMAC256_BYTES];
	if (!kid || !sig || strlen(sig) != URLSIGN_SIG_LEN || !decode_sig(sig, given))
		return URLSIGN_MALFORMED;
	const struct hmac256_key *keyed = keyring_find_hmac(kr, kid);
	if (!keyed)
		return URLSIGN_UNKNOWN_KEY;
	/* On the stack: this runs for every segment request, on the I/O threads. */
	char text[URLSIGN_RENDER_MAX];
	int len = render_into(c, text);
	if (len < 0)
		return URLSIGN_MALFORMED;
	unsigned char m[HMAC256_BYTES];
	hmac256(keyed, text, (size_t)len, m);
	bool same = sodium_memcmp(m, given, sizeof(m)) == 0;
	sodium_memzero(m, sizeof(m));
	if (!same)
		return URLSIGN_BAD_SIGNATURE;
	return now < c->expires ? URLSIGN_OK : URLSIGN_EXPIRED;
}

const char *urlsign_strerror(enum urlsign_err e)
{
	switch (e) {
	case URLSIGN_OK: return "ok";
	case URLSIGN_MALFORMED: return "malformed signed URL";
	case URLSIGN_UNKNOWN_KEY: return "URL signed with an unknown key";
	case URLSIGN_BAD_SIGNATURE: return "invalid URL signature";
	case URLSIGN_EXPIRED: return "signed URL expired";
	}
	return "invalid signed URL";
}
