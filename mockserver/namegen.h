/* namegen: the generated-catalog name recipe shared by `encored seed-catalog` (gencat) and
 * bench/search: a 60,000-word syllable vocabulary plus common English words, Zipf word
 * choice, ~1.5% Cyrillic/CJK names, ~5% accented words. Deterministic from its seed, so
 * the bench's in-process catalog and a seeded server's hold the same kind of names. */
#ifndef ENCORE_NAMEGEN_H
#define ENCORE_NAMEGEN_H
#include <stddef.h>
#include <stdint.h>

struct namegen;

/* A generator seeded with seed (0 picks the default); builds its vocabulary. Never NULL. */
struct namegen *namegen_new(uint64_t seed);
void namegen_free(struct namegen *g);
/* The next number of the generator's one xorshift stream (names draw from it too). */
uint64_t namegen_rand(struct namegen *g);
/* A Zipf-ish pick in [0, n): small indexes are much more frequent. n > 0. */
size_t namegen_zipf(struct namegen *g, size_t n);
/* Writes a name of minw..maxw words (capitalised) into out, truncated at word boundaries
 * to fit cap bytes. */
void namegen_name(struct namegen *g, char *out, size_t cap, int minw, int maxw);
/* One of eight genre names, uniformly. */
const char *namegen_genre(struct namegen *g);

#endif
