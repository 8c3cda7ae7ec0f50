/* The synthesizer is deterministic, neither clips nor falls silent, honours its parameters,
 * and its genres differ audibly (measured: onset rate, energy). */
#include "../tap.h"
#include "dsp_corpus.h"
#include <string.h>

static void test_same_seed_renders_identical_samples(void)
{
	struct synth_params p;
	corpus_params(&p, SYNTH_JAZZ, 7);
	p.duration = 6.0;
	struct pcm *a = synth_render(&p), *b = synth_render(&p);
	p.seed = 8;
	struct pcm *c = synth_render(&p);
	CHECK(a && b && c, "render failed");
	if (a && b && c) {
		CHECK(a->frames == b->frames && memcmp(a->samples, b->samples, a->frames * 2 * sizeof(float)) == 0,
		      "expected identical samples for the same seed");
		CHECK(memcmp(a->samples, c->samples, a->frames * 2 * sizeof(float)) != 0,
		      "expected a different seed to render different music");
	}
	pcm_free(a);
	pcm_free(b);
	pcm_free(c);
}

static void test_every_genre_is_audible_and_never_clips(void)
{
	for (int g = 0; g < SYNTH_GENRE_COUNT; g++) {
		for (int hot = 0; hot < 2; hot++) {
			struct synth_params p;
			corpus_params(&p, (enum synth_genre)g, 11 + g);
			p.duration = 8.0;
			p.energy = hot ? 1.0 : 0.0;
			struct pcm *pc = synth_render(&p);
			CHECK(pc != NULL, "render %s failed", synth_genre_name(p.genre));
			if (!pc)
				continue;
			double peak = 0, sum = 0;
			size_t n = pc->frames * 2;
			for (size_t i = 0; i < n; i++) {
				peak = fmax(peak, fabs(pc->samples[i]));
				sum += (double)pc->samples[i] * pc->samples[i];
			}
			double rms_db = 20 * log10(sqrt(sum / n) + 1e-12);
			CHECK(pc->channels == 2 && pc->rate == CORPUS_RATE && pc->frames == (size_t)(8.0 * CORPUS_RATE),
			      "%s: shape %d ch %d Hz %zu frames", synth_genre_name(p.genre), pc->channels, pc->rate,
			      pc->frames);
			CHECK(peak < 1.0, "%s energy %.0f: expected peak < 1.0, got %.3f", synth_genre_name(p.genre),
			      p.energy, peak);
			CHECK(rms_db > -40.0, "%s energy %.0f: expected RMS > -40 dBFS, got %.1f",
			      synth_genre_name(p.genre), p.energy, rms_db);
			pcm_free(pc);
		}
	}
}

static void test_ambient_is_calmer_than_techno(void)
{
	struct synth_params p;
	corpus_params(&p, SYNTH_AMBIENT, 3);
	struct features amb = corpus_analyse(&p);
	corpus_params(&p, SYNTH_TECHNO, 3);
	struct features tec = corpus_analyse(&p);
	printf("# onset rate ambient %.2f/s techno %.2f/s; energy %.2f vs %.2f\n", amb.onset_rate,
	       tec.onset_rate, amb.energy, tec.energy);
	CHECK(amb.onset_rate < tec.onset_rate, "expected ambient onsets %.2f/s < techno %.2f/s",
	      amb.onset_rate, tec.onset_rate);
	CHECK(amb.energy + 0.2 < tec.energy, "expected ambient energy %.2f well below techno %.2f",
	      amb.energy, tec.energy);
	CHECK(amb.danceability < tec.danceability, "expected ambient danceability %.2f < techno %.2f",
	      amb.danceability, tec.danceability);
}

static void test_speech_is_mono_paused_and_bounded(void)
{
	struct pcm *s = synth_speech(5, 10.0, 16000);
	CHECK(s && s->channels == 1 && s->frames == 160000, "unexpected shape");
	if (!s)
		return;
	/* Pauses: a good share of 20 ms windows are near-silent, as between phrases. */
	size_t win = 320, quiet = 0, total = 0;
	double peak = 0;
	for (size_t off = 0; off + win <= s->frames; off += win) {
		double e = 0;
		for (size_t i = 0; i < win; i++) {
			e += s->samples[off + i] * s->samples[off + i];
			peak = fmax(peak, fabs(s->samples[off + i]));
		}
		quiet += sqrt(e / win) < 0.003;
		total++;
	}
	CHECK(peak < 1.0 && peak > 0.3, "expected peak in (0.3, 1), got %.3f", peak);
	CHECK(quiet * 10 > total, "expected > 10%% quiet windows, got %zu of %zu", quiet, total);
	CHECK(quiet * 2 < total, "expected < 50%% quiet windows, got %zu of %zu", quiet, total);
	pcm_free(s);
}

static void test_out_of_range_params_are_refused(void)
{
	struct synth_params p;
	corpus_params(&p, SYNTH_ROCK, 1);
	p.tempo = 10;
	CHECK(synth_render(&p) == NULL, "expected NULL for tempo 10");
	corpus_params(&p, SYNTH_ROCK, 1);
	p.key = 12;
	CHECK(synth_render(&p) == NULL, "expected NULL for key 12");
	corpus_params(&p, SYNTH_ROCK, 1);
	p.genre = SYNTH_GENRE_COUNT;
	CHECK(synth_render(&p) == NULL, "expected NULL for unknown genre");
	CHECK(synth_speech(1, 0.0, 16000) == NULL, "expected NULL for zero duration");
}

static void test_genre_names_round_trip(void)
{
	for (int g = 0; g < SYNTH_GENRE_COUNT; g++)
		CHECK_INT(synth_genre_from_name(synth_genre_name((enum synth_genre)g)), g);
	CHECK_INT(synth_genre_from_name("polka"), -1);
	CHECK(synth_genre_name(SYNTH_GENRE_COUNT) == NULL, "expected NULL name");
}

int main(void)
{
	RUN(test_same_seed_renders_identical_samples);
	RUN(test_every_genre_is_audible_and_never_clips);
	RUN(test_ambient_is_calmer_than_techno);
	RUN(test_speech_is_mono_paused_and_bounded);
	RUN(test_out_of_range_params_are_refused);
	RUN(test_genre_names_round_trip);
	return TAP_DONE();
}
