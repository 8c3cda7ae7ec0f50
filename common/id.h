/* id: Encore object ids are 22-character base62 strings (128 bits), as Spotify's are,
 * and URIs look like encore:TYPE:ID. */
#ifndef ENCORE_ID_H
#define ENCORE_ID_H
#include <stdbool.h>
#include <stddef.h>

#define ID_LEN 22

/* Fills out (ID_LEN + 1 bytes) with a random id. */
void id_random(char out[ID_LEN + 1]);
/* Deterministic id derived from seed, so seeded catalogs are reproducible. */
void id_from_seed(const char *seed, char out[ID_LEN + 1]);
/* True when s is exactly ID_LEN base62 characters. */
bool id_valid(const char *s);
/* Splits "encore:TYPE:ID" into type (cap typecap) and id. Returns false if malformed. */
bool uri_parse(const char *uri, char *type, size_t typecap, char id[ID_LEN + 1]);

#endif
