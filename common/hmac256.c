/* hmac256: RFC 2104 over OpenSSL's SHA-256 block functions. */
#include "hmac256.h"
#include <sodium.h>
#include <string.h>

void hmac256_key_init(struct hmac256_key *k, const unsigned char *key, size_t keylen)
{
	unsigned char block[SHA256_CBLOCK] = {0}, pad[SHA256_CBLOCK];
	if (keylen > sizeof(block))
		SHA256(key, keylen, block);
	else
		memcpy(block, key, keylen);
	for (size_t i = 0; i < sizeof(pad); i++)
		pad[i] = block[i] ^ 0x36;
	SHA256_Init(&k->inner);
	SHA256_Update(&k->inner, pad, sizeof(pad));
	for (size_t i = 0; i < sizeof(pad); i++)
		pad[i] = block[i] ^ 0x5c;
	SHA256_Init(&k->outer);
	SHA256_Update(&k->outer, pad, sizeof(pad));
	sodium_memzero(block, sizeof(block));
	sodium_memzero(pad, sizeof(pad));
}

void hmac256(const struct hmac256_key *k, const void *msg, size_t len, unsigned char out[HMAC256_BYTES])
{
	SHA256_CTX c = k->inner;
	unsigned char inner[HMAC256_BYTES];
	SHA256_Update(&c, msg, len);
	SHA256_Final(inner, &c);
	c = k->outer;
	SHA256_Update(&c, inner, sizeof(inner));
	SHA256_Final(out, &c);
	sodium_memzero(&c, sizeof(c));
}

void hmac256_key_wipe(struct hmac256_key *k)
{
	sodium_memzero(k, sizeof(*k));
}
