/* Energy and danceability measured from audio must rank tracks the way the generator's
 * settings do, across genres (Spearman >= 0.8 over 12 tracks each). */
#include "../tap.h"
#include "dsp_corpus.h"

/* Settings spread over 0.05..0.93 and assigned to genres in a scrambled order, so a genre's
 * own character cannot masquerade as the setting. */
static const double levels[12] = {0.45, 0.05, 0.77, 0.29, 0.93, 0.13, 0.61, 0.37, 0.85, 0.21, 0.69, 0.53};

static void test_energy_ranks_like_generator_setting_across_genres(void)
{
	double want[12], got[12];
	for (int i = 0; i < 12; i++) {
		struct synth_params p;
		corpus_params(&p, (enum synth_genre)(i % SYNTH_GENRE_COUNT), 300 + i);
		p.energy = levels[i];
		p.danceability = 0.6;
		struct features f = corpus_analyse(&p);
		want[i] = p.energy;
		got[i] = f.energy;
		printf("# energy %-8s set %.2f measured %.3f\n", synth_genre_name(p.genre), want[i], got[i]);
	}
	double rho = corpus_spearman(want, got, 12);
	printf("# energy spearman %.3f\n", rho);
	CHECK(rho >= 0.8, "expected Spearman >= 0.8, got %.3f", rho);
}

static void test_danceability_ranks_like_generator_setting_across_genres(void)
{
	/* Genres with a drum kit: danceability is about the beat, and beatless piano has none. */
	static const enum synth_genre gs[4] = {SYNTH_TECHNO, SYNTH_HIPHOP, SYNTH_ROCK, SYNTH_JAZZ};
	double want[12], got[12];
	for (int i = 0; i < 12; i++) {
		struct synth_params p;
		corpus_params(&p, gs[i % 4], 400 + i);
		p.danceability = levels[i];
		p.energy = 0.6;
		struct features f = corpus_analyse(&p);
		want[i] = p.danceability;
		got[i] = f.danceability;
		printf("# dance  %-8s set %.2f measured %.3f (clarity %.3f tempo %.1f)\n",
		       synth_genre_name(p.genre), want[i], got[i], f.pulse_clarity, f.tempo);
	}
	double rho = corpus_spearman(want, got, 12);
	printf("# danceability spearman %.3f\n", rho);
	CHECK(rho >= 0.8, "expected Spearman >= 0.8, got %.3f", rho);
}

int main(void)
{
	RUN(test_energy_ranks_like_generator_setting_across_genres);
	RUN(test_danceability_ranks_like_generator_setting_across_genres);
	return TAP_DONE();
}
