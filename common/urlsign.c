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

enum urlsign_err urlsign_verify(const struct keyring *kr, const struct urlsign_claims *c, const char *kid,
				const char *sig, int64_t now)
{
	/* The client's signature is decoded by table: its bytes are its own, public; it is the
	 * comparison with the MAC below that must not leak, and that stays constant-time. The
	 * decoder refuses non-zero trailing bits, so each MAC has one spelling. */
	unsigned char given[B64URL_DECODED_LEN(URLSIGN_SIG_LEN)];
	size_t glen = 0;
	if (!kid || !sig || strlen(sig) != URLSIGN_SIG_LEN ||
	    !b64url_decode_into(sig, URLSIGN_SIG_LEN, given, sizeof(given), &glen) || glen != HMAC256_BYTES)
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
