/* audio_features (prefix features_; the file is not features.h because that name would shadow
 * glibc's <features.h> on the include path): Spotify-shaped audio features (tempo, key, mode,
 * energy, danceability, ...) measured from decoded PCM, so catalog metadata describes the audio. */
#ifndef ENCORE_FEATURES_H
#define ENCORE_FEATURES_H
#include "pcm.h"
#include <stddef.h>

struct features {
	double tempo;          /* BPM of the quarter-note beat; 0 when no pulse was found */
	int key;               /* pitch class 0 (C) .. 11 (B); -1 when unknown (silence, noise) */
	int mode;              /* 1 major, 0 minor */
	int time_signature;    /* beats per bar, 3 or 4 */
	double loudness;       /* integrated loudness, LUFS (dB); -60 for silence */
	double energy;         /* each below is 0..1 */
	double danceability;
	double acousticness;
	double instrumentalness;
	double speechiness;
	double valence;
	double liveness;
	/* Intermediate measurements, exposed for tests, tuning and the admin UI. */
	double key_confidence;  /* Pearson r of the winning key profile */
	double onset_rate;      /* detected onsets per second */
	double centroid_hz;     /* mean spectral centroid of non-silent frames */
	double pulse_clarity;   /* normalised autocorrelation of the onset envelope at the beat */
};

/* Analyses p (1 or 2 channels, any rate >= 8000, at least 2 s). Returns 0, or -EINVAL for a
 * malformed or too-short pcm. Silent input yields key -1, tempo 0, loudness -60. */
int features_compute(const struct pcm *p, struct features *out);

/* In-place iterative radix-2 complex FFT (forward, unnormalised). Returns 0, or -EINVAL when n
 * is not a power of two >= 2. */
int features_fft(double *re, double *im, size_t n);

#endif
