/* keyring: HMAC keys identified by a key id, so signing keys can rotate while
 * tokens and URLs signed with an older key keep verifying until they expire. */
#ifndef ENCORE_KEYRING_H
#define ENCORE_KEYRING_H
#include "hmac256.h"
#include <stddef.h>
#include <stdint.h>

#define KEYRING_KEY_BYTES 32
#define KEYRING_KID_MAX 32

struct keyring;

struct keyring *keyring_new(void);
void keyring_free(struct keyring *kr);
/* Adds (or replaces) a key; the most recently added key signs. Returns 0, or -EINVAL for a bad kid. */
int keyring_add(struct keyring *kr, const char *kid, const unsigned char key[KEYRING_KEY_BYTES]);
/* The key for kid, or NULL. The pointer stays valid until keyring_free. */
const unsigned char *keyring_find(const struct keyring *kr, const char *kid);
/* kid's key absorbed into HMAC-SHA256 states (saves two of the five hash blocks of a short
 * message). NULL if no such key. Valid until the ring changes. */
const struct hmac256_key *keyring_find_hmac(const struct keyring *kr, const char *kid);
/* The signing key and its id; NULL when the ring is empty. */
const unsigned char *keyring_current(const struct keyring *kr, const char **kid);

#endif
