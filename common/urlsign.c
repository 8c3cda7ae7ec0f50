/* urlsign: HMAC-SHA256 over a canonical, newline-separated rendering of the claims;
 * newlines cannot occur in any field (ids are base62, ranges and IPs are ASCII tokens),
 * so two different claim sets never render the same. */
#include "urlsign.h"
#include "b64.h"
#include "buf.h"
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
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

static bool render(const struct urlsign_claims *c, struct buf *b)
{
	if (!field_ok(c->content_id) || !field_ok(c->range) || !field_ok(c->user) || !field_ok(c->ip) || c->bitrate <= 0)
		return false;
	buf_printf(b, "cdn1\n%s\n%d\n%s\n%s\n%lld\n%s", c->content_id, c->bitrate, c->range, c->user,
		   (long long)c->expires, c->ip);
	return true;
}

/* The same rendering into a caller's array; its length, or -1 (bad claims or too long). */
static int render_into(const struct urlsign_claims *c, char *out, size_t cap)
{
	if (!field_ok(c->content_id) || !field_ok(c->range) || !field_ok(c->user) || !field_ok(c->ip) || c->bitrate <= 0)
		return -1;
	int n = snprintf(out, cap, "cdn1\n%s\n%d\n%s\n%s\n%lld\n%s", c->content_id, c->bitrate, c->range, c->user,
			 (long long)c->expires, c->ip);
	return n < 0 || (size_t)n >= cap ? -1 : n;
}

static void mac(const unsigned char *key, const struct buf *b, unsigned char out[crypto_auth_hmacsha256_BYTES])
{
	crypto_auth_hmacsha256(out, (const unsigned char *)b->data, b->len, key);
}

int urlsign_sign(const struct keyring *kr, const struct urlsign_claims *c, char *sig, char *kid)
{
	const char *k;
	const unsigned char *key = keyring_current(kr, &k);
	if (!key)
		return -ENOKEY;
	struct buf b = BUF_INIT;
	if (!render(c, &b)) {
		buf_free(&b);
		return -EINVAL;
	}
	unsigned char m[crypto_auth_hmacsha256_BYTES];
	mac(key, &b, m);
	buf_free(&b);
	char *s = b64url_encode(m, sizeof(m));
	memcpy(sig, s, URLSIGN_SIG_LEN + 1);
	free(s);
	strcpy(kid, k);
	return 0;
}

enum urlsign_err urlsign_verify(const struct keyring *kr, const struct urlsign_claims *c, const char *kid,
				const char *sig, int64_t now)
{
	if (!kid || !sig || strlen(sig) != URLSIGN_SIG_LEN)
		return URLSIGN_MALFORMED;
	const crypto_auth_hmacsha256_state *keyed = keyring_find_hmac(kr, kid);
	if (!keyed)
		return URLSIGN_UNKNOWN_KEY;
	/* On the stack: this runs for every segment request, on the I/O threads. */
	unsigned char given[crypto_auth_hmacsha256_BYTES + 2];
	size_t n = 0;
	if (sodium_base642bin(given, sizeof(given), sig, URLSIGN_SIG_LEN, NULL, &n, NULL,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 || n != crypto_auth_hmacsha256_BYTES)
		return URLSIGN_MALFORMED;
	char text[URLSIGN_RENDER_MAX];
	int len = render_into(c, text, sizeof(text));
	if (len < 0)
		return URLSIGN_MALFORMED;
	unsigned char m[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256_state st = *keyed;
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)text, (unsigned long long)len);
	crypto_auth_hmacsha256_final(&st, m);
	sodium_memzero(&st, sizeof(st));
	if (sodium_memcmp(m, given, sizeof(m)) != 0)
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
