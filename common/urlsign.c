/* urlsign: HMAC-SHA256 over a canonical, newline-separated rendering of the claims;
 * newlines cannot occur in any field (ids are base62, ranges and IPs are ASCII tokens),
 * so two different claim sets never render the same. */
#include "urlsign.h"
#include "b64.h"
#include <errno.h>
#include <sodium.h>
#include <string.h>

/* Five fields of at most 128 bytes, the bitrate, the expiry and the separators. */
#define URLSIGN_RENDER_MAX (5 + 5 * 129 + 24 + 24)

static bool field_ok(const char *s)
{
	if (!s || !*s || strlen(s) > 128)
		return false;
	for (; *s; s++)
		if (*s == '\n' || *s == '\r')
			return false;
	return true;
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

static bool b64url_char(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
}

enum urlsign_err urlsign_verify(const struct keyring *kr, const struct urlsign_claims *c, const char *kid,
				const char *sig, int64_t now)
{
	if (!kid || !sig || strlen(sig) != URLSIGN_SIG_LEN)
		return URLSIGN_MALFORMED;
	for (size_t i = 0; i < URLSIGN_SIG_LEN; i++)
		if (!b64url_char(sig[i]))
			return URLSIGN_MALFORMED;  /* the client's own bytes: branching on them leaks nothing */
	const struct hmac256_key *keyed = keyring_find_hmac(kr, kid);
	if (!keyed)
		return URLSIGN_UNKNOWN_KEY;
	/* On the stack: this runs for every segment request, on the I/O threads. The MAC is
	 * encoded (in constant time) rather than the client's signature decoded: that is a
	 * third of the cost, and the comparison is then of the text, still in constant time. */
	char text[URLSIGN_RENDER_MAX];
	int len = render_into(c, text);
	if (len < 0)
		return URLSIGN_MALFORMED;
	unsigned char m[HMAC256_BYTES];
	char expect[URLSIGN_SIG_LEN + 1];
	hmac256(keyed, text, (size_t)len, m);
	b64url_encode_ct(m, sizeof(m), expect);
	bool same = sodium_memcmp(expect, sig, URLSIGN_SIG_LEN) == 0;
	sodium_memzero(m, sizeof(m));
	sodium_memzero(expect, sizeof(expect));
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
