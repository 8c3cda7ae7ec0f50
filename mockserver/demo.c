/* demo: names are drawn from per-genre word lists; a few artists carry accents and CJK
 * so the whole stack (search folding, terminal widths) is exercised by the demo itself. */
#include "demo.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

struct genre_spec {
	const char *name;
	double tempo_lo, tempo_hi;
	double energy, dance;
	const char *artists[2];
	const char *labels;
	const char *words[8];
};

static const struct genre_spec GENRES[] = {
	{"techno", 122, 132, 0.85, 0.8, {"Kraftwerk Kinder", "Nachtfahrt"}, "Tresor Noir",
	 {"Pulse", "Circuit", "Neon", "Tunnel", "Voltage", "Orbit", "Signal", "Strobe"}},
	{"hip-hop", 86, 96, 0.65, 0.85, {"MC Brålla", "Lil Compiler"}, "Block Party Records",
	 {"Streets", "Hustle", "Crown", "Cipher", "Corner", "Flow", "Gold", "Midnight"}},
	{"ambient", 68, 80, 0.2, 0.25, {"Éolienne", "静かな海"}, "Drift Editions",
	 {"Glacier", "Mist", "Drift", "Horizon", "Tide", "Aurora", "Haze", "Still"}},
	{"jazz", 100, 140, 0.45, 0.55, {"The Blue Björk Trio", "Señor Swing"}, "Smoky Room",
	 {"Blue", "Velvet", "Autumn", "Smoke", "Moonlight", "Bourbon", "Happy", "Lament"}},
	{"rock", 110, 150, 0.9, 0.5, {"The Beatles Clones", "Motörway"}, "Garage Tape",
	 {"Thunder", "Highway", "Fire", "Rebel", "Wild", "Stone", "Riot", "Engine"}},
	{"classical", 60, 90, 0.25, 0.2, {"Clara Schümann Ensemble", "北京室内乐团"}, "Deutsche Grammatik",
	 {"Nocturne", "Prelude", "Étude", "Sonata", "Waltz", "Reverie", "Fugue", "Elegy"}},
};
#define N_GENRES (sizeof(GENRES) / sizeof(GENRES[0]))

static const char *const SECOND[] = {"of the Night", "in Blue", "Rising", "Again", "Forever", "No. 2",
				     "Dreams", "at Dawn", "Lights", "Song", "Heart", "Road"};
static const char *const ALBUM_WORDS[] = {"Chapters", "Collected Works", "Live Sessions", "Departures",
					  "First Light", "Echoes"};

static unsigned next_rand(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return (*s >> 8) & 0xFFFFFF;
}

void demo_plan(struct demo_track *out, size_t n, unsigned seed, double seconds_per_track)
{
	unsigned r = seed ? seed : 1;
	size_t nartists = N_GENRES * 2;
	for (size_t i = 0; i < n; i++) {
		struct demo_track *t = &out[i];
		memset(t, 0, sizeof(*t));
		/* Round-robin over artists so every artist gets tracks; albums of 5. */
		size_t a = i % nartists;
		const struct genre_spec *g = &GENRES[a / 2];
		size_t nth = i / nartists;
		snprintf(t->artist, sizeof(t->artist), "%s", g->artists[a % 2]);
		snprintf(t->genre, sizeof(t->genre), "%s", g->name);
		snprintf(t->label, sizeof(t->label), "%s", g->labels);
		snprintf(t->album, sizeof(t->album), "%s %s", g->words[(a + nth / 5) % 8], ALBUM_WORDS[(nth / 5 + a) % 6]);
		const char *w1 = g->words[next_rand(&r) % 8];
		const char *w2 = SECOND[next_rand(&r) % 12];
		if (nth == 0 && strcmp(g->name, "jazz") == 0 && a % 2 == 0)
			snprintf(t->title, sizeof(t->title), "Happy");
		else
			snprintf(t->title, sizeof(t->title), "%s %s %zu", w1, w2, i + 1);
		t->track_number = (int)(nth % 5) + 1;
		/* Zipf: popularity falls as 1/rank over a shuffled rank. */
		size_t rank = (i * 7919) % n + 1;
		t->popularity = (int)lround(100.0 / (double)rank);
		if (t->popularity < 1)
			t->popularity = 1;
		t->explicit_ = strcmp(g->name, "hip-hop") == 0 && i % 3 == 0;
		if (i % 11 == 5)
			snprintf(t->markets, sizeof(t->markets), "SE,JP");
		else if (i % 13 == 7)
			snprintf(t->markets, sizeof(t->markets), "US");
		int year = 2015 + (int)(next_rand(&r) % 11);
		snprintf(t->release_date, sizeof(t->release_date), "%04d-%02d-%02d", year,
			 (int)(1 + (a + nth / 5) % 12), (int)(1 + (nth / 5 * 3 + a) % 28));
		t->tempo = g->tempo_lo + (g->tempo_hi - g->tempo_lo) * (double)(next_rand(&r) % 1000) / 1000.0;
		t->key = (int)(next_rand(&r) % 12);
		t->mode = (int)(next_rand(&r) % 2);
		t->energy = fmin(1, fmax(0, g->energy + ((double)(next_rand(&r) % 200) - 100) / 1000.0));
		t->danceability = fmin(1, fmax(0, g->dance + ((double)(next_rand(&r) % 200) - 100) / 1000.0));
		t->seconds = seconds_per_track;
		t->seed = next_rand(&r);
	}
}
