/* keyring: a small array; rings hold a handful of keys, so lookup is a linear scan. */
#include "keyring.h"
#include "xmem.h"
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct key {
	char kid[KEYRING_KID_MAX + 1];
	unsigned char key[KEYRING_KEY_BYTES];
	struct hmac256_key hmac;   /* keyed; see keyring_find_hmac */
};

struct keyring {
	struct key *keys;
	size_t n;
	size_t current;
};

struct keyring *keyring_new(void)
{
	return xcalloc(1, sizeof(struct keyring));
}

void keyring_free(struct keyring *kr)
{
	if (!kr)
		return;
	sodium_memzero(kr->keys, kr->n * sizeof(struct key));
	free(kr->keys);
	free(kr);
}

int keyring_add(struct keyring *kr, const char *kid, const unsigned char key[KEYRING_KEY_BYTES])
{
	size_t len = strlen(kid);
	if (len == 0 || len > KEYRING_KID_MAX)
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if (!(kid[i] == '-' || kid[i] == '_' || (kid[i] >= '0' && kid[i] <= '9') ||
		      (kid[i] >= 'a' && kid[i] <= 'z') || (kid[i] >= 'A' && kid[i] <= 'Z')))
			return -EINVAL;
	for (size_t i = 0; i < kr->n; i++) {
		if (strcmp(kr->keys[i].kid, kid) == 0) {
			memcpy(kr->keys[i].key, key, KEYRING_KEY_BYTES);
			hmac256_key_init(&kr->keys[i].hmac, key, KEYRING_KEY_BYTES);
			kr->current = i;
			return 0;
		}
	}
	kr->keys = xrealloc(kr->keys, (kr->n + 1) * sizeof(struct key));
	memcpy(kr->keys[kr->n].kid, kid, len + 1);
	memcpy(kr->keys[kr->n].key, key, KEYRING_KEY_BYTES);
	hmac256_key_init(&kr->keys[kr->n].hmac, key, KEYRING_KEY_BYTES);
	kr->current = kr->n++;
	return 0;
}

const unsigned char *keyring_find(const struct keyring *kr, const char *kid)
{
	for (size_t i = 0; i < kr->n; i++)
		if (strcmp(kr->keys[i].kid, kid) == 0)
			return kr->keys[i].key;
	return NULL;
}

const struct hmac256_key *keyring_find_hmac(const struct keyring *kr, const char *kid)
{
	for (size_t i = 0; i < kr->n; i++)
		if (strcmp(kr->keys[i].kid, kid) == 0)
			return &kr->keys[i].hmac;
	return NULL;
}

const unsigned char *keyring_current(const struct keyring *kr, const char **kid)
{
	if (kr->n == 0)
		return NULL;
	if (kid)
		*kid = kr->keys[kr->current].kid;
	return kr->keys[kr->current].key;
}
