/* Audio features measured from synthesized tracks of known tempo, key and mode: tempo within
 * 2% and key+mode right on >= 90% of 24 tracks spanning genres, keys and modes; speech is
 * clearly speechier than any music; the FFT is a correct DFT. */
#include "../tap.h"
#include "dsp_corpus.h"
#include "xmem.h"
#include <math.h>

#define NTRACKS 24

/* Genre-plausible tempo ranges (together they span 70..170 BPM): the generator's convention
 * is the quarter note, and the analyser must report that, not a double- or half-time pulse. */
static const double tempo_lo[SYNTH_GENRE_COUNT] = {120, 75, 70, 90, 100, 70};
static const double tempo_hi[SYNTH_GENRE_COUNT] = {140, 105, 100, 170, 150, 120};

static struct synth_params corpus[NTRACKS];
static struct features measured[NTRACKS];

static void analyse_corpus(void)
{
	for (int i = 0; i < NTRACKS; i++) {
		struct synth_params *p = &corpus[i];
		corpus_params(p, (enum synth_genre)(i % SYNTH_GENRE_COUNT), 1000 + i);
		p->key = (i * 5 + i / 12) % 12;
		p->mode = (i / 6) % 2 ? SYNTH_MINOR : SYNTH_MAJOR;
		double frac = ((i * 7) % NTRACKS) / (double)(NTRACKS - 1);
		p->tempo = floor(tempo_lo[p->genre] + frac * (tempo_hi[p->genre] - tempo_lo[p->genre]));
		measured[i] = corpus_analyse(p);
	}
}

static void test_tempo_within_two_percent_across_genres(void)
{
	int ok = 0;
	double worst = 0.0, lo = 1e9, hi = 0;
	for (int i = 0; i < NTRACKS; i++) {
		double want = corpus[i].tempo, got = measured[i].tempo;
		double err = fabs(got - want) / want;
		lo = fmin(lo, want);
		hi = fmax(hi, want);
		if (err > worst)
			worst = err;
		if (err <= 0.02)
			ok++;
		else
			printf("#   %s at %.0f BPM measured %.2f\n", synth_genre_name(corpus[i].genre), want, got);
	}
	printf("# tempo: %d/%d within 2%% over %.0f..%.0f BPM, worst error %.2f%%\n", ok, NTRACKS, lo,
	       hi, worst * 100);
	CHECK(ok == NTRACKS, "expected all %d tempos within 2%%, got %d", NTRACKS, ok);
	CHECK(lo <= 75 && hi >= 160, "corpus must span 70-170 BPM, spans %.0f..%.0f", lo, hi);
}

static void test_key_and_mode_right_on_ninety_percent_of_tracks(void)
{
	static const char *names[12] = {"C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"};
	int ok = 0, modes[2] = {0, 0};
	for (int i = 0; i < NTRACKS; i++) {
		modes[corpus[i].mode]++;
		if (measured[i].key == corpus[i].key && measured[i].mode == (int)corpus[i].mode)
			ok++;
		else
			printf("#   %s in %s%s measured %s%s\n", synth_genre_name(corpus[i].genre),
			       names[corpus[i].key], corpus[i].mode ? "" : "m",
			       measured[i].key >= 0 ? names[measured[i].key] : "?", measured[i].mode ? "" : "m");
	}
	double frac = (double)ok / NTRACKS;
	printf("# key+mode: %d/%d = %.3f\n", ok, NTRACKS, frac);
	CHECK(frac >= 0.9, "expected >= 0.90 right, got %.3f", frac);
	CHECK(modes[0] >= 8 && modes[1] >= 8, "corpus must mix modes: %d minor %d major", modes[0], modes[1]);
}

static void test_speech_is_speechier_than_any_music(void)
{
	double music_max = 0.0;
	for (int i = 0; i < NTRACKS; i++)
		music_max = fmax(music_max, measured[i].speechiness);
	struct pcm *sp = synth_speech(42, CORPUS_SECONDS, CORPUS_RATE);
	struct features f;
	CHECK_INT(features_compute(sp, &f), 0);
	printf("# speechiness: speech %.3f, music max %.3f\n", f.speechiness, music_max);
	CHECK(f.speechiness >= music_max + 0.3, "expected speech %.3f >= music max %.3f + 0.3",
	      f.speechiness, music_max);
	CHECK(f.speechiness > 0.66, "expected speech > 0.66 (Spotify: mostly speech), got %.3f", f.speechiness);
	CHECK(f.instrumentalness < 0.3, "expected speech instrumentalness < 0.3, got %.3f", f.instrumentalness);
	pcm_free(sp);
}

static void test_silence_has_no_key_and_no_tempo(void)
{
	struct pcm *p = pcm_new(22050, 2, 22050 * 5);
	struct features f;
	CHECK_INT(features_compute(p, &f), 0);
	CHECK_INT(f.key, -1);
	CHECK(f.tempo == 0.0, "expected tempo 0, got %.2f", f.tempo);
	CHECK(f.loudness == -60.0, "expected -60 dB, got %.2f", f.loudness);
	pcm_free(p);
}

static void test_too_short_input_is_rejected(void)
{
	struct pcm *p = pcm_new(22050, 1, 1000);
	struct features f;
	CHECK_INT(features_compute(p, &f), -EINVAL);
	pcm_free(p);
}

static void test_fft_matches_naive_dft(void)
{
	enum { N = 64 };
	double re[N], im[N], x[N];
	for (int i = 0; i < N; i++) {
		x[i] = sin(i * 0.7) + 0.3 * cos(i * 2.1) + (i % 5) * 0.1;
		re[i] = x[i];
		im[i] = 0;
	}
	CHECK_INT(features_fft(re, im, N), 0);
	double maxerr = 0;
	for (int k = 0; k < N; k++) {
		double dr = 0, di = 0;
		for (int n = 0; n < N; n++) {
			dr += x[n] * cos(-6.283185307179586 * k * n / N);
			di += x[n] * sin(-6.283185307179586 * k * n / N);
		}
		maxerr = fmax(maxerr, fmax(fabs(dr - re[k]), fabs(di - im[k])));
	}
	CHECK(maxerr < 1e-9, "expected FFT == DFT, max error %g", maxerr);
	CHECK_INT(features_fft(re, im, 48), -EINVAL);
}

int main(void)
{
	analyse_corpus();
	RUN(test_tempo_within_two_percent_across_genres);
	RUN(test_key_and_mode_right_on_ninety_percent_of_tracks);
	RUN(test_speech_is_speechier_than_any_music);
	RUN(test_silence_has_no_key_and_no_tempo);
	RUN(test_too_short_input_is_rejected);
	RUN(test_fft_matches_naive_dft);
	return TAP_DONE();
}
