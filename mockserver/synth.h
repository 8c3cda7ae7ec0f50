/* synth: a deterministic music and speech synthesizer that fills the demo catalog with tracks
 * worth listening to, and gives the audio-feature analyser ground truth to be tested against. */
#ifndef ENCORE_SYNTH_H
#define ENCORE_SYNTH_H
#include "pcm.h"
#include <stdint.h>

enum synth_genre {
	SYNTH_TECHNO,
	SYNTH_HIPHOP,
	SYNTH_AMBIENT,
	SYNTH_JAZZ,
	SYNTH_ROCK,
	SYNTH_PIANO, /* classical-style solo piano */
	SYNTH_GENRE_COUNT
};

enum synth_mode { SYNTH_MINOR = 0, SYNTH_MAJOR = 1 }; /* matches Spotify's `mode` */

struct synth_params {
	enum synth_genre genre;
	double tempo;        /* BPM of the quarter-note beat (the convention features_ reports) */
	int key;             /* tonic pitch class 0 (C) .. 11 (B) */
	enum synth_mode mode;
	double energy;       /* 0..1: loudness, density, brightness */
	double danceability; /* 0..1: timing steadiness and kick strength on the beat */
	double swing;        /* 0 straight .. 1 full triplet swing of off-beat eighths */
	uint64_t seed;       /* same params and seed -> bit-identical output */
	double duration;     /* seconds */
	int rate;            /* output sample rate, Hz */
};

/* Fills *p with the genre's preset (tempo and swing in the genre's usual range, picked by seed),
 * key C major, energy/danceability typical of the genre, 30 s at 44100 Hz. Never fails. */
void synth_params_preset(struct synth_params *p, enum synth_genre genre, uint64_t seed);

/* Renders a stereo track. Returns NULL if params are out of range (tempo outside 40..240,
 * key outside 0..11, duration outside (0, 3600], rate outside 8000..192000, bad genre).
 * Caller frees with pcm_free. Peak stays below 1.0. */
struct pcm *synth_render(const struct synth_params *p);

/* Renders mono speech-like audio (formant vowels, consonant bursts, pitch contour, pauses,
 * ~4 syllables/s) for podcast episodes. NULL on the same rate/duration bounds as synth_render.
 * Caller frees with pcm_free. */
struct pcm *synth_speech(uint64_t seed, double duration, int rate);

/* Lower-case genre name ("techno", "hip-hop", "ambient", "jazz", "rock", "piano"), or NULL. */
const char *synth_genre_name(enum synth_genre g);

/* Inverse of synth_genre_name; returns -1 for an unknown name. */
int synth_genre_from_name(const char *name);

#endif
