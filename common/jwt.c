/* jwt: header and claims are parsed only after the signature checks out, so forged
 * input never reaches the JSON parser beyond the header. */
#include "jwt.h"
#include "b64.h"
#include "buf.h"
#include "json.h"
#include "xmem.h"
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Clock skew tolerated between token issuer and verifier. */
#define JWT_SKEW_SECONDS 60

char *jwt_sign(const struct keyring *kr, const struct jwt_claims *c)
{
	const char *kid;
	const unsigned char *key = keyring_current(kr, &kid);
	if (!key)
		return NULL;

	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kstr(&w, "alg", "HS256");
	jw_kstr(&w, "typ", "JWT");
	jw_kstr(&w, "kid", kid);
	jw_obj_end(&w);
	char *header = jw_finish(&w);

	jw_obj(&w);
	jw_kstr(&w, "sub", c->sub);
	jw_kstr(&w, "tier", c->tier);
	jw_kstr(&w, "country", c->country);
	if (c->admin)
		jw_kbool(&w, "admin", true);
	jw_kint(&w, "iat", c->iat);
	jw_kint(&w, "exp", c->exp);
	jw_obj_end(&w);
	char *payload = jw_finish(&w);

	char *h64 = b64url_encode(header, strlen(header));
	char *p64 = b64url_encode(payload, strlen(payload));
	struct buf out = BUF_INIT;
	buf_printf(&out, "%s.%s", h64, p64);
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256(mac, (const unsigned char *)out.data, out.len, key);
	char *s64 = b64url_encode(mac, sizeof(mac));
	buf_printf(&out, ".%s", s64);

	free(header);
	free(payload);
	free(h64);
	free(p64);
	free(s64);
	return buf_steal(&out);
}

static bool copy_claim(yajl_val obj, const char *key, char *dst, size_t cap)
{
	const char *s = json_get_str(obj, key);
	if (!s || strlen(s) >= cap)
		return false;
	strcpy(dst, s);
	return true;
}

enum jwt_err jwt_verify(const struct keyring *kr, const char *token, int64_t now, struct jwt_claims *out)
{
	enum jwt_err rc = JWT_MALFORMED;
	unsigned char *header = NULL, *sig = NULL, *payload = NULL;
	yajl_val hdr = NULL, claims = NULL;
	size_t len = strlen(token);
	if (len == 0 || len > JWT_MAX_LEN)
		goto done;
	const char *dot1 = strchr(token, '.');
	const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
	if (!dot1 || !dot2 || strchr(dot2 + 1, '.'))
		goto done;

	size_t hlen, slen, plen;
	header = b64url_decode(token, (size_t)(dot1 - token), &hlen);
	if (!header || strlen((char *)header) != hlen)
		goto done;
	hdr = json_parse((char *)header, NULL, 0);
	if (!hdr || !YAJL_IS_OBJECT(hdr))
		goto done;
	const char *alg = json_get_str(hdr, "alg");
	if (!alg || strcmp(alg, "HS256") != 0) {
		rc = JWT_BAD_ALG;
		goto done;
	}
	const char *kid = json_get_str(hdr, "kid");
	const unsigned char *key = kid ? keyring_find(kr, kid) : NULL;
	if (!key) {
		rc = JWT_UNKNOWN_KEY;
		goto done;
	}
	sig = b64url_decode(dot2 + 1, strlen(dot2 + 1), &slen);
	if (!sig || slen != crypto_auth_hmacsha256_BYTES) {
		rc = JWT_BAD_SIGNATURE;
		goto done;
	}
	/* crypto_auth_hmacsha256_verify compares in constant time. */
	if (crypto_auth_hmacsha256_verify(sig, (const unsigned char *)token, (size_t)(dot2 - token), key) != 0) {
		rc = JWT_BAD_SIGNATURE;
		goto done;
	}
	payload = b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), &plen);
	if (!payload || strlen((char *)payload) != plen)
		goto done;
	claims = json_parse((char *)payload, NULL, 0);
	struct jwt_claims c;
	memset(&c, 0, sizeof(c));
	long long iat, exp;
	if (!claims || !copy_claim(claims, "sub", c.sub, sizeof(c.sub)) ||
	    !copy_claim(claims, "tier", c.tier, sizeof(c.tier)) ||
	    !copy_claim(claims, "country", c.country, sizeof(c.country)) ||
	    !json_get_int(claims, "iat", &iat) || !json_get_int(claims, "exp", &exp))
		goto done;
	json_get_bool(claims, "admin", &c.admin);
	c.iat = iat;
	c.exp = exp;
	if (now >= c.exp) {
		rc = JWT_EXPIRED;
		goto done;
	}
	if (c.iat > now + JWT_SKEW_SECONDS) {
		rc = JWT_NOT_YET_VALID;
		goto done;
	}
	*out = c;
	rc = JWT_OK;
done:
	yajl_tree_free(hdr);
	yajl_tree_free(claims);
	free(header);
	free(sig);
	free(payload);
	return rc;
}

const char *jwt_strerror(enum jwt_err e)
{
	switch (e) {
	case JWT_OK: return "ok";
	case JWT_MALFORMED: return "malformed token";
	case JWT_BAD_ALG: return "token algorithm not allowed";
	case JWT_UNKNOWN_KEY: return "token signed with an unknown key";
	case JWT_BAD_SIGNATURE: return "invalid token signature";
	case JWT_EXPIRED: return "the access token expired";
	case JWT_NOT_YET_VALID: return "token issued in the future";
	}
	return "invalid token";
}
