/* Fuzz target: signed CDN URLs. delivery.c's path parser is static, so this drives what it
 * is built on: the query decoding (url_decode, form_get) and urlsign_verify with claims and
 * signature taken from the input, "QUERY\nCONTENT\nBITRATE\nRANGE\nUSER\nEXPIRES\nIP". A
 * signature that verifies here without being made by urlsign_sign would be a forgery. */
#include "fuzz.h"
#include "urlenc.h"
#include "urlsign.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct keyring *kr;
	static const unsigned char key[KEYRING_KEY_BYTES] = {9, 8, 7};
	if (!kr) {
		kr = keyring_new();
		keyring_add(kr, "k1", key);
	}
	/* Raw percent-decoding, both flavours, of the whole input (embedded NULs included). */
	char *d = url_decode((const char *)data, size, false);
	free(d);
	d = url_decode((const char *)data, size, true);
	free(d);

	char *text = fz_cstr(data, size);
	char *rest = text;
	char *qs = fz_field(&rest);
	char *sig = form_get(qs, "sig");
	char *kid = form_get(qs, "kid");
	char *exp = form_get(qs, "exp");
	struct urlsign_claims c;
	c.content_id = fz_field(&rest);
	c.bitrate = atoi(fz_field(&rest));
	c.range = fz_field(&rest);
	c.user = fz_field(&rest);
	c.expires = strtoll(fz_field(&rest), NULL, 10);
	c.ip = fz_field(&rest);
	enum urlsign_err e = urlsign_verify(kr, &c, kid ? kid : "k1", sig ? sig : "", exp ? strtoll(exp, NULL, 10) : 0);
	if (e == URLSIGN_OK) {
		/* Accepted: it must be exactly the signature we would have issued. */
		char want[URLSIGN_SIG_LEN + 1], wkid[KEYRING_KID_MAX + 1];
		if (urlsign_sign(kr, &c, want, wkid) != 0 || !sig || strcmp(want, sig) != 0)
			abort();
	}
	/* And a correctly signed URL for the same claims must verify. */
	char good[URLSIGN_SIG_LEN + 1], gkid[KEYRING_KID_MAX + 1];
	if (urlsign_sign(kr, &c, good, gkid) == 0 && c.expires > 0 &&
	    urlsign_verify(kr, &c, gkid, good, c.expires - 1) != URLSIGN_OK)
		abort();
	free(sig);
	free(kid);
	free(exp);
	free(text);
	return 0;
}
