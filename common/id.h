/* id: Encore object ids are 22-character base62 strings (128 bits), as Spotify's are,
 * and URIs look like encore:TYPE:ID. */
#ifndef ENCORE_ID_H
#define ENCORE_ID_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ID_LEN 22

/* Fills out (ID_LEN + 1 bytes) with a random id. */
void id_random(char out[ID_LEN + 1]);
/* Fills out with an id whose first 48 bits are ms (Unix milliseconds) and the other 80
 * random, so ids sort (as strings) by creation time: an index on them grows at its right
 * edge instead of at random pages, which is what keeps event-log inserts cheap. */
void id_time_ordered(char out[ID_LEN + 1], int64_t ms);
/* Deterministic id derived from seed, so seeded catalogs are reproducible. */
void id_from_seed(const char *seed, char out[ID_LEN + 1]);
/* True when s is exactly ID_LEN base62 characters. */
bool id_valid(const char *s);
/* Splits "encore:TYPE:ID" into type (cap typecap) and id. Returns false if malformed. */
bool uri_parse(const char *uri, char *type, size_t typecap, char id[ID_LEN + 1]);

#endif
