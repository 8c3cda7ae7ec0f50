/* jwt: HS256 JSON Web Tokens as the gateway issues and checks them.
 * The algorithm is pinned: a token whose header names anything but HS256 is refused. */
#ifndef ENCORE_JWT_H
#define ENCORE_JWT_H
#include "keyring.h"
#include <stdbool.h>
#include <stdint.h>

#define JWT_MAX_LEN 4096

struct jwt_claims {
	char sub[64];      /* user id */
	char tier[16];     /* "free" | "premium" */
	char country[4];   /* ISO 3166-1 alpha-2 */
	bool admin;
	int64_t iat;
	int64_t exp;
};

enum jwt_err {
	JWT_OK = 0,
	JWT_MALFORMED,     /* not three base64url parts of JSON */
	JWT_BAD_ALG,       /* alg other than HS256, including "none" */
	JWT_UNKNOWN_KEY,   /* kid missing or not in the ring */
	JWT_BAD_SIGNATURE,
	JWT_EXPIRED,
	JWT_NOT_YET_VALID, /* iat in the future beyond the allowed skew */
};

/* Signs claims with the ring's current key. Returns a new string (caller frees), or NULL if the ring is empty. */
char *jwt_sign(const struct keyring *kr, const struct jwt_claims *c);
/* Verifies token at time now (unix seconds). Fills *out only on JWT_OK. */
enum jwt_err jwt_verify(const struct keyring *kr, const char *token, int64_t now, struct jwt_claims *out);
const char *jwt_strerror(enum jwt_err e);

#endif
