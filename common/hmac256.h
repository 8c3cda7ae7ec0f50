/* hmac256: HMAC-SHA256 with the key absorbed once, for MACs checked on every request
 * (signed segment URLs). The hash is OpenSSL's, which uses the CPU's SHA extensions:
 * a short message's MAC costs about a fifth of libsodium's portable SHA-256. */
#ifndef ENCORE_HMAC256_H
#define ENCORE_HMAC256_H
#define OPENSSL_SUPPRESS_DEPRECATED   /* SHA256_Init and friends: the copyable state is the point */
#include <openssl/sha.h>
#include <stddef.h>

#define HMAC256_BYTES 32

/* The inner and outer hash states after the key's padded block: copy, update, finalise. */
struct hmac256_key {
	SHA256_CTX inner, outer;
};

/* Absorbs key (any length; longer than a block is hashed first, as RFC 2104 says). */
void hmac256_key_init(struct hmac256_key *k, const unsigned char *key, size_t keylen);
/* out = HMAC-SHA256(key, msg). */
void hmac256(const struct hmac256_key *k, const void *msg, size_t len, unsigned char out[HMAC256_BYTES]);
/* Wipes the key states. */
void hmac256_key_wipe(struct hmac256_key *k);

#endif
