/* gencat: generated catalogs for benchmarks and search tests: metadata-only tracks (state
 * "pending", no audio, never transcoded) with their artists and albums, written straight
 * into the catalog tables in one transaction, so a million tracks load in seconds. */
#ifndef ENCORE_GENCAT_H
#define ENCORE_GENCAT_H
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

enum gencat_plan {
	/* bench/search.c's generator: a 60,000-word syllable vocabulary plus common English
	 * words, Zipf word choice, ~1.5% Cyrillic/CJK names, ~5% accented words;
	 * n/10 artists, n/8 albums, 10% of tracks restricted to a few markets. */
	GENCAT_SYNTHETIC,
	/* demo_plan's names (the seed-demo catalog: accents, CJK, market restrictions) without
	 * audio, for recall tests over the demo's vocabulary at a larger size. */
	GENCAT_DEMO,
};

struct gencat_stats {
	size_t tracks, artists, albums;   /* rows inserted (existing ones are left alone) */
	double seconds;
};

/* Inserts ntracks generated tracks (and their artists and albums) into db in one
 * transaction, deterministically from seed. Rows that already exist are left alone.
 * Returns 0, or -EIO with err (nothing is written). */
int gencat_seed(sqlite3 *db, enum gencat_plan plan, size_t ntracks, uint64_t seed, struct gencat_stats *st,
		char *err, size_t errlen);

#endif
