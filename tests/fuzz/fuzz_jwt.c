/* Fuzz target: JWTs (jwt_verify). Mode byte 0: the input is a token as a client sends it.
 * Otherwise the input is "HEADER-JSON\nPAYLOAD-JSON", encoded and correctly signed here, so
 * the fuzzer reaches the header and claims parsing that a forged signature never would
 * (a holder of a key, or a future bug, could present such a token). */
#include "fuzz.h"
#include "b64.h"
#include "buf.h"
#include "jwt.h"
#include <sodium.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct keyring *kr;
	static const unsigned char key[KEYRING_KEY_BYTES] = {1, 2, 3, 4, 5, 6, 7, 8};
	if (!kr) {
		kr = keyring_new();
		keyring_add(kr, "k1", key);
	}
	if (size < 1)
		return 0;
	char *text = fz_cstr(data + 1, size - 1);
	struct jwt_claims c;
	if (data[0] == 0) {
		(void)jwt_verify(kr, text, 1700000000, &c);
	} else {
		char *rest = text;
		char *hdr = fz_field(&rest);
		char *h64 = b64url_encode(hdr, strlen(hdr));
		char *p64 = b64url_encode(rest, strlen(rest));
		struct buf b = BUF_INIT;
		buf_printf(&b, "%s.%s", h64, p64);
		unsigned char mac[crypto_auth_hmacsha256_BYTES];
		crypto_auth_hmacsha256(mac, (const unsigned char *)b.data, b.len, key);
		char *s64 = b64url_encode(mac, sizeof(mac));
		buf_printf(&b, ".%s", s64);
		if (jwt_verify(kr, b.data, 1700000000, &c) == JWT_OK) {
			/* Claims are fixed-size fields: they must be terminated. */
			if (strnlen(c.sub, sizeof(c.sub)) == sizeof(c.sub) || strnlen(c.tier, sizeof(c.tier)) == sizeof(c.tier) ||
			    strnlen(c.country, sizeof(c.country)) == sizeof(c.country))
				abort();
			/* Re-signing what was accepted must verify again. */
			char *again = jwt_sign(kr, &c);
			if (!again)
				abort();
			free(again);
		}
		free(h64);
		free(p64);
		free(s64);
		buf_free(&b);
	}
	free(text);
	return 0;
}
