/* loudness: EBU R128 integrated loudness and true peak of a track, and the playback gain
 * that brings it to the streaming target without letting inter-sample peaks clip. */
#ifndef ENCORE_LOUDNESS_H
#define ENCORE_LOUDNESS_H
#include "pcm.h"

#define LOUDNESS_TARGET_LUFS (-14.0)
#define LOUDNESS_CEILING_DBTP (-1.0)

struct loudness {
	double integrated_lufs; /* -INFINITY for silence (nothing above the absolute gate) */
	double true_peak_dbtp;  /* max over channels; -INFINITY for digital silence */
	double gain_db;         /* loudness_gain_db(integrated, true peak, target, ceiling) */
};

/* Measures p (1 or 2 channels, any rate libebur128 accepts) into *out.
 * Returns 0, -EINVAL for an empty or malformed pcm, -ENOMEM if libebur128 cannot allocate. */
int loudness_measure(const struct pcm *p, struct loudness *out);

/* Gain in dB that moves integrated loudness to target_lufs but never lifts the true peak above
 * ceiling_dbtp: min(target - I, ceiling - TP). Returns 0 when I or TP is not finite (silence). */
double loudness_gain_db(double integrated_lufs, double true_peak_dbtp, double target_lufs,
			double ceiling_dbtp);

#endif
