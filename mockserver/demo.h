/* demo: the demo catalog plan: generated artists, albums and tracks across genres, with
 * non-ASCII names, Zipf-like popularity, explicit tracks and market restrictions.
 * Pure: the same seed gives the same plan. */
#ifndef ENCORE_DEMO_H
#define ENCORE_DEMO_H
#include <stdbool.h>
#include <stddef.h>

struct demo_track {
	char title[96];
	char artist[96];
	char album[96];
	char genre[24];
	char label[64];
	char release_date[11];
	char markets[32];     /* "" = everywhere */
	int track_number;
	int popularity;       /* 0..100, Zipf-like over the catalog */
	bool explicit_;
	/* Musical parameters for the synthesizer. */
	double tempo;
	int key;              /* 0..11 */
	int mode;             /* 1 major, 0 minor */
	double energy, danceability;
	double seconds;
	unsigned seed;
};

/* Fills out[0..n) with a plan of n tracks (at least 12 artists over 6 genres when n >= 60). */
void demo_plan(struct demo_track *out, size_t n, unsigned seed, double seconds_per_track);

#endif
