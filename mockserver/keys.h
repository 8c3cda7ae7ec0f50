/* keys: signing-key files. One "kid hex-key" per line, the last line signs; created with
 * mode 0600 at first start. Rotation appends a key, so older keys keep verifying. */
#ifndef ENCORE_KEYS_H
#define ENCORE_KEYS_H
#include "keyring.h"
#include <stddef.h>

/* Loads path into kr, creating it with one fresh key if missing. 0 or -errno with err. */
int keys_load_or_create(const char *path, struct keyring *kr, char *err, size_t errlen);
/* Appends a fresh key (id "k<N>") to the file and the ring; it signs from now on.
 * Fills kid (KEYRING_KID_MAX + 1). 0 or -errno with err. The caller serialises calls. */
int keys_rotate(const char *path, struct keyring *kr, char *kid, char *err, size_t errlen);

#endif
